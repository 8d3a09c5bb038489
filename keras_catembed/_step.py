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

import keras


@dataclasses.dataclass(frozen=True)
class StepInputs:
    """The context of one model's steps.

    Attributes:
        ids_checked: Whether every id was checked before the loop began.
        gathered: Maps `id(layer)` to `(rows, positions, indices)`: the
            rows of the layer's table the step reads, gathered, the
            position in `rows` of each lookup, and the table row each of
            `rows` is (on JAX, padded with an index past the table's end;
            None when `rows` is the whole table, row `i` at `i`).
        direct: Whether the model's own forward pass calls its layers'
            `call` methods instead of the layers themselves. Keras's
            per-call bookkeeping (input conversion, build, autocast, masks)
            costs more than a small layer's arithmetic when a backend runs
            eagerly; the loop sets this only for a model whose layers need
            none of it (`keras_catembed._forward.calls_layers_directly`).
    """

    ids_checked: bool = False
    gathered: Mapping[int, tuple[Any, ...]] = dataclasses.field(
        default_factory=dict
    )
    direct: bool = False

    def rows_of(self, layer: Any) -> tuple[Any, ...] | None:
        """The gathered rows of `layer`'s table, or None."""
        return self.gathered.get(id(layer))

    def invoke(self, layer: Any, *args: Any, **kwargs: Any) -> Any:
        """`layer(*args, **kwargs)`, or `layer.call(...)` when `direct`."""
        if self.direct:
            return layer.call(*args, **kwargs)
        return layer(*args, **kwargs)


class RowGradient:
    """The gradient of an embedding table on a few of its rows.

    `indices` is an int32 vector of distinct row numbers (on JAX it may be
    padded with `num_rows`, an index past the end, whose entries are
    dropped; or `jax_rows.EveryRow`, every row at its own slot, for a
    table no larger than the step's lookups) and `values` the matching
    `(len(indices), dim)` gradient rows.
    `rows`, when given, holds the table's current values of those rows (the
    step read them already), so that an optimizer need not read them
    again. `RatingModel.fit` builds these on JAX and torch, where automatic
    differentiation would otherwise return a dense table-sized gradient;
    TensorFlow's own `tf.IndexedSlices` plays this role there.
    """

    def __init__(self, indices: Any, values: Any, rows: Any = None) -> None:
        self.indices = indices
        self.values = values
        self.rows = rows


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


def gathered_rows(model: Any, gathered: Mapping[int, tuple[Any, ...]]) -> Any:
    """Steps of `model` inside read the tables' rows from `gathered`."""
    return _replaced(model, gathered=dict(gathered))


def direct_calls(model: Any, direct: bool = True) -> Any:
    """Steps of `model` inside call its layers' `call` (see `StepInputs`)."""
    return _replaced(model, direct=bool(direct))


# Loss reductions under which a batch padded with zero-weight rows can
# train as the batch of its real rows alone: by name, the weight of a real
# row when a batch of `size` rows holds `real` of them ("scaled":
# size / real, for reductions that divide by the batch size; "one": 1).
_PADDING_WEIGHTS = {
    "sum_over_batch_size": "scaled",
    "mean": "scaled",
    "sum": "one",
    "mean_with_sample_weight": "one",
}


# The `compute_loss` and `compute_metrics` whose results a padded batch's
# zero weights keep exact: Keras's own, and the library's (which only adds
# a check of streamed targets to Keras's): `own_method` adds it.
_OWN_METHODS: dict[str, list[Any]] = {
    "compute_loss": [keras.Model.compute_loss],
    "compute_metrics": [keras.Model.compute_metrics],
}


def own_method(method: Any) -> Any:
    """Marks `method` as computing what Keras's method of its name does."""
    _OWN_METHODS[method.__name__].append(method)
    return method


def padding_weights(model: Any) -> str | None:
    """How a step weights the real rows of a padded batch, or None.

    A padded batch (an epoch's last batch filled up to the batch size, so
    that no second program is compiled for it) trains exactly as its real
    rows alone when its padding rows weigh 0 in the loss and the metrics
    and its real rows weigh what `_PADDING_WEIGHTS` says for the loss's
    reduction. None (no padding) when that is not known: a loss of
    another reduction, or a model with its own `compute_loss` or
    `compute_metrics`. (The loop also pads only a model whose forward
    pass is RatingModel's own: a subclass's layers might mix rows.)
    """
    for name in ("compute_loss", "compute_metrics"):
        if getattr(type(model), name) not in _OWN_METHODS[name]:
            return None
    if _weighable_metrics(model) is None:
        return None
    losses = model.loss
    if isinstance(losses, Mapping):
        losses = list(losses.values())
    elif not isinstance(losses, (list, tuple)):
        losses = [losses]
    kinds = set()
    for loss in losses:
        if loss is None:
            return None
        # Strings and functions take `compile`'s reduction.
        reduction = getattr(loss, "reduction", "sum_over_batch_size")
        kinds.add(_PADDING_WEIGHTS.get(reduction))
    if len(kinds) != 1:
        return None
    return kinds.pop()


def _weighable_metrics(model: Any) -> list[Any] | None:
    """The compiled metrics of `model` one by one, or None if unknown.

    `keras.Model.compute_metrics` weights only `weighted_metrics` by the
    sample weights; a padded batch needs every metric to skip its padding,
    so `masked_metrics` updates them one by one. None when the model
    tracks metrics other than its loss and the compiled ones (the
    per-output losses of a model of several outputs, say), or a compiled
    metric is not one of Keras's classes.
    """
    compiled = getattr(model, "_compile_metrics", None)
    others = [
        metric
        for metric in model.metrics
        if metric is not getattr(model, "_loss_tracker", None)
        and metric is not compiled
    ]
    if others:
        return None
    metrics = [] if compiled is None else list(compiled.metrics)
    # Keras's own metric classes weigh each row by its sample weight (a
    # function or name is wrapped in one); a metric class of the user's
    # might ignore the weight and count the padding rows.
    if any(
        not type(metric).__module__.startswith(("keras.", "keras_catembed."))
        for metric in metrics
    ):
        return None
    return metrics


def masked_metrics(model: Any, y: Any, y_pred: Any, weight: Any) -> Any:
    """Updates the compiled metrics on the rows of weight 1; their results.

    What `keras.Model.compute_metrics` does for a batch of just those rows
    (see `padding_weights`).
    """
    for metric in _weighable_metrics(model) or []:
        metric.update_state(y, y_pred, sample_weight=weight)
    return model.get_metrics_result()
