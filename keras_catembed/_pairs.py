"""The pairs of an `ImplicitFeedback` layer: checked, sampled, stored.

`ImplicitFeedback.adapt` checks its rows here, ranks each target's pairs
in a seeded random order (to keep a sample), and writes them in the
layer's layout; loading a file checks the saved pairs before any weight
is assigned, and reads the layouts of earlier versions.
"""

import warnings
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from collections.abc import Set
from typing import Any

import numpy as np
from keras import ops

from keras_catembed import _checks
from keras_catembed import _sparse_rows


def check_finite(where: str, ratings: np.ndarray) -> None:
    """Raises, naming the first, when a rating is NaN or infinite."""
    if not np.all(np.isfinite(ratings)):
        bad = int(np.flatnonzero(~np.isfinite(ratings))[0])
        raise ValueError(
            f"{where}: rating {ratings[bad]} at row {bad} is not finite. "
            "Expected finite ratings."
        )


def check_adapt(
    layer: Any, target_rows: Any, source_rows: Any, ratings: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The pairs of `ImplicitFeedback.adapt`, checked, as int64 arrays."""
    targets = np.asarray(target_rows, dtype="int64").reshape(-1)
    sources = np.asarray(source_rows, dtype="int64").reshape(-1)
    if targets.shape != sources.shape:
        raise ValueError(
            f"{layer.name}: expected as many target rows as source rows. "
            f"Received {targets.size} and {sources.size}"
        )
    if layer.rated:
        if ratings is None:
            raise ValueError(
                f"{layer.name} weighs pairs by their ratings: pass the "
                "ratings to `adapt`."
            )
        ratings = np.asarray(ratings, dtype="float64").reshape(-1)
        if ratings.shape != targets.shape:
            raise ValueError(
                f"{layer.name}: expected one rating per pair. Received "
                f"{ratings.size} ratings for {targets.size} pairs"
            )
        check_finite(layer.name, ratings)
    if targets.size == 0:
        raise ValueError(f"{layer.name}: `adapt` received no rows")
    for name, rows, size in (
        ("target", targets, layer.num_targets),
        ("source", sources, layer.num_sources),
    ):
        bad = (rows < 0) | (rows >= size)
        if bad.any():
            raise ValueError(
                f"{layer.name}: {name} row {int(rows[bad][0])} is outside "
                f"[0, {size - 1}]"
            )
    return targets, sources, ratings


def load(
    layer: Any,
    store: Any,
    keys: Set[str],
    load_variables: Callable[[Any], None],
) -> None:
    """Loads saved pairs of any former layout; checks them first."""
    if {"targets", "sources", "weights"} <= keys:
        _load_former_pairs(layer, store)
    elif layer.dense and len(keys) == len(layer.weights) - 1:
        # Saved before `pair_counts` existed (dense layout): the pairs
        # are the non-zero entries.
        layer.embeddings.assign(store["0"])
        layer.pair_weights.assign(store["1"])
        counts = np.count_nonzero(np.asarray(store["1"]), axis=1)
        layer.pair_counts.assign(counts.astype("int32"))
    else:
        _check_saved_pairs(layer, store)
        load_variables(store)


def _check_saved_pairs(layer: Any, store: Any) -> None:
    """Checks saved pairs before any weight is assigned.

    A damaged or tampered file could hold pair indices outside the
    tables (read as NaN on JAX, as another row elsewhere) or counts
    past the lists: they are refused, and the layer keeps its weights.
    """
    keys = set(store.keys())
    saved = {
        variable.name: np.asarray(store[str(index)])
        for index, variable in enumerate(layer.weights)
        if str(index) in keys
    }
    where = f"{layer.name}: the saved"
    counts = saved.get("pair_counts")
    if counts is None or counts.shape != (layer.num_targets,):
        return  # Keras reports the missing or mis-shaped weight.
    limit = layer.num_sources if layer.dense else layer.width
    bad = np.flatnonzero((counts < 0) | (counts > limit))
    if bad.size:
        raise ValueError(
            f"{where} `pair_counts` of row {bad[0]} is {counts[bad[0]]}, "
            f"outside [0, {limit}]. The file is damaged."
        )
    sources = saved.get("pair_sources")
    if (
        layer.dense
        or sources is None
        or sources.shape
        != (
            layer.num_targets,
            layer.width,
        )
    ):
        return
    if not np.any(counts) and not np.any(sources):
        # A layer saved before `adapt`, by a version that filled its slots
        # with zeros rather than the padding row.
        return
    kept = np.arange(layer.width) < counts[:, None]
    misplaced = np.argwhere(
        np.where(
            kept,
            (sources < 0) | (sources >= layer.num_sources),
            sources != layer.num_sources,
        )
    )
    if misplaced.size:
        row, slot = misplaced[0]
        expected = (
            f"an id in [0, {layer.num_sources - 1}]"
            if kept[row, slot]
            else f"the padding row {layer.num_sources}"
        )
        raise ValueError(
            f"{where} `pair_sources[{row}, {slot}]` is "
            f"{sources[row, slot]}, expected {expected}. The file is "
            "damaged."
        )


def _load_former_pairs(layer: Any, store: Any) -> None:
    """Reads the pair arrays of the former sparse layout."""
    table = np.asarray(store["0"])
    if not layer.dense:
        table = np.concatenate([table, np.zeros_like(table[:1])])
    layer.embeddings.assign(table)
    targets = np.asarray(store["targets"], "int64")
    sources = np.asarray(store["sources"], "int64")
    weights = np.asarray(store["weights"], "float32")
    for name, values, size in (
        ("targets", targets, layer.num_targets),
        ("sources", sources, layer.num_sources),
    ):
        bad = np.flatnonzero((values < 0) | (values >= size))
        if bad.size:
            raise ValueError(
                f"{layer.name}: the saved pair {name}[{bad[0]}] is "
                f"{values[bad[0]]}, outside [0, {size - 1}]. The file "
                "is damaged."
            )
    if not targets.shape == sources.shape == weights.shape:
        raise ValueError(
            f"{layer.name}: the saved pair arrays differ in length "
            f"({targets.size}, {sources.size}, {weights.size}). The "
            "file is damaged."
        )
    counts = np.bincount(targets, minlength=layer.num_targets)
    if counts.max(initial=0) > layer.width:
        raise ValueError(
            f"{layer.name}: the saved pairs hold up to {counts.max()} "
            f"pairs per id, more than this layer's {layer.width}. Load "
            f"it with `max_pairs_per_id={counts.max()}`."
        )
    order = np.argsort(targets, kind="stable")
    targets, sources, weights = (
        targets[order],
        sources[order],
        weights[order],
    )
    rank = np.arange(targets.size) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    write(layer, targets, sources, rank, weights, counts)


def write(
    layer: Any,
    targets: np.ndarray,
    sources: np.ndarray,
    rank: np.ndarray,
    weights: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Writes pairs (each with its rank in its target's list)."""
    if layer.dense:
        matrix = np.zeros((layer.num_targets, layer.num_sources), "float32")
        matrix[targets, sources] = weights
        layer.pair_weights.assign(matrix)
        if getattr(layer, "pair_weights_t", None) is not None:
            layer.pair_weights_t.assign(np.ascontiguousarray(matrix.T))
    else:
        lists = np.full(
            (layer.num_targets, layer.width), layer.num_sources, "int32"
        )
        lists[targets, rank] = sources
        layer.pair_sources.assign(lists)
        lists = np.zeros((layer.num_targets, layer.width), "float32")
        lists[targets, rank] = weights
        layer.pair_weights.assign(lists)
    layer.pair_counts.assign(counts.astype("int32"))
    written(layer)


def weighted(
    layer: Any, targets: np.ndarray, sources: np.ndarray, ratings: Any
) -> tuple[np.ndarray, ...]:
    """The distinct pairs of checked rows, sampled and weighted.

    Returns `(targets, sources, rank, weights, counts)`: the pairs kept
    (at most `max_pairs_per_id`, or the lists' width, per target, a
    random sample drawn with the layer's seed), each one's rank in its
    target's list, its weight (`|N(t)| ** -0.5`, times its mean centred
    rating when `rated`) and the pairs kept per target.
    """
    pairs, where = np.unique(
        targets * layer.num_sources + sources, return_inverse=True
    )
    values = None
    if layer.rated:
        # The mean rating of each pair, centred on the mean rating.
        values = np.bincount(
            where, weights=ratings - ratings.mean(), minlength=pairs.size
        ) / np.bincount(where, minlength=pairs.size)
    targets = pairs // layer.num_sources
    sources = pairs % layer.num_sources
    rank = rank_within_target(targets, layer.seed)
    limit = layer.max_pairs_per_id if layer.dense else layer.width
    if limit is not None and rank.max() >= limit:
        if not layer.dense and layer.max_pairs_per_id is None:
            dropped = np.unique(targets[rank >= limit]).size
            warnings.warn(
                f"{layer.name} keeps at most {limit} pairs per id in its "
                f"lists layout; {dropped} of its ids have more and keep a "
                "random sample of them. Pass `max_pairs_per_id` to choose "
                "the cap.",
                stacklevel=3,
            )
        keep = rank < limit
        targets, sources, rank = targets[keep], sources[keep], rank[keep]
        values = None if values is None else values[keep]
    counts = np.bincount(targets, minlength=layer.num_targets)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1))
    weights = weights[targets] * (1.0 if values is None else values)
    return targets, sources, rank, weights, counts


def written(layer: Any) -> None:
    """Counts a write of `layer`'s pairs (`pairs_version`).

    What was built from the pairs (the sparse matrix of a `fit` call's
    refreshes) is built again when the count has moved.
    """
    layer.pairs_version = getattr(layer, "pairs_version", 0) + 1


def rank_within_target(targets: np.ndarray, seed: Any) -> np.ndarray:
    """A random order of the pairs of each target: 0, 1, ... per target.

    `targets` is sorted. The order is drawn with `seed`, so the same data
    keeps the same sample.
    """
    keys = np.random.default_rng(seed).random(targets.size)
    order = np.lexsort((keys, targets))
    counts = np.bincount(targets)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.empty(targets.size, "int64")
    rank[order] = np.arange(targets.size) - starts
    return rank


def check_max_pairs_per_id(value: Any) -> int | None:
    """Returns `max_pairs_per_id` (None or a positive int), or raises."""
    return check_count("max_pairs_per_id", value)


def check_count(name: str, value: Any) -> int | None:
    """Returns the argument `name` (None or a positive int), or raises."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        valid = False
    else:
        valid = bool(value >= 1)
    if not valid:
        raise ValueError(
            f"`{name}` must be None or a positive integer. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_pairs_per_step(
    value: Any, described: Sequence[str]
) -> int | dict[str, int | None] | None:
    """Returns a model's `pairs_per_step`, or raises.

    `value` is None, a positive int (every pair term's windows), or a dict
    from a column that `implicit` or `neighborhood` describes (one of
    `described`) to None or a positive int; a described column the dict
    leaves out reads every listed pair.
    """
    if not isinstance(value, Mapping):
        return check_count("pairs_per_step", value)
    checked: dict[str, int | None] = {}
    for column, count in value.items():
        if column not in described:
            raise ValueError(
                f"`pairs_per_step` names the column {column!r}, which no "
                "`implicit` or `neighborhood` term describes. Expected "
                f"one of {list(described)}. Received: "
                f"pairs_per_step={dict(value)!r}"
            )
        checked[column] = check_count(f"pairs_per_step[{column!r}]", count)
    return checked


def steps_for(
    value: int | Mapping[str, int | None] | None, column: str
) -> int | None:
    """The window of `column`'s pair terms under a model's `pairs_per_step`."""
    if isinstance(value, Mapping):
        return value.get(column)
    return value


def check_window(layer: Any) -> None:
    """Raises when a layer's windows would overflow int32 indices."""
    if layer.pairs_per_step is None:
        return
    if (
        max(layer.num_targets * layer.width, layer.width * layer.pairs_per_step)
        >= 2**31
    ):
        raise ValueError(
            f"{layer.name}: {layer.num_targets} ids with lists of "
            f"{layer.width} pairs and pairs_per_step={layer.pairs_per_step} "
            "exceed int32 indices. Expected num_targets * max_pairs_per_id "
            "and max_pairs_per_id * pairs_per_step below 2**31."
        )


def load_retried(layer: Any, store: Any, base_load: Any) -> None:
    """`load`, keeping the reason of a failure for Keras's retry."""
    keys = set(store.keys())
    # Saved pairs are checked before any weight is assigned.
    _checks.load_keeping_reason(
        layer, store, lambda: load(layer, store, keys, base_load)
    )
    written(layer)


def check_model_adapted(model: Any) -> None:
    """Raises unless every pair layer of `model` holds pairs (eagerly)."""
    for layer in _sparse_rows.pair_layers(model):
        check_adapted(layer)


def check_adapted(layer: Any, checked: bool = False) -> Any:
    """Raises unless the `ImplicitFeedback` layer holds pairs.

    Returns None, or, inside a compiled graph, the graph's own check of
    the counts, which fails with the same message as it runs: a compiled
    function outlives the values it was traced with (`set_weights` may
    take the pairs away), and Keras's JAX loops hide the counts while
    they trace. `checked`: the caller checked the pairs before the loop
    (`RatingModel`'s loops check them on every call), so the graph needs
    no check.
    """
    if checked:
        return None
    held = layer.held_adapted()
    if held and _checks.is_concrete(layer.pair_counts.value):
        return None
    example = "x_train, y_train" if layer.rated else "x_train"
    message = (
        f"{layer.name} holds no pairs yet: call `adapt` with the training "
        "inputs before training or predicting, on the RatingModel or on "
        "the ColumnEncoder that holds this layer (e.g. "
        f"`model.adapt({example})` or `encoder.adapt({example})`)."
    )
    if held is False:
        raise ValueError(message)
    return _checks.graph_fail(
        ops.logical_not(ops.any(ops.greater(layer.pair_counts, 0))), message
    )
