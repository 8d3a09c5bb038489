"""Compiled JAX programs shared by models whose programs are the same.

Each model's device loop is a `jax.jit` of its own Python function, so
JAX compiles it anew for every model, even when the program is the same:
the folds of a cross-validation, the members of an ensemble of one
preset, the trials of a search that change only a constant learning
rate (an optimizer variable). This module compiles a lowered program
once per process and hands the compiled program to every later model
whose lowering has the same StableHLO text (array constants included:
`as_text` prints them whole), the same input and output trees and its
arguments on the same devices. Tracing and lowering still run for each
model; only XLA's compilation, most of the one-time cost, is shared.

Never shared, compiled for their model alone:

- programs that call back into Python (`jax.debug.callback`, say): the
  text names a callback by its position in the program's own list, so
  two programs with different callbacks can read the same;
- programs with constants hoisted out of the text into arguments that
  the compiled program holds (JAX's `jax_use_simplified_jaxpr_constants`:
  the text then shows an argument, not its value);
- programs whose text is longer than `MAX_TEXT` (large constants).

The wrapped functions should be jitted with `keep_unused=True`, so that
an argument the program does not read is not pruned from the compiled
program's inputs without a trace in the text.
"""

import collections
import hashlib
import threading
from typing import Any

import jax

# The most compiled programs kept, the least recently used dropped first;
# `0` shares none.
LIMIT = 16
# Longer texts (large constants) are compiled for their model alone.
MAX_TEXT = 1 << 22
# Text of what is never shared: host callbacks (a custom call on CPU and
# GPU, host transfers on TPU) and constants hoisted into arguments.
_PRIVATE_MARKS = ("callback", "is_host_transfer", "jax.const")

_lock = threading.Lock()
_programs: "collections.OrderedDict[tuple[Any, ...], Any]" = (
    collections.OrderedDict()
)
# How many compilations were shared and how many were made: read by tests
# and benchmarks.
counts = {"shared": 0, "compiled": 0}


def placement(leaf: Any) -> Any:
    """Where an argument lives: its sharding and whether it is committed.

    NumPy arrays and Python numbers (uncommitted, on the default device
    when the call transfers them) read `None`.
    """
    sharding = getattr(leaf, "sharding", None)
    if sharding is None:
        return None
    return sharding, bool(getattr(leaf, "committed", True))


def compiled(function: Any, *args: Any) -> Any:
    """`function.lower(*args).compile()`, shared with identical programs.

    Args:
        function: A `jax.jit`-wrapped function (with `keep_unused=True`).
        *args: Its arguments.

    Returns:
        A `jax.stages.Compiled` to call with arguments of the same shapes,
        dtypes, trees and placements.
    """
    lowered = function.lower(*args)
    if LIMIT <= 0:
        return _compile(lowered)
    text = lowered.as_text()
    if len(text) > MAX_TEXT or any(mark in text for mark in _PRIVATE_MARKS):
        return _compile(lowered)
    key = (
        hashlib.sha256(text.encode()).hexdigest(),
        str(lowered.in_tree),
        str(lowered.out_tree),
        str(jax.config.jax_default_device),
        tuple(str(placement(leaf)) for leaf in jax.tree.leaves(args)),
    )
    with _lock:
        program = _programs.pop(key, None)
        if program is not None:
            counts["shared"] += 1
            _programs[key] = program
            return program
    # Compiled outside the lock: other threads' compilations go on.
    program = _compile(lowered)
    with _lock:
        _programs[key] = program
        while len(_programs) > LIMIT:
            _programs.popitem(last=False)
    return program


def _compile(lowered: Any) -> Any:
    program = lowered.compile()
    with _lock:
        counts["compiled"] += 1
    return program


def clear() -> None:
    """Drops every kept program."""
    with _lock:
        _programs.clear()
