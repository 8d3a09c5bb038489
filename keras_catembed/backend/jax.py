"""JAX: host-callback id checks, buffer-safe loop state, traced builds.

The device loop (a jitted `lax.fori_loop` over blocks of steps) is in
`jax_loop.py`.
"""

from collections.abc import Callable
from typing import Any
from typing import ClassVar

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops

from keras_catembed.backend import generic
from keras_catembed.backend.generic import Describe
from keras_catembed.backend.jax_loop import Runner
from keras_catembed.backend.jax_rows import gather_rows
from keras_catembed.backend.jax_rows import scatter_rows


def _host_copy(value: Any) -> np.ndarray:
    """A copy of `value` in host memory, whatever `value` becomes.

    No device memory is taken, and nothing is compiled (`ops.copy` compiles
    a program per shape, tens of milliseconds each on a CPU). On a CPU,
    `jax.device_get` may share the device buffer: hence the copy.
    """
    copied: np.ndarray = np.array(jax.device_get(value), copy=True)
    return copied


def _live(value: Any) -> bool:
    """Whether `value` holds data (not None, not a donated buffer)."""
    if value is None:
        return False
    is_deleted = getattr(value, "is_deleted", None)
    return not (callable(is_deleted) and is_deleted())


class JaxBackend(generic.Backend):
    # JAX caches traces by function, and Keras jits the bound step method:
    # a step traced without id checks needs a distinct function.
    DISTINCT_STEP_FUNCTIONS: ClassVar[bool] = True
    Runner: ClassVar[type[generic.Runner] | None] = Runner

    def is_traced(self, x: Any) -> bool:
        return isinstance(x, jax.core.Tracer)

    def held_value(self, variable: Any) -> Any:
        # A trace reads its variables through a stateless scope; the
        # variable itself still holds its value, except inside Keras's JAX
        # loops, which empty it while they run.
        value = getattr(variable, "_value", None)
        return value if _live(value) and not self.is_traced(value) else None

    def value_token(self, variable: Any) -> Any:
        # Arrays are immutable: `assign` replaces the value, so the held
        # value itself tells.
        return self.held_value(variable)

    def same_token(self, token: Any, other: Any) -> bool:
        return token is not None and token is other

    def graph_assert(
        self, bad: Any, ids: Any, message: str, describe: Describe, host: bool
    ) -> Any:
        """A host callback raising `describe(first bad value)`; returns None."""
        if not host:
            return None
        any_bad = jnp.any(bad)
        offending = ids.reshape(-1)[jnp.argmax(bad.reshape(-1))]

        def _raise(flag: Any, value: Any) -> None:
            if bool(flag):
                raise ValueError(describe(value.item()))

        jax.debug.callback(_raise, any_bad, offending)
        return None

    def to_device(self, array: Any) -> Any:
        # `jnp.asarray` compiles a staging program for each new shape;
        # `jax.device_put` copies without one.
        return jax.device_put(array)

    def gather_rows(self, value: Any, indices: Any) -> Any:
        return gather_rows(value, indices)

    def low_precision_matmul(self, a: Any, b: Any) -> Any:
        # A float32 result straight from the kernel: XLA's CPU backend
        # runs bfloat16 products with a bfloat16 result on a slow path.
        return jnp.matmul(
            a, b.astype(a.dtype), preferred_element_type=jnp.float32
        )

    def scatter_rows(
        self, optimizer: Any, variable: Any, indices: Any, rows: Any, how: str
    ) -> None:
        value = (
            variable.value if isinstance(variable, keras.Variable) else variable
        )
        optimizer.assign(variable, scatter_rows(value, indices, rows, how))

    def save_state(
        self, model: Any, copy: bool, training: bool = False
    ) -> generic.SavedState | None:
        """The variables' values before a Keras loop, to restore on failure.

        Keras's JAX loops and the device loop donate the values to each
        compiled step, and a step that fails as it runs (a user's loss
        raising through a host callback, say) deletes them. With `copy`,
        they are copied to the host and restored as they are (a failed
        call changes nothing). Without, in `training`, they are copied to
        the host too (once per `fit` call), standing in only for the
        values such a step deleted; values still held (a callback that
        raised between steps) are kept. Otherwise they are only referenced
        (a `predict` keeps its latency), for a loop that fails before its
        first step runs.
        """
        if not model.built:
            # Built now, so that a failing first call has values to put back.
            model.build()
        variables = generic.state_variables(model)
        if copy or training:
            values = [_host_copy(variable.value) for variable in variables]
        else:
            values = [variable.value for variable in variables]
        return variables, values, copy

    def restore_state(
        self, model: Any, saved: generic.SavedState | None
    ) -> None:
        """Puts back the values `save_state` kept, after a failed loop.

        Keras's JAX loop keeps the current values in `_jax_state` and leaves
        the variables empty until the loop ends; a value it has donated to a
        step is deleted. Copies are restored as they are; otherwise each empty
        variable gets the loop's latest value, or the one it had before.
        """
        state = getattr(model, "_jax_state", None) or {}
        model._jax_state = None
        model._jax_state_synced = True
        if saved is None:
            return
        latest: dict[int, Any] = {}
        for key, variables in (
            ("trainable_variables", model.trainable_variables),
            ("non_trainable_variables", model.non_trainable_variables),
            (
                "optimizer_variables",
                # A model never compiled has no `optimizer`.
                getattr(getattr(model, "optimizer", None), "variables", []),
            ),
            ("metrics_variables", model.metrics_variables),
        ):
            for variable, value in zip(
                variables, state.get(key) or [], strict=False
            ):
                latest[id(variable)] = value
        variables, values, copied = saved
        for variable, value in zip(variables, values, strict=True):
            if not copied:
                if _live(getattr(variable, "_value", None)):
                    continue
                candidate = latest.get(id(variable))
                value = candidate if _live(candidate) else value
            if _live(value):
                variable.assign(value)

    def unshare_ema_buffers(self, model: Any) -> None:
        """Gives the optimizer's weight averages buffers of their own.

        With `use_ema=True`, the end of `fit` assigns the averages to the
        weights; a JAX variable's assignment shares the array, and the next
        compiled call donates the weights' arrays, which would delete the
        averages' too (saving the optimizer would then fail).
        """
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None or not getattr(optimizer, "use_ema", False):
            return
        weights = {id(variable.value) for variable in model.variables}
        for variable in optimizer.variables:
            if id(variable.value) in weights:
                variable.assign(ops.copy(variable.value))

    def build_state(self, fn: Callable[..., Any], *args: Any) -> None:
        """Traces `fn(*args)` abstractly, as Keras builds a model's state.

        Run eagerly, each JAX op of `fn` would be compiled on its own
        (about 2 s for a `RatingModel`'s forward pass, loss and metrics).
        In the stateless scope, the values `fn` assigns are dropped.
        """
        with keras.StatelessScope(), keras.SymbolicScope():
            jax.eval_shape(fn, *args)

    def on_accelerator(self, tensor: Any) -> bool:
        return any(d.platform != "cpu" for d in tensor.devices())

    def loop_blocker(self, model: Any) -> str | None:
        """The loop runs under a `keras.distribution` in one process."""
        distribution = keras.distribution.distribution()
        if distribution is not None and jax.process_count() > 1:
            return "a keras.distribution spans several processes"
        return None


BACKEND = JaxBackend()
