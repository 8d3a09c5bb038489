"""The checked inputs of `adapt`: table rows by column, and ratings.

`ColumnEncoder.adapt` and `RatingModel.adapt` both check every column
here, whole, before any pair layer changes.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from keras import ops

from keras_catembed import _frames
from keras_catembed import _inputs
from keras_catembed import _pairs
from keras_catembed.entity_embedding import EntityEmbedding


def rows_by_column(
    x: Mapping[str, Any], tables: Mapping[str, EntityEmbedding]
) -> dict[str, np.ndarray]:
    """The checked table rows of each column of `tables`, of one length."""
    rows = {
        column: table_rows(column, table, x[column])
        for column, table in tables.items()
    }
    if len({len(r) for r in rows.values()}) > 1:
        raise ValueError(
            "`adapt` expects columns of one length. Received lengths "
            f"{ {column: len(r) for column, r in rows.items()} }"
        )
    return rows


def table_rows(column: str, table: EntityEmbedding, ids: Any) -> np.ndarray:
    """Checked table rows of a column's ids, as a NumPy array."""
    if not _inputs.is_array_like(ids):
        raise ValueError(
            f"`adapt` expects arrays. Column {column!r} is a "
            f"{type(ids).__name__}"
        )
    _inputs.check_column_shape(column, np.shape(ids))
    table.check_ids(ids)
    ids = np.asarray(ops.convert_to_numpy(ids)).reshape(-1)
    rows: np.ndarray = ops.convert_to_numpy(
        table._rows(ops.convert_to_tensor(ids.astype("int32")))[0]
    )
    return rows


def ratings(y: Any, size: int) -> np.ndarray:
    """The checked ratings of `adapt`, as float64."""
    y = _frames.values(y)
    if y is None:
        raise ValueError(
            "A `neighborhood` weighs its pairs by their ratings: call "
            "`adapt(x, y)` with the training ratings."
        )
    if not _inputs.is_array_like(y):
        raise ValueError(
            "`adapt` expects `y` to be an array of ratings. "
            f"Received: {type(y).__name__}"
        )
    values = np.asarray(ops.convert_to_numpy(y), "float64").reshape(-1)
    if values.size != size:
        raise ValueError(
            f"`adapt` expects one rating per row: {values.size} "
            f"ratings for {size} rows"
        )
    _pairs.check_finite("`adapt`", values)
    # As `fit` checks `y`: beyond float32, a pair's weight is infinite.
    _inputs.check_finite("y", values, "rating", "Ratings")
    return values
