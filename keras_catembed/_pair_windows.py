"""Pair windows: training steps that read a few of each id's pairs.

With `pairs_per_step=m`, an `ImplicitFeedback` layer's training step reads
a moving window of `m` of each row's listed pairs (`window`) and corrects
the whole sums of an anchor (a copy of the table and the sums over it) by
what the window's rows moved since; `RatingModel.fit` refreshes the
anchor as training moves the table (`RefreshAnchors`).
"""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import backend

# `sample_step` counts modulo this, so that `step * pairs_per_step` stays
# within int32.
STEP_PERIOD = 2**20
# A refresh of the anchors reads every listed pair; within an epoch it
# runs once the steps since the last one have read this many times that.
REFRESH_AFTER_READS = 1.0
# Layers whose padded lists hold at least this many values (rows x width x
# dimensions) are refreshed in at most `GROUPS` groups of rows of like
# count; smaller ones in one pass over the padded lists.
GROUPED_VALUES = 2**28
GROUPS = 8
# Whether a refresh of a table held in host memory sums the pairs as one
# sparse matrix product with SciPy (installed with JAX), when SciPy is
# there: far fewer passes over memory than gathering every pair's vector.
HOST_PRODUCT = True


def build(layer: Any) -> None:
    """Adds a layer's window variables: its step counter and anchor."""
    # Training steps taken: where each row's window starts.
    layer.sample_step = layer.add_weight(
        shape=(),
        initializer="zeros",
        dtype="int32",
        trainable=False,
        name="sample_step",
    )
    # The anchor: a copy of the table and the whole sums over it
    # (zeros are a consistent start: the sums over a zero table).
    layer.anchor = layer.add_weight(
        shape=tuple(layer.embeddings.shape),
        initializer="zeros",
        trainable=False,
        name="anchor",
    )
    layer.anchor_sums = layer.add_weight(
        shape=(layer.num_targets, layer.output_dim),
        initializer="zeros",
        trainable=False,
        name="anchor_sums",
    )


def reset(layer: Any) -> None:
    """Sets the anchor to zeros, the consistent start of `build`.

    New pairs leave the old anchor's sums wrong for every row (they sum
    the old lists), so `adapt` resets it; the next refresh anchors the
    windows at the table again.
    """
    if not layer.sampled:
        return
    for variable in (layer.anchor, layer.anchor_sums):
        variable.assign(ops.zeros(variable.shape, variable.dtype))


def own_value(variable: Any) -> Any:
    """A variable's current value (inside a stateless step, its traced one)."""
    return variable.value


def window(
    layer: Any, rows: Any, value: Callable[[Any], Any] = own_value
) -> tuple[Any, Any]:
    """The sources and weights (scaled by `n / m`) of each row's window.

    Row `t` with `n` listed pairs reads the slots `(start + j) % n`
    for `j < m` (`m = pairs_per_step`), `start = (step * m + t) % n`,
    with weights scaled by `n / m`; when `n <= m`, its `n` pairs once
    each (the other slots read the padding row, with weight zero).
    `value` gives the layer's variables' values (see `rows_needed`).
    """
    m = layer.pairs_per_step
    step = value(layer.sample_step)
    rows = ops.cast(rows, "int32")
    counts = ops.take(value(layer.pair_counts), rows, axis=0)
    size = ops.expand_dims(ops.maximum(counts, 1), -1)
    start = ops.mod(
        ops.mod(step, size) * m + ops.mod(ops.expand_dims(rows, -1), size),
        size,
    )
    offsets = ops.expand_dims(ops.arange(m, dtype="int32"), 0)
    flat = ops.expand_dims(rows, -1) * layer.width + ops.mod(
        start + offsets, size
    )
    sources = ops.take(
        ops.reshape(value(layer.pair_sources), (-1,)), flat, axis=0
    )
    weights = ops.take(
        ops.reshape(value(layer.pair_weights), (-1,)), flat, axis=0
    )
    scale = ops.cast(size, weights.dtype) / ops.cast(
        ops.minimum(size, m), weights.dtype
    )
    read = ops.less(offsets, size)
    sources = ops.where(
        read, sources, ops.full_like(sources, layer.num_sources)
    )
    weights = ops.where(read, weights * scale, ops.zeros_like(weights))
    return sources, weights


def refresh(layer: Any, pairs: Any = None) -> None:
    """Anchors the windows at the table as it is (eager use).

    Copies the table to `anchor` and writes the whole sum of every
    row's pairs over it to `anchor_sums`. A table in host memory is
    summed as one sparse product when SciPy is installed (`host_sums`;
    `pairs`, when given, is the layer's `host_pairs`, built once for
    several refreshes). Otherwise the sums are gathered a bounded slice
    of rows at a time: large layers sum their rows in a few groups of
    like count, each over as many slots as its longest list, so that the
    work follows the listed pairs rather than the padded lists
    (`row_groups`); small ones read the padded lists in one pass (fewer
    shapes for the backend to compile). `RatingModel.fit` calls it as
    training moves the table.
    """
    if not layer.sampled:
        return
    table = layer.embeddings.value
    sums = host_sums(layer, table, pairs)
    if sums is None:
        sums = gathered_sums(layer, table)
    layer.anchor_sums.assign(sums)
    # A copy: JAX's training steps donate each variable's own buffer.
    layer.anchor.assign(ops.copy(table))


def on_host(layer: Any) -> bool:
    """Whether a refresh of `layer` sums on the host (see `host_sums`)."""
    if not HOST_PRODUCT or backend.current.on_accelerator(
        layer.embeddings.value
    ):
        return False
    try:
        import scipy.sparse  # noqa: F401
    except ImportError:
        return False
    return True


def host_pairs(layer: Any) -> Any:
    """The listed pairs as a SciPy sparse matrix of weights.

    A compressed sparse row matrix of `num_targets` rows and as many
    columns as the table has rows: row `t` holds the weights of its
    first `pair_counts[t]` slots at their sources. Needs SciPy.
    """
    from scipy import sparse

    counts = ops.convert_to_numpy(layer.pair_counts).astype(np.int64)
    listed = np.arange(layer.width) < counts[:, None]
    return sparse.csr_matrix(
        (
            ops.convert_to_numpy(layer.pair_weights)[listed],
            ops.convert_to_numpy(layer.pair_sources)[listed],
            np.concatenate([[0], np.cumsum(counts)]),
        ),
        shape=(layer.num_targets, layer.embeddings.shape[0]),
    )


def host_sums(layer: Any, table: Any, pairs: Any = None) -> np.ndarray | None:
    """Every row's whole sum as one sparse product on the host, or None.

    The listed pairs (`pairs`, or `host_pairs(layer)` when not given)
    multiply the table. None when `on_host(layer)` is false:
    `HOST_PRODUCT` is off, the table is on an accelerator, or SciPy is
    not installed.
    """
    if not on_host(layer):
        return None
    if pairs is None:
        pairs = host_pairs(layer)
    values = ops.convert_to_numpy(table)
    return np.asarray(pairs @ values, dtype=values.dtype)


def gathered_sums(layer: Any, table: Any) -> Any:
    """Every row's whole sum, gathered with Keras ops a slice at a time."""
    if layer.num_targets * layer.width * layer.output_dim < GROUPED_VALUES:
        groups = [(np.arange(layer.num_targets, dtype="int32"), layer.width)]
    else:
        groups = row_groups(ops.convert_to_numpy(layer.pair_counts), GROUPS)
    parts = []
    for rows, width in groups:
        # About 2**24 gathered values at a time.
        chunk = max(1, 2**24 // (width * layer.output_dim))
        for start in range(0, len(rows), chunk):
            part = ops.convert_to_tensor(rows[start : start + chunk])
            sources = ops.take(layer.pair_sources, part, axis=0)[:, :width]
            weights = ops.take(layer.pair_weights, part, axis=0)[:, :width]
            vectors = ops.take(table, sources, axis=0)
            parts.append(ops.einsum("rwd,rw->rd", vectors, weights))
    sums = ops.concatenate(parts, axis=0)
    if len(groups) > 1:
        # Back from the groups' order to the rows' own.
        order = np.concatenate([rows for rows, _ in groups])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size, dtype=order.dtype)
        sums = ops.take(sums, ops.convert_to_tensor(inverse), axis=0)
    return sums


def row_groups(counts: np.ndarray, parts: int) -> list[tuple[np.ndarray, int]]:
    """Rows in at most `parts` groups of like count, fewest slots in all.

    Returns `(rows, width)` pairs (int32 row numbers; `width` the group's
    longest count, at least 1) that split the rows so that the sum of
    `len(rows) * width` is smallest: an exact partition of the sorted
    distinct counts, by dynamic programming.
    """
    counts = np.maximum(np.asarray(counts, dtype=np.int64), 1)
    values, sizes = np.unique(counts, return_counts=True)
    before = np.concatenate([[0], np.cumsum(sizes)])
    n = values.size
    parts = min(parts, n)
    # slots[g, j]: fewest slots for the j smallest values in g groups;
    # first[g, j]: where the last of those groups starts.
    slots = np.full((parts + 1, n + 1), np.inf)
    slots[0, 0] = 0
    first = np.zeros((parts + 1, n + 1), dtype=np.int64)
    for g in range(1, parts + 1):
        for j in range(g, n + 1):
            options = (
                slots[g - 1, :j] + (before[j] - before[:j]) * values[j - 1]
            )
            first[g, j] = np.argmin(options)
            slots[g, j] = options[first[g, j]]
    widths, j = [], n
    for g in range(parts, 0, -1):
        widths.append(int(values[j - 1]))
        j = int(first[g, j])
    widths.reverse()
    group = np.searchsorted(widths, counts)
    return [
        (np.flatnonzero(group == g).astype("int32"), width)
        for g, width in enumerate(widths)
    ]


class RefreshAnchors(keras.callbacks.Callback):  # type: ignore[misc]
    """Re-anchors the windows of pair layers as training moves the tables.

    At the first step of every epoch, and at the first step of a compiled
    call once the steps since the last refresh have read about as many
    pairs as a refresh reads (every listed pair): refreshing then costs
    about as much as the window reads between two refreshes. A layer
    refreshed on the host writes its pairs as a sparse matrix at its
    first refresh and reuses it for the callback's life (one `fit`
    call), until `adapt` or loading writes its pairs again.
    """

    def __init__(self, layers: list[Any], batch_size: int) -> None:
        super().__init__()
        self.layers = layers
        listed = sum(layer.listed_pairs() for layer in layers)
        read = batch_size * sum(layer.pairs_per_step for layer in layers)
        self.interval = max(
            1, int(np.ceil(REFRESH_AFTER_READS * listed / read))
        )
        self.last: int | None = None
        # Each layer's `host_pairs` and the `pairs_version` they were
        # built from.
        self.pairs: dict[int, tuple[Any, Any]] = {}

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.last = None

    def on_train_end(self, logs: Any = None) -> None:
        # The matrices are as large as the pairs: not kept past the call.
        self.pairs.clear()

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self.last is None or batch - self.last >= self.interval:
            # Keras's JAX loop holds the variables' values apart while it
            # runs: they are put back before the refresh reads them.
            sync = getattr(self.model, "jax_state_sync", None)
            if sync is not None:
                sync()
            for i, layer in enumerate(self.layers):
                refresh(layer, self._host_pairs(i, layer))
            self.last = batch

    def _host_pairs(self, i: int, layer: Any) -> Any:
        """`host_pairs(layer)`, reused; None where it refreshes by gathers."""
        if not on_host(layer):
            return None
        version = getattr(layer, "pairs_version", None)
        if i not in self.pairs or self.pairs[i][0] != version:
            self.pairs[i] = (version, host_pairs(layer))
        return self.pairs[i][1]


def with_refresh(
    layers: list[Any], callbacks: Any, batch_size: int | None
) -> Any:
    """`callbacks` plus the anchors' refresh when one of `layers` needs it.

    `layers`: a model's pair layers; those with windows (built, so
    adapted or about to fail `fit` with their own error) are refreshed.
    """
    layers = [layer for layer in layers if layer.sampled and layer.built]
    if not layers:
        return callbacks
    refresh = RefreshAnchors(layers, batch_size or 32)
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks.append(refresh)
        return callbacks
    return [*(callbacks or []), refresh]
