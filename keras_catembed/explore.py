"""Look inside learned embeddings: neighbours, 2-D maps, TensorBoard export.

Every function takes a trained model and a column name. For a
`keras_catembed.RatingModel` the column is a key of its `embeddings`; for
any other Keras model it is the name of an `EntityEmbedding` or
`keras.layers.Embedding` layer. Out-of-vocabulary rows are left out: row
`i` of the returned matrix is the vector of id index `i`.
"""

import os

import keras
import numpy as np
from keras import ops

from keras_catembed import _checks
from keras_catembed.entity_embedding import EntityEmbedding

__all__ = ["embedding_matrix", "nearest", "plot_map", "to_projector"]

METRICS = ("cosine", "euclidean", "dot")


def _embedding_layer(model, column):
    layers = getattr(model, "embedding_layers", None)
    if isinstance(layers, dict) and column in layers:
        return layers[column]
    try:
        layer = model.get_layer(column)
    except ValueError:
        layer = None
    if isinstance(layer, (EntityEmbedding, keras.layers.Embedding)):
        return layer
    if isinstance(layers, dict):
        known = list(layers)
    else:
        known = [
            layer.name
            for layer in getattr(model, "layers", [])
            if isinstance(layer, (EntityEmbedding, keras.layers.Embedding))
        ]
    raise ValueError(
        f"`column` must name an embedding of the model; one of {known}. "
        f"Received: column={column!r}"
    )


def embedding_matrix(model, column):
    """Returns the learned vectors of one column as a NumPy array.

    Args:
        model: A trained `keras_catembed.RatingModel` (or a Keras model with
            an embedding layer named `column`).
        column: String. The column (or embedding layer) name.

    Returns:
        A float32 array of shape `(num_ids, output_dim)`; row `i` is the
        vector of id index `i` (OOV rows are left out). For a column with
        implicit feedback (`RatingModel(implicit=...)`) it is the vector
        the model uses: the id's own row plus its implicit-feedback vector.

    Raises:
        ValueError: if the model has no such column or is not built yet.
    """
    layer = _embedding_layer(model, column)
    if not layer.built:
        raise ValueError(
            f"The embedding of column {column!r} is not built yet: train or "
            "build the model first."
        )
    matrix = np.asarray(ops.convert_to_numpy(layer.embeddings), "float32")
    implicit = getattr(model, "implicit_layers", {}).get(column)
    if implicit is not None and implicit.adapted:
        matrix = matrix + _whole_sums(implicit, matrix.shape[0])
    neighbors = getattr(model, "neighborhood_layers", {}).get(column)
    if neighbors is not None and neighbors.adapted:
        sums = _whole_sums(neighbors, matrix.shape[0])
        matrix = np.concatenate([matrix, sums], axis=-1)
    num_ids = getattr(layer, "num_ids", matrix.shape[0])
    return matrix[:num_ids]


def _whole_sums(layer, num_rows, block=4096):
    """`layer.sums` of rows `0..num_rows-1`, a block of rows at a time."""
    parts = []
    for start in range(0, num_rows, block):
        rows = np.arange(start, min(start + block, num_rows), dtype="int32")
        sums = layer.sums(ops.convert_to_tensor(rows))
        parts.append(np.asarray(ops.convert_to_numpy(sums), "float32"))
    return np.concatenate(parts)


def _scores(matrix, query, metric):
    if metric == "cosine":
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
        return (matrix @ query) / np.maximum(norms, 1e-12)
    if metric == "dot":
        return matrix @ query
    return np.linalg.norm(matrix - query, axis=1)


def nearest(
    model,
    column,
    index,
    k=10,
    metric="cosine",
    *,
    candidates=None,
    center=False,
):
    """Finds the `k` ids whose vectors are closest to that of `index`.

    Args:
        model: A trained `keras_catembed.RatingModel`.
        column: String. The column name.
        index: Integer. The id index (row) to query.
        k: Integer. Number of neighbours. Defaults to `10`.
        metric: `"cosine"` (similarity, highest first), `"dot"` (highest
            first) or `"euclidean"` (distance, lowest first). Defaults to
            `"cosine"`.
        candidates: Optional boolean mask of shape `(num_ids,)`, or
            sequence of id indices: only these may be returned. Rarely seen
            ids have noisy vectors; passing the ids with enough data (e.g.
            movies with at least 20 ratings) gives cleaner neighbours.
            Defaults to `None` (every id).
        center: Boolean. Whether to subtract the mean vector of the
            candidates (and the query) from every vector before measuring.
            Vectors that share a large common part (as with implicit
            feedback, where every movie's vector holds the sum over its
            raters) all have cosine similarities near 1; centring
            compares what sets them apart. Euclidean distances do not
            change. Defaults to `False`.

    Returns:
        A tuple `(indices, scores)` of NumPy arrays of length at most `k`,
        best first; the query itself is left out.

    Example:

    ```python
    indices, scores = keras_catembed.explore.nearest(
        model, "movie_id", index=0, k=5)
    ```
    """
    matrix = embedding_matrix(model, column)
    num_ids = matrix.shape[0]
    if (
        isinstance(index, bool)
        or not isinstance(index, (int, np.integer))
        or not 0 <= index < num_ids
    ):
        raise ValueError(
            f"`index` must be an integer in [0, {num_ids - 1}] for column "
            f"{column!r}. Received: index={index!r}"
        )
    k = _checks.positive_int("k", k)
    if metric not in METRICS:
        raise ValueError(
            f"`metric` must be one of {METRICS}. Received: metric={metric!r}"
        )
    allowed = np.ones(num_ids, dtype=bool)
    if candidates is not None:
        candidates = np.asarray(candidates)
        if candidates.dtype != bool and (
            candidates.dtype.kind not in "iu" or candidates.size == 0
        ):
            raise ValueError(
                "`candidates` must be a boolean mask or a non-empty sequence "
                f"of integer id indices. Received: {candidates!r}"
            )
        if candidates.dtype == bool:
            if candidates.shape != (num_ids,):
                raise ValueError(
                    f"A boolean `candidates` mask must have shape "
                    f"({num_ids},). Received: shape={candidates.shape}"
                )
            allowed = candidates
        else:
            outside = (candidates < 0) | (candidates >= num_ids)
            if np.any(outside):
                raise ValueError(
                    f"`candidates` must be id indices in [0, {num_ids - 1}]. "
                    f"Received: {candidates[outside][0]!r}"
                )
            allowed = np.zeros(num_ids, dtype=bool)
            allowed[candidates] = True
    if not isinstance(center, (bool, np.bool_)):
        raise ValueError(
            f"`center` must be a bool. Received: center={center!r}"
        )
    allowed = allowed.copy()
    if center:
        used = allowed.copy()
        used[index] = True
        matrix = matrix - matrix[used].mean(axis=0)
    allowed[index] = False
    scores = _scores(matrix, matrix[index], metric)
    order = np.argsort(
        scores if metric == "euclidean" else -scores, kind="stable"
    )
    order = order[allowed[order]][:k]
    return order, scores[order]


def _pca_2d(matrix):
    centered = matrix - matrix.mean(axis=0)
    _, _, components = np.linalg.svd(centered, full_matrices=False)
    projected = centered @ components[:2].T
    if projected.shape[1] < 2:
        projected = np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))
    return projected


def plot_map(
    model,
    column,
    labels=None,
    path="embedding_map.png",
    *,
    counts=None,
    num_labels=25,
    title=None,
):
    """Draws a 2-D map (PCA) of one column's vectors and saves it as PNG.

    Points are coloured by `counts` (e.g. number of ratings) when given,
    and the `num_labels` most counted ids are labelled. Needs matplotlib
    (`pip install "keras-catembed[plot]"`).

    Args:
        model: A trained `keras_catembed.RatingModel`.
        column: String. The column name.
        labels: Optional sequence of strings, one per id index (e.g. movie
            titles). Defaults to the indices.
        path: String. Where to write the PNG. Defaults to
            `"embedding_map.png"`.
        counts: Optional sequence of numbers, one per id index, used to pick
            the ids to label and to colour points. Defaults to `None` (the
            first `num_labels` ids are labelled).
        num_labels: Integer >= 0. How many points get a label. Defaults to
            `25`.
        title: Optional string. Defaults to a title naming the column.

    Returns:
        The path of the written PNG.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plot_map needs matplotlib. Install it with: "
            'pip install "keras-catembed[plot]"'
        ) from error
    matrix = embedding_matrix(model, column)
    num_ids = matrix.shape[0]
    labels = _per_id("labels", labels, num_ids)
    counts = _per_id("counts", counts, num_ids)
    num_labels = _checks.non_negative_int("num_labels", num_labels)
    points = _pca_2d(matrix)
    if counts is not None:
        counts = np.asarray(counts, dtype="float64")
        labelled = np.argsort(-counts, kind="stable")[:num_labels]
    else:
        labelled = np.arange(min(num_labels, num_ids))
    # A Figure without pyplot: no global backend switch, nothing shown.
    figure = Figure(figsize=(10, 8), dpi=100)
    axes = figure.subplots()
    scatter = axes.scatter(
        points[:, 0],
        points[:, 1],
        s=6,
        c=None if counts is None else np.log1p(counts),
        cmap="viridis",
        alpha=0.6,
    )
    if counts is not None:
        figure.colorbar(scatter, ax=axes, label="log(1 + count)")
    axes.set_xlabel("principal component 1")
    axes.set_ylabel("principal component 2")
    axes.set_title(title or f"Learned embeddings of {column!r} (PCA)")
    figure.tight_layout()
    # Labels go on last, once the axes have their final size.
    _place_labels(
        axes,
        points[labelled],
        [str(i) if labels is None else str(labels[i]) for i in labelled],
    )
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    figure.savefig(path)
    return path


# Offsets (in points) tried for a label, right of its point first.
_LABEL_OFFSETS = ((3, 3), (3, -9), (-3, 3), (-3, -9), (3, 12), (3, -18))


def _place_labels(axes, points, texts, fontsize=7):
    """Labels `points` with `texts`, greedily, without overlapping boxes.

    Each label, in the order given (most important first), takes the first
    offset of `_LABEL_OFFSETS` where its box meets no label placed before;
    a label that fits nowhere is left out.

    Returns:
        The placed `matplotlib.text.Annotation`s.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = axes.get_figure()
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    renderer = figure.canvas.get_renderer()
    placed = []
    boxes = []
    for point, text in zip(points, texts, strict=True):
        for dx, dy in _LABEL_OFFSETS:
            label = axes.annotate(
                text,
                point,
                xytext=(dx, dy),
                textcoords="offset points",
                ha="left" if dx >= 0 else "right",
                fontsize=fontsize,
                alpha=0.9,
            )
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in boxes):
                placed.append(label)
                boxes.append(box)
                break
            label.remove()
    return placed


def _per_id(name, values, num_ids):
    if values is None:
        return None
    if len(values) != num_ids:
        raise ValueError(
            f"`{name}` must have one entry per id ({num_ids}). Received "
            f"{len(values)} entries"
        )
    return values


def _tsv_cell(value):
    return str(value).replace("\t", " ").replace("\n", " ")


def to_projector(model, column, log_dir, metadata=None):
    """Writes files that TensorBoard's embedding projector opens.

    Writes `<column>_vectors.tsv`, `<column>_metadata.tsv` (when `metadata`
    is given) and `projector_config.pbtxt` into `log_dir`. Open them with
    `tensorboard --logdir LOG_DIR` (Projector tab), or load the two TSV
    files at projector.tensorflow.org.

    Args:
        model: A trained `keras_catembed.RatingModel`.
        column: String. The column name.
        log_dir: String. Folder to write into (created if missing).
        metadata: Optional sequence of labels (one per id index), or a dict
            mapping a column header to such a sequence (several metadata
            columns, e.g. `{"title": titles, "genres": genres}`). A
            one-column file gets no header row, as the projector expects.

    Returns:
        Dict with the paths written: `"vectors"`, `"metadata"` (or None) and
        `"config"`.
    """
    matrix = embedding_matrix(model, column)
    num_ids = matrix.shape[0]
    os.makedirs(log_dir, exist_ok=True)
    vectors_path = os.path.join(log_dir, f"{column}_vectors.tsv")
    np.savetxt(vectors_path, matrix, delimiter="\t", fmt="%.6g")
    metadata_path = None
    lines = [
        "embeddings {",
        f'  tensor_name: "{column}"',
        f'  tensor_path: "{os.path.basename(vectors_path)}"',
    ]
    if metadata is not None:
        if isinstance(metadata, dict) and len(metadata) > 1:
            headers = list(metadata)
            columns = [
                _per_id(f"metadata[{h!r}]", metadata[h], num_ids)
                for h in headers
            ]
        else:
            # The projector reads a one-column file as having no header.
            if isinstance(metadata, dict):
                metadata = next(iter(metadata.values()))
            headers = None
            columns = [_per_id("metadata", metadata, num_ids)]
        metadata_path = os.path.join(log_dir, f"{column}_metadata.tsv")
        with open(metadata_path, "w", encoding="utf-8") as file:
            if headers is not None:
                file.write("\t".join(_tsv_cell(h) for h in headers) + "\n")
            for row in zip(*columns, strict=True):
                file.write("\t".join(_tsv_cell(v) for v in row) + "\n")
        lines.append(f'  metadata_path: "{os.path.basename(metadata_path)}"')
    lines.append("}")
    config_path = os.path.join(log_dir, "projector_config.pbtxt")
    with open(config_path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    return {
        "vectors": vectors_path,
        "metadata": metadata_path,
        "config": config_path,
    }
