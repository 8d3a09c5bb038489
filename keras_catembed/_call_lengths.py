"""How many steps each compiled call of the device loop runs.

The first epoch of a shape (batch size, steps an epoch) runs calls of
1/BLOCKS_PER_EPOCH of the epoch (MIN_STEPS_PER_EXECUTION to
MAX_STEPS_PER_EXECUTION steps) and times them; when a call took under
SECONDS_TO_KEEP_EXECUTION, later epochs run calls of about
SECONDS_PER_EXECUTION (a power of two of steps, at most half the epoch and
about 2**20 samples), as soon as that length costs nothing to compile, or
else once the calls it spares would have cost about its compilation
(`BlockPlan`). So the progress bar and the batch callbacks move within
every epoch, a long training's calls are long enough for their fixed cost
not to slow it, and a short one compiles no length it would not repay.
The model's own `steps_per_execution`, when above 1, is kept as it is.
"""

import dataclasses
import time
from typing import Any

import numpy as np
from keras import ops

SAMPLES_PER_EXECUTION = 2**20
BLOCKS_PER_EPOCH = 20
MIN_STEPS_PER_EXECUTION = 8
MAX_STEPS_PER_EXECUTION = 1024
SECONDS_PER_EXECUTION = 1.0
# Calls of the first epoch at least this long are kept as they are: their
# fixed cost is already small, and another length would be compiled anew.
SECONDS_TO_KEEP_EXECUTION = 0.05
# What a compiled call costs beyond its steps (the dispatch, the state in
# and out, the callbacks): about 2 ms on JAX on 2 CPU cores, at 1024 to
# 16384 rows a batch. A longer call that must be compiled anew is adopted
# once the calls it would spare have cost about its compilation
# (`BlockPlan`).
CALL_SECONDS = 0.002


def steps_per_call(model: Any, full_steps: int, batch_size: int) -> int:
    """Steps per compiled call in an epoch not yet timed.

    The model's own `steps_per_execution` wins when it is set above 1.
    """
    per_call: int = model.steps_per_execution
    if per_call <= 1:
        per_call = -(-full_steps // BLOCKS_PER_EPOCH)
        per_call = max(per_call, MIN_STEPS_PER_EXECUTION)
        per_call = min(
            per_call,
            MAX_STEPS_PER_EXECUTION,
            max(1, SAMPLES_PER_EXECUTION // batch_size),
        )
    return max(1, min(per_call, full_steps))


def timed_steps_per_call(
    seconds_per_step: float, full_steps: int, batch_size: int
) -> int:
    """Steps per call once a step is timed: about SECONDS_PER_EXECUTION.

    A power of two (few distinct compiled lengths), at least
    MIN_STEPS_PER_EXECUTION and at most about 2**20 samples. An epoch
    longer than SECONDS_PER_EXECUTION takes at least two calls, so the bar
    moves within it (a power of two of steps each); a shorter one runs as
    one call (each call costs a dispatch, and the bar has nothing to show
    within a second).
    """
    wanted = SECONDS_PER_EXECUTION / max(seconds_per_step, 1e-9)
    steps: int = 2 ** int(np.floor(np.log2(max(wanted, 1.0))))
    ceiling = max(1, SAMPLES_PER_EXECUTION // batch_size)
    if full_steps * seconds_per_step > SECONDS_PER_EXECUTION:
        ceiling = min(ceiling, -(-full_steps // 2))
    else:
        steps = full_steps
    steps = min(max(steps, MIN_STEPS_PER_EXECUTION), ceiling)
    return max(1, min(steps, full_steps))


@dataclasses.dataclass
class BlockPlan:
    """Longer calls for an epoch's steps, adopted once they pay off.

    Calls of `steps` steps would spare `saved_seconds` an epoch (the fixed
    cost of the calls they replace) but must first be compiled, for about
    `compile_seconds` (what the call that compiled the shorter ones took
    beyond its steps). The shorter calls run until the time they have lost, the
    timing epoch's included, reaches the compilation: the rule of the
    ski-rental problem, which with exact costs never loses more than
    twice what the better choice in hindsight would (here both costs are
    estimates). A short `fit` call (what a user waits for whole) thus
    compiles nothing more, and a long one, or a later call, switches.
    """

    steps: int
    saved_seconds: float
    compile_seconds: float
    lost_seconds: float = 0.0

    def pay(self) -> bool:
        """Counts one epoch of the shorter calls; True once they paid off."""
        self.lost_seconds += self.saved_seconds
        return self.lost_seconds >= self.compile_seconds


def executions(
    per_call: int, full_steps: int, remainder: int, batch_size: int
) -> list[tuple[int, int, int]]:
    """(first step, number of steps, batch size) of each compiled call."""
    calls = [
        (start, min(per_call, full_steps - start), batch_size)
        for start in range(0, full_steps, per_call)
    ]
    if remainder:
        calls.append((full_steps, 1, remainder))
    return calls


class CallLengths:
    """The compiled calls of one `fit` call's epochs, timed and lengthened.

    `runner` (a backend's device loop) keeps what was learned across `fit`
    calls of the same shape: the timed length (`block_steps`), a pending
    `BlockPlan` (`block_plans`) and the seconds of the call that compiled
    the timed length (`compiling_calls`).
    """

    def __init__(
        self,
        model: Any,
        runner: Any,
        full_steps: int,
        remainder: int,
        batch_size: int,
    ) -> None:
        self.runner = runner
        self.full_steps = full_steps
        self.remainder = remainder
        self.batch_size = batch_size
        self.shape = (batch_size, full_steps)
        # Calls are timed in the first epoch of each shape, unless the
        # model sets its own `steps_per_execution`.
        self.timed = (
            model.steps_per_execution > 1 or self.shape in runner.block_steps
        )
        self.per_call = runner.block_steps.get(
            self.shape, steps_per_call(model, full_steps, batch_size)
        )
        self.executions = self._executions(self.per_call)
        self._ends: list[tuple[float, int]] = []

    def _executions(self, per_call: int) -> list[tuple[int, int, int]]:
        return executions(
            per_call, self.full_steps, self.remainder, self.batch_size
        )

    def run(self, block: Any, end_step: int, rows: int | None = None) -> Any:
        """Runs `block` on the runner, timing it in an epoch not yet timed.

        `end_step` is the epoch's step count once the call is done; `rows`
        the real rows of a padded last batch (see `Runner.run`).
        """
        steps, size = block.shape
        if self.timed or steps != self.per_call or rows is not None:
            return self.runner.run(block, rows)
        compiling = self.runner.compiles(steps, size)
        called = time.perf_counter()
        logs = self.runner.run(block)
        for value in logs.values():
            ops.convert_to_numpy(value)  # waits for the call to finish
        self._ends.append((time.perf_counter(), end_step))
        if compiling:
            # Kept for the plan, even if this `fit` stops before it can
            # time the calls: a later one won't compile.
            self.runner.compiling_calls[self.shape] = self._ends[-1][0] - called
        return logs

    def end_epoch(self, stopped: bool) -> None:
        """Sets the next epoch's calls; `stopped`: the epoch was cut short."""
        ends, self._ends = self._ends, []
        runner = self.runner
        if len(ends) >= 3:
            # The first call may include compilation: time the others.
            seconds = (ends[-1][0] - ends[0][0]) / (ends[-1][1] - ends[0][1])
            runner.block_steps[self.shape] = self.per_call
            if seconds * self.per_call < SECONDS_TO_KEEP_EXECUTION:
                # What the call that compiled this length took beyond its
                # steps: about what compiling another length costs.
                compiled = runner.compiling_calls.get(self.shape, 0.0)
                plan = self._plan(
                    timed_steps_per_call(
                        seconds, self.full_steps, self.batch_size
                    ),
                    max(0.0, compiled - seconds * self.per_call),
                )
                if plan is not None:
                    runner.block_plans[self.shape] = plan
            self.timed = True
        plan = runner.block_plans.get(self.shape)
        # An epoch cut short is not counted.
        if plan is not None and not stopped and plan.pay():
            self.per_call = runner.block_steps[self.shape] = plan.steps
            del runner.block_plans[self.shape]
            self.executions = self._executions(self.per_call)

    def _plan(self, steps: int, compile_seconds: float) -> BlockPlan | None:
        """The plan to run calls of `steps` steps rather than `per_call`.

        None when those calls must be compiled and spare none.
        """
        if not self.runner.compiles(steps, self.batch_size):
            # A length that compiles nothing (shorter calls are padded; a
            # graph takes any length) is taken at once.
            return BlockPlan(steps, saved_seconds=0.0, compile_seconds=0.0)
        spared = len(self._executions(self.per_call)) - len(
            self._executions(steps)
        )
        if spared <= 0:
            return None
        return BlockPlan(steps, CALL_SECONDS * spared, compile_seconds)
