"""A 2-D map (PCA) of a column's learned vectors, saved as a PNG."""

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keras_catembed import _checks
from keras_catembed.explore import vectors

__all__ = ["plot_map"]


def _pca_2d(matrix: NDArray[Any]) -> NDArray[Any]:
    centered = matrix - matrix.mean(axis=0)
    _, _, components = np.linalg.svd(centered, full_matrices=False)
    projected: NDArray[Any] = centered @ components[:2].T
    if projected.shape[1] < 2:
        projected = np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))
    return projected


def plot_map(
    model: Any,
    column: str,
    labels: Sequence[str] | None = None,
    path: str = "embedding_map.png",
    *,
    counts: Sequence[float] | NDArray[Any] | None = None,
    num_labels: int = 25,
    title: str | None = None,
) -> str:
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
        counts: Optional sequence of finite numbers >= 0 (such as numbers
            of ratings), one per id index, used to pick
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
    matrix = vectors.embedding_matrix(model, column)
    num_ids = matrix.shape[0]
    vectors.per_id("labels", labels, num_ids)
    vectors.per_id("counts", counts, num_ids)
    num_labels = _checks.non_negative_int("num_labels", num_labels)
    points = _pca_2d(matrix)
    if counts is not None:
        counts = np.asarray(counts, dtype="float64")
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            bad = int(np.flatnonzero(~(np.isfinite(counts) & (counts >= 0)))[0])
            raise ValueError(
                "`counts` must hold finite numbers >= 0 (they colour the "
                f"points on a log scale). Received: {counts[bad]!r} at index "
                f"{bad}"
            )
        labelled = np.argsort(-counts, kind="stable")[:num_labels]
    else:
        labelled = np.arange(min(num_labels, num_ids))
    # A Figure without pyplot: no global backend switch, nothing shown.
    figure = Figure(figsize=(10, 8), dpi=100)
    axes = figure.subplots()
    # Colours only for counts: a colour map of nothing makes matplotlib warn.
    colours = (
        {} if counts is None else {"c": np.log1p(counts), "cmap": "viridis"}
    )
    scatter = axes.scatter(
        points[:, 0], points[:, 1], s=6, alpha=0.6, **colours
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


def _place_labels(
    axes: Any, points: Any, texts: Sequence[str], fontsize: float = 7
) -> list[Any]:
    """Labels `points` with `texts`, greedily, inside the axes, unoverlapped.

    Each label, in the order given (most important first), takes the first
    offset of `_LABEL_OFFSETS` where its box meets no label placed before;
    a box that would cross an edge of the axes is first moved back inside
    (a label near the right edge ends left of the point it names). A label
    that fits nowhere (or is wider than the axes) is left out.

    Returns:
        The placed `matplotlib.text.Annotation`s.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = axes.get_figure()
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    renderer = figure.canvas.get_renderer()
    inside = axes.get_window_extent(renderer)
    points_per_pixel = 72.0 / figure.dpi
    placed: list[Any] = []
    boxes: list[Any] = []
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
            shift_x = _shift_inside(box.x0, box.x1, inside.x0, inside.x1)
            shift_y = _shift_inside(box.y0, box.y1, inside.y0, inside.y1)
            if shift_x or shift_y:
                label.xyann = (
                    dx + shift_x * points_per_pixel,
                    dy + shift_y * points_per_pixel,
                )
                box = label.get_window_extent(renderer)
            fits = (
                box.x0 >= inside.x0 - 0.5
                and box.x1 <= inside.x1 + 0.5
                and box.y0 >= inside.y0 - 0.5
                and box.y1 <= inside.y1 + 0.5
            )
            if fits and not any(box.overlaps(other) for other in boxes):
                placed.append(label)
                boxes.append(box)
                break
            label.remove()
    return placed


def _shift_inside(
    low: float, high: float, lowest: float, highest: float
) -> float:
    """The move (in pixels) that brings `[low, high]` inside the bounds."""
    if high - low > highest - lowest:
        return 0.0
    if low < lowest:
        return lowest - low
    if high > highest:
        return highest - high
    return 0.0
