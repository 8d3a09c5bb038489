"""Backend code shared by the backends, and the fallback for any other.

The backend modules import what they do the same way from here.
"""

from typing import Any

import keras
import numpy as np
from keras import ops

SUPPORTS_JIT = True
DISTINCT_STEP_FUNCTIONS = False


def is_concrete(x: Any) -> bool:
    """True when `x` holds values now (not a symbolic or traced tensor)."""
    return not isinstance(x, keras.KerasTensor)


def graph_assert(bad, values, message, describe, host_callbacks):
    """An op failing a compiled step when any `bad` is True, or None."""
    return None


def with_dependencies(tensor, assertions):
    """`tensor`, computed after the `assertions` ops."""
    return tensor


def lookup(table, rows):
    """Gathers `rows` of the `table` variable."""
    return ops.take(table, rows, axis=0)


def sparse_gradient(gradient):
    """`(indices, values)` of a backend's own sparse gradient, or None."""
    return None


def gather_rows(value, indices):
    """The `indices` rows of an array."""
    return ops.take(value, indices, axis=0)


def scatter_rows(optimizer, variable, indices, rows, how):
    """Sets (`how="set"`) or subtracts `rows` at `indices`, in place."""
    value = variable.value
    current = ops.take(value, indices, axis=0)
    new = rows if how == "set" else current - rows
    optimizer.assign(
        variable, ops.scatter_update(value, ops.expand_dims(indices, -1), new)
    )


def state_variables(model):
    """Every variable a Keras loop reads or writes, each once."""
    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        variables += list(optimizer.variables)
    variables += list(getattr(model, "metrics_variables", []))
    unique = {}
    for variable in variables:
        unique.setdefault(id(variable), variable)
    return list(unique.values())


def copy_value(value):
    return ops.copy(value)


def save_state(model, copy, copy_value=copy_value):
    """The variables' values before a Keras loop, to restore on failure.

    With `copy`, the values are copied (a compiled step may fail after
    earlier steps changed them); without, nothing is kept.
    """
    if not model.built or not copy:
        return None
    variables = state_variables(model)
    return variables, [copy_value(v.value) for v in variables], True


def restore_state(model, saved):
    """Puts back the values `save_state` kept, after a failed loop."""
    if saved is not None:
        for variable, value in zip(saved[0], saved[1], strict=True):
            variable.assign(value)


def unshare_ema_buffers(model):
    """Nothing to do: only JAX shares weight and average buffers."""


def loop_blocker(model):
    """Why the device loop cannot run on this backend, or None."""
    return f"the {keras.backend.backend()} backend has no device loop"


def on_accelerator(tensor):
    """Whether `tensor` lives on a GPU or TPU rather than the CPU."""
    return False


def export_error(format, signature):
    """Why `RatingModel.export` cannot run here, or None."""
    return None


def to_numpy(value):
    return np.asarray(ops.convert_to_numpy(value))


Runner = None


def batch(ids, targets, index):
    """The rows `index` of the id columns and of the targets."""
    return (
        {
            column: ops.take(values, index, axis=0)
            for column, values in ids.items()
        },
        ops.take(targets, index, axis=0),
    )
