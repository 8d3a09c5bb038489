"""The sums of an `ImplicitFeedback` layer, in its two layouts.

`ImplicitFeedback.call` checks its arguments and calls `dense` or
`lists`; with `rated`, both leave each row's own pair out of its sum.
"""

from typing import Any

from keras import ops

from keras_catembed import _pair_windows
from keras_catembed import backend

# Whether a sparse step's window subtracts the anchor from its distinct
# gathered rows (once per row) rather than from each pair read (once per
# pair, the anchor gathered again); off only to measure the difference.
ANCHOR_BY_ROW = True


def dense(layer: Any, rows: Any, source_rows: Any) -> Any:
    """A batch of rows of the pair matrix times the table."""
    weights = ops.cast(
        ops.take(layer.pair_weights, rows, axis=0), layer.compute_dtype
    )
    sums = ops.matmul(weights, ops.cast(layer.embeddings, layer.compute_dtype))
    if not layer.rated:
        return sums
    own = ops.take_along_axis(weights, ops.expand_dims(source_rows, -1), axis=1)
    own_vectors = ops.take(layer.embeddings, source_rows, axis=0)
    return sums - own * ops.cast(own_vectors, layer.compute_dtype)


def lists(
    layer: Any,
    rows: Any,
    source_rows: Any,
    training: bool | None,
    gathered: tuple[Any, ...] | None,
) -> Any:
    """The listed pairs of each row (in training, maybe a window of them).

    `gathered` is `(table_rows, positions)` or `(table_rows, positions,
    indices)` from a sparse training step: the rows of
    `layer.rows_needed`, gathered, the position of each, and the table
    row each gathered row is, or None when they are the whole table in
    order (with it, a window subtracts its anchor once per distinct
    row).
    """
    windowed = training and layer.sampled
    regularized = (
        training
        and layer._row_regularization
        and layer.embeddings_regularizer is not None
    )
    if windowed:
        sources, weights = _pair_windows.window(layer, rows)
        layer.sample_step.assign(
            ops.mod(layer.sample_step.value + 1, _pair_windows.STEP_PERIOD)
        )
    else:
        sources = ops.take(layer.pair_sources, rows, axis=0)
        weights = ops.take(layer.pair_weights, rows, axis=0)
    weights = ops.cast(weights, layer.compute_dtype)
    # Whether `vectors` already hold what the rows moved since the anchor.
    anchored = False
    if gathered is not None:
        # The sparse training step gathered the rows of `rows_needed`:
        # look them up by position.
        table, positions = gathered[0], gathered[1]
        lists = ops.reshape(positions[: ops.size(sources)], ops.shape(sources))
        drift = table
        if windowed and not regularized and len(gathered) > 2 and ANCHOR_BY_ROW:
            # What the rows moved since the anchor, taken once per
            # distinct row (the step's own gathered rows) rather than
            # once per pair read.
            anchored = True
            anchor = layer.anchor.value
            if gathered[2] is not None:
                anchor = backend.current.gather_rows(anchor, gathered[2])
            drift = table - anchor
        vectors = backend.current.gather_rows(drift, lists)
    else:
        # Gathered from the variable itself, so that the gradient touches
        # only these rows (a TensorFlow `IndexedSlices`).
        vectors = ops.take(layer.embeddings, sources, axis=0)
    if regularized:
        # Once per pair read; the padding row is zero.
        layer.add_loss(layer.embeddings_regularizer(vectors))
    if windowed and not anchored:
        # What the window's rows moved since the anchor.
        vectors = vectors - ops.take(layer.anchor, sources, axis=0)
    vectors = ops.cast(vectors, layer.compute_dtype)
    # One batched product rather than the weighted vectors summed: the
    # weighted vectors are never written out.
    sums = ops.squeeze(ops.matmul(ops.expand_dims(weights, -2), vectors), -2)
    if windowed:
        sums = sums + ops.cast(
            ops.take(layer.anchor_sums, rows, axis=0), layer.compute_dtype
        )
    if not layer.rated:
        return sums
    if windowed:
        # The own pair's whole weight, from the row's whole list.
        sources = ops.take(layer.pair_sources, rows, axis=0)
        weights = ops.cast(
            ops.take(layer.pair_weights, rows, axis=0), layer.compute_dtype
        )
    # Each pair is listed once; padding reads the zero row.
    mine = ops.equal(sources, ops.expand_dims(source_rows, -1))
    own = ops.sum(
        ops.where(mine, weights, ops.zeros_like(weights)),
        axis=-1,
        keepdims=True,
    )
    if gathered is not None:
        table, positions = gathered[0], gathered[1]
        own_vectors = backend.current.gather_rows(
            table, positions[ops.size(positions) - ops.size(rows) :]
        )
    else:
        own_vectors = ops.take(layer.embeddings, source_rows, axis=0)
    return sums - own * ops.cast(own_vectors, layer.compute_dtype)


def whole(layer: Any, rows: Any) -> Any:
    """The whole weighted sum of each row's pairs (nothing left out)."""
    weights = ops.take(layer.pair_weights, rows, axis=0)
    if layer.dense:
        return ops.matmul(weights, layer.embeddings)
    sources = ops.take(layer.pair_sources, rows, axis=0)
    vectors = ops.take(layer.embeddings, sources, axis=0)
    return ops.sum(vectors * ops.expand_dims(weights, -1), axis=-2)
