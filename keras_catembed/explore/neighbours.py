"""Nearest neighbours of an id among a column's learned vectors."""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed import _checks
from keras_catembed.explore import vectors

__all__ = ["METRICS", "nearest"]

METRICS = ("cosine", "euclidean", "dot")


def _scores(
    matrix: NDArray[Any], query: NDArray[Any], metric: str
) -> NDArray[Any]:
    scores: NDArray[Any]
    if metric == "cosine":
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
        scores = (matrix @ query) / np.maximum(norms, 1e-12)
    elif metric == "dot":
        scores = matrix @ query
    else:
        scores = np.linalg.norm(matrix - query, axis=1)
    return scores


def nearest(
    model: Any,
    column: str,
    index: int,
    k: int = 10,
    metric: str = "cosine",
    *,
    candidates: ArrayLike | None = None,
    center: bool = False,
) -> tuple[NDArray[np.intp], NDArray[Any]]:
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
        center: Boolean. Whether to remove the part every vector shares
            before measuring: the mean vector of the candidates (and the
            query) is subtracted, and then each vector's component along
            that mean's direction. Vectors with a large common part (as
            with implicit feedback, where every movie's vector holds the
            normalized sum over its raters, which grows along one shared
            direction with the number of raters) all have cosine
            similarities near 1; subtracting the mean alone leaves that
            direction, with lengths that differ from id to id, and scores
            near 1 or -1. Centred, the scores compare what sets the ids
            apart. Defaults to `False`.

    Returns:
        A tuple `(indices, scores)` of NumPy arrays of length at most `k`,
        best first; the query itself is left out.

    Example:

    ```python
    indices, scores = keras_catembed.explore.nearest(
        model, "movie_id", index=0, k=5)
    ```
    """
    matrix = vectors.embedding_matrix(model, column)
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
            candidates.dtype.kind not in "iu"
            or candidates.size == 0
            or candidates.ndim != 1
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
        matrix = _centred(matrix, used)
    allowed[index] = False
    scores = _scores(matrix, matrix[index], metric)
    order = np.argsort(
        scores if metric == "euclidean" else -scores, kind="stable"
    )
    order = order[allowed[order]][:k]
    return order, scores[order]


def _centred(matrix: NDArray[Any], used: NDArray[Any]) -> NDArray[Any]:
    """`matrix` less the mean of its `used` rows and the mean's direction."""
    mean = matrix[used].mean(axis=0)
    matrix = matrix - mean
    norm = np.linalg.norm(mean)
    if norm > 0:
        direction = mean / norm
        matrix = matrix - np.outer(matrix @ direction, direction)
    return matrix
