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


def every_row(layer: Any, rows: Any, source_rows: Any) -> Any:
    """The sums of every target row in a narrow dtype, then the batch's.

    Forward, the pair matrix times the table; backward, the stored
    transposed matrix times the sums' gradient. Both are row-major
    products with float32 accumulation, so neither gathers the batch's
    rows of the matrix nor multiplies a transposed operand.
    """
    weights = ops.convert_to_tensor(layer.pair_weights)
    transposed = ops.convert_to_tensor(layer.pair_weights_t)
    matmul = backend.current.low_precision_matmul

    def sums_and_gradient(table: Any) -> Any:
        def grad(*args: Any, upstream: Any = None) -> Any:
            # JAX and TensorFlow pass the upstream gradient alone, torch
            # the inputs and `upstream`.
            if upstream is None:
                (upstream,) = args
            return matmul(transposed, upstream)

        return matmul(weights, table), grad

    all_sums = ops.custom_gradient(sums_and_gradient)
    # A tensor, not the variable: TensorFlow would ask the gradient for
    # the variables the function reads.
    every = all_sums(ops.copy(layer.embeddings))
    sums = ops.cast(ops.take(every, rows, axis=0), layer.compute_dtype)
    if not layer.rated:
        return sums
    # The own pair's weight: one entry of the matrix per row.
    flat = ops.cast(rows, "int32") * layer.num_sources + ops.cast(
        source_rows, "int32"
    )
    own = ops.take(ops.reshape(weights, (-1,)), flat, axis=0)
    own = ops.expand_dims(ops.cast(own, layer.compute_dtype), -1)
    # Rounded as the product's inputs were, so that the own term leaves
    # exactly what it added to a float32 sum (JAX); TensorFlow's and
    # torch's kernels round the sum itself to bfloat16, so there the own
    # term is left out up to that rounding.
    own_vectors = ops.cast(
        ops.take(layer.embeddings, source_rows, axis=0), weights.dtype
    )
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
    if layer.narrow_pairs:
        # The product `every_row` computes, rounded as the model's sums
        # are, so that scores from these sums equal the model's.
        every = backend.current.low_precision_matmul(
            ops.convert_to_tensor(layer.pair_weights),
            ops.convert_to_tensor(layer.embeddings),
        )
        return ops.take(every, rows, axis=0)
    weights = ops.take(layer.pair_weights, rows, axis=0)
    if layer.dense:
        return ops.matmul(
            ops.cast(weights, layer.embeddings.dtype), layer.embeddings
        )
    sources = ops.take(layer.pair_sources, rows, axis=0)
    vectors = ops.take(layer.embeddings, sources, axis=0)
    return ops.sum(vectors * ops.expand_dims(weights, -1), axis=-2)
