"""What a step of a model knows about its inputs, set by the loop running it.

A loop that has checked its ids up front runs its steps without the
per-step id checks; a sparse step has gathered the table rows its batch
reads. `RatingModel` reads this context when it traces a step and passes
it to its layers as explicit call arguments (`ids_checked=`,
`gathered=`). The context is per model, so a step of another model (in a
callback, say) is unaffected.
"""

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class StepInputs:
    """The context of one model's steps.

    Attributes:
        ids_checked: Whether every id was checked before the loop began.
        gathered: Maps `id(layer)` to `(rows, positions)`: the rows of the
            layer's table the step reads, gathered, and the position in
            `rows` of each lookup.
    """

    ids_checked: bool = False
    gathered: Mapping[int, tuple[Any, Any]] = dataclasses.field(
        default_factory=dict
    )

    def rows_of(self, layer: Any) -> tuple[Any, Any] | None:
        """The gathered rows of `layer`'s table, or None."""
        return self.gathered.get(id(layer))


class RowGradient:
    """The gradient of an embedding table on a few of its rows.

    `indices` is an int32 vector of distinct row numbers (on JAX it may be
    padded with `num_rows`, an index past the end, whose entries are
    dropped) and `values` the matching `(len(indices), dim)` gradient rows.
    `RatingModel.fit` builds these on JAX and torch, where automatic
    differentiation would otherwise return a dense table-sized gradient;
    TensorFlow's own `tf.IndexedSlices` plays this role there.
    """

    def __init__(self, indices: Any, values: Any) -> None:
        self.indices = indices
        self.values = values


_DEFAULT = StepInputs()
_CONTEXT: contextvars.ContextVar[dict[int, StepInputs] | None] = (
    contextvars.ContextVar("keras_catembed_steps", default=None)
)


def current(model: Any) -> StepInputs:
    """The step context of `model` (defaults: ids unchecked, no rows)."""
    return (_CONTEXT.get() or {}).get(id(model), _DEFAULT)


@contextlib.contextmanager
def _replaced(model: Any, **changes: Any) -> Iterator[None]:
    contexts = dict(_CONTEXT.get() or {})
    contexts[id(model)] = dataclasses.replace(current(model), **changes)
    token = _CONTEXT.set(contexts)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def checked_ids(model: Any, checked: bool = True) -> Any:
    """Steps of `model` inside skip (or, with False, keep) the id checks.

    The previous setting comes back on exit, so nested loops (validation
    inside `fit`) each get their own.
    """
    return _replaced(model, ids_checked=bool(checked))


def gathered_rows(model: Any, gathered: Mapping[int, tuple[Any, Any]]) -> Any:
    """Steps of `model` inside read the tables' rows from `gathered`."""
    return _replaced(model, gathered=dict(gathered))
