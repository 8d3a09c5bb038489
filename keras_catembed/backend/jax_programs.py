"""Compiled JAX programs shared by models whose programs are the same.

Each model's device loop is a `jax.jit` of its own Python function, so
JAX compiles it anew for every model, even when the program is the same:
the folds of a cross-validation, the members of an ensemble of one
preset, the trials of a search that change only the learning rate. This
module compiles a lowered program once per process and hands the compiled
program to every later model whose lowering has the same StableHLO text
(constants included: `as_text` prints them whole) and the same input and
output trees. Tracing and lowering still run for each model; only XLA's
compilation, most of the one-time cost, is shared.

A program that calls back into Python (`jax.debug.callback`, say) is
never shared: the text names its callback by an address that a later
model's may happen to reuse.
"""

import collections
import hashlib
import threading
from typing import Any

# The most compiled programs kept, the least recently used dropped first;
# `0` shares none.
LIMIT = 16
# Longer texts (large constants) are compiled for their model alone.
MAX_TEXT = 1 << 22

_lock = threading.Lock()
_programs: "collections.OrderedDict[tuple[str, str, str], Any]" = (
    collections.OrderedDict()
)
# How many compilations were shared and how many were made: read by tests
# and benchmarks.
counts = {"shared": 0, "compiled": 0}


def compiled(function: Any, *args: Any) -> Any:
    """`function.lower(*args).compile()`, shared with identical programs.

    Args:
        function: A `jax.jit`-wrapped function.
        *args: Its arguments (arrays or their `jax.ShapeDtypeStruct`s).

    Returns:
        A `jax.stages.Compiled` to call with arguments of the same shapes,
        dtypes and trees.
    """
    lowered = function.lower(*args)
    text = lowered.as_text()
    if LIMIT <= 0 or len(text) > MAX_TEXT or "callback" in text:
        counts["compiled"] += 1
        return lowered.compile()
    key = (
        hashlib.sha256(text.encode()).hexdigest(),
        str(lowered.in_tree),
        str(lowered.out_tree),
    )
    with _lock:
        program = _programs.pop(key, None)
        if program is None:
            counts["compiled"] += 1
            program = lowered.compile()
        else:
            counts["shared"] += 1
        _programs[key] = program
        while len(_programs) > LIMIT:
            _programs.popitem(last=False)
    return program


def clear() -> None:
    """Drops every kept program."""
    with _lock:
        _programs.clear()
