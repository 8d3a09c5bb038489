"""The shared base of the backends, and the fallback for any other.

`Backend` implements the interface of `keras_catembed.backend` the way
most backends do it; `backend/tensorflow.py`, `backend/jax.py` and
`backend/torch.py` extend it and override only what differs. `Runner`
is the shared base of their device loops. Any other Keras backend gets
`Backend` itself, which has no device loop.
"""

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

import keras
import numpy as np
from keras import ops

# Values that hold data whatever the backend (never symbolic or traced).
CONCRETE_TYPES = (np.ndarray, np.generic, list, tuple, int, float)

# What `save_state` keeps: the variables, their values, and whether the
# values are copies.
SavedState = tuple[list[Any], list[Any], bool]

# What `graph_assert` raises for the first bad id, given that id.
Describe = Callable[[Any], str]


class Runner:
    """The shared part of a backend's device loop.

    With `pad` (the model's forward pass is its own, so padding rows
    cannot change what its real rows compute), a loop may run an epoch's
    last, shorter batch padded (`pads_remainder`).

    `_fast_fit` sets `ids` (a dict of id columns) and `targets` on the
    device, then calls `begin_epoch`, `run(block)` for each block of
    batch indices, and `end_epoch`. With `tables` (a
    `keras_catembed._sparse_rows.SparseTables`), the steps of the JAX and
    torch loops differentiate with respect to the batch's table rows.
    """

    def __init__(
        self,
        model: Any,
        *,
        tables: Any = None,
        jit: bool = False,
        pad: bool = False,
    ) -> None:
        self.model = model
        self.ids: Any = None
        self.targets: Any = None
        # Steps per call by (batch size, full steps), once timed.
        self.block_steps: dict[Any, int] = {}
        # A longer call not compiled yet, by (batch size, full steps): see
        # `keras_catembed._call_lengths.BlockPlan`; and the seconds of the
        # call that compiled the timed length (steps included).
        self.block_plans: dict[Any, Any] = {}
        self.compiling_calls: dict[Any, float] = {}
        self.tables = tables
        # Whether an epoch's last, shorter batch runs padded to the batch
        # size (`run`'s `rows` says how many of its rows are real).
        self.pads_remainder = False

    def from_host(self, block: Any) -> Any:
        """A block of batch indices drawn on the host, as `run` takes it."""
        return ops.convert_to_tensor(block)

    def compiles(self, steps: int, batch_size: int) -> bool:
        """Whether a call of `steps` steps of `batch_size` compiles anew."""
        return False

    def begin_epoch(self) -> None:
        """Called before the first block of an epoch."""

    def run(self, block: Any, rows: int | None = None) -> Any:
        """Runs the steps of `block` (batch indices); returns the logs.

        `rows` (with `pads_remainder` only): how many of the last batch's
        rows are real, the others being padding.
        """
        raise NotImplementedError

    def end_epoch(self) -> None:
        """Called after the last block of an epoch."""


class Backend:
    """The interface of `keras_catembed.backend`, as most backends do it.

    - ids: `SUPPORTS_JIT` (whether a layer checking ids may be compiled
      by XLA or `torch.compile`), `is_concrete`, `graph_assert`,
      `with_dependencies`, `lookup` (a table gather that keeps the
      gradient sparse where the backend can);
    - optimizers: `sparse_gradient`, `gather_rows`, `scatter_rows`,
      `EAGER_ADAM`, `adam_together` (dense Adam updates at once) and
      `adam_rows` (SparseAdam's update of a table's rows);
    - Keras loops: `save_state`, `restore_state`, `unshare_ema_buffers`,
      `DISTINCT_STEP_FUNCTIONS`, `build_state`, `EAGER_LAYERS`,
      `held_value` (a variable's value while a graph is traced);
    - the device loop: `loop_blocker`, `on_accelerator`, `Runner`,
      `OPTIONAL_JIT`;
    - export: `export_error`.
    """

    SUPPORTS_JIT: ClassVar[bool] = True
    # Whether Adam's arithmetic runs in the backend's own operations
    # (`adam_together`, `adam_rows`): on an eager backend, each Keras op
    # costs more than its math.
    EAGER_ADAM: ClassVar[bool] = False
    # Whether layers run eagerly, so that Keras's bookkeeping of each
    # layer call costs at every step (see `_forward.calls_layers_directly`).
    EAGER_LAYERS: ClassVar[bool] = False
    DISTINCT_STEP_FUNCTIONS: ClassVar[bool] = False
    # Whether the device loop runs with or without XLA as its `jit` says
    # (elsewhere it is always compiled, or always eager).
    OPTIONAL_JIT: ClassVar[bool] = False
    # The device loop's class, or None where the backend has none.
    Runner: ClassVar[type[Runner] | None] = None

    def is_concrete(self, x: Any) -> bool:
        """True when `x` holds values now (not a symbolic or traced tensor)."""
        if isinstance(x, CONCRETE_TYPES):
            return True
        if isinstance(x, keras.KerasTensor):
            return False
        return not self.is_traced(x)

    def is_traced(self, x: Any) -> bool:
        """True when the tensor `x` is being traced or compiled."""
        return False

    def held_value(self, variable: Any) -> Any:
        """`variable`'s value as it is held now, even while a graph is
        traced; None where it cannot be read then."""
        value = variable.value
        return value if self.is_concrete(value) else None

    def value_token(self, variable: Any) -> Any:
        """A token that changes whenever `variable` is given a new value.

        Compared with `same_token`. None where the backend has none, and
        what depends on the value must read it again each time.
        """
        return None

    def same_token(self, token: Any, other: Any) -> bool:
        return token is not None and token == other

    def graph_assert(
        self, bad: Any, ids: Any, message: str, describe: Describe, host: bool
    ) -> Any:
        """An op failing a compiled step when any `bad` is True, or None.

        `bad` flags the `ids` that fail; `message` is the error, and
        `describe(first bad id)` the error naming the id, where `host`
        callbacks may raise it.
        """
        return None

    def with_dependencies(self, tensor: Any, assertions: list[Any]) -> Any:
        """`tensor`, computed after the `assertions` ops."""
        return tensor

    def lookup(self, table: Any, rows: Any) -> Any:
        """Gathers `rows` of the `table` variable."""
        return ops.take(table, rows, axis=0)

    def sparse_gradient(self, gradient: Any) -> tuple[Any, Any] | None:
        """`(indices, values)` of a backend's own sparse gradient, or None."""
        return None

    def adam_together(
        self, optimizer: Any, grads: Any, variables: Any, learning_rate: Any
    ) -> None:
        """Adam's update of dense `variables`, all in a few operations.

        Only where `EAGER_ADAM` is set (see `SparseAdam`).
        """
        raise NotImplementedError

    def adam_rows(
        self,
        optimizer: Any,
        variable: Any,
        indices: Any,
        values: Any,
        learning_rate: Any,
    ) -> Any:
        """SparseAdam's step for the `indices` rows of a table.

        Updates the rows' moments in place with their gradient `values`
        and returns the step to subtract from the rows. Only where
        `EAGER_ADAM` is set (see `SparseAdam`).
        """
        raise NotImplementedError

    def gather_rows(self, value: Any, indices: Any) -> Any:
        """The `indices` rows of an array."""
        return ops.take(value, indices, axis=0)

    def low_precision_matmul(self, a: Any, b: Any) -> Any:
        """`a @ b` with `b` cast to `a`'s (narrow) dtype; float32 result.

        Products of bfloat16 inputs; the backend's kernel accumulates in
        float32 (oneDNN on CPUs, tensor cores on GPUs).
        """
        product = ops.matmul(a, ops.cast(b, a.dtype))
        return ops.cast(product, "float32")

    def scatter_rows(
        self, optimizer: Any, variable: Any, indices: Any, rows: Any, how: str
    ) -> None:
        """Sets (`how="set"`) or subtracts `rows` at `indices`, in place."""
        value = variable.value
        current = ops.take(value, indices, axis=0)
        new = rows if how == "set" else current - rows
        optimizer.assign(
            variable,
            ops.scatter_update(value, ops.expand_dims(indices, -1), new),
        )

    def to_device(self, array: np.ndarray) -> Any:
        """A host array as a tensor on the default device."""
        return ops.convert_to_tensor(array)

    def copy_value(self, value: Any) -> Any:
        """A copy of a variable's value that later steps leave alone."""
        return ops.copy(value)

    def save_state(
        self, model: Any, copy: bool, training: bool = False
    ) -> SavedState | None:
        """The variables' values before a Keras loop, to restore on failure.

        With `copy`, the values are copied (a compiled step may fail after
        earlier steps changed them); without, nothing is kept: a failed
        step leaves the variables as they are. `training` says the loop is
        `fit`'s.
        """
        if not model.built or not copy:
            return None
        variables = state_variables(model)
        return variables, [self.copy_value(v.value) for v in variables], True

    def restore_state(self, model: Any, saved: SavedState | None) -> None:
        """Puts back the values `save_state` kept, after a failed loop."""
        if saved is not None:
            for variable, value in zip(saved[0], saved[1], strict=True):
                variable.assign(value)

    def unshare_ema_buffers(self, model: Any) -> None:
        """Nothing to do: only JAX shares weight and average buffers."""

    def build_state(self, fn: Callable[..., Any], *args: Any) -> None:
        """Calls `fn(*args)` for the objects it builds; drops its values.

        Here the call runs eagerly, which is cheap where eager ops need no
        compilation.
        """
        fn(*args)

    def loop_blocker(self, model: Any) -> str | None:
        """Why the device loop cannot run on this backend, or None."""
        if self.Runner is None:
            return f"the {keras.backend.backend()} backend has no device loop"
        if keras.distribution.distribution() is not None:
            return "a keras.distribution distribution is set"
        return None

    def on_accelerator(self, tensor: Any) -> bool:
        """Whether `tensor` lives on a GPU or TPU rather than the CPU."""
        return False

    def export_error(self, format: str, signature: Any) -> str | None:
        """Why `RatingModel.export` cannot run here, or None."""
        return None


def batch(
    ids: Mapping[str, Any], targets: Any, index: Any
) -> tuple[dict[str, Any], Any]:
    """The rows `index` of the id columns and of the targets."""
    return (
        {
            column: ops.take(values, index, axis=0)
            for column, values in ids.items()
        },
        ops.take(targets, index, axis=0),
    )


def state_variables(model: Any) -> list[Any]:
    """Every variable a Keras loop reads or writes, each once."""
    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        variables += list(optimizer.variables)
    variables += list(getattr(model, "metrics_variables", []))
    unique: dict[int, Any] = {}
    for variable in variables:
        unique.setdefault(id(variable), variable)
    return list(unique.values())


BACKEND = Backend()
