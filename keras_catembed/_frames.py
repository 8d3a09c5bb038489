"""pandas inputs: DataFrame columns by name, Series as arrays.

pandas is never imported here: an object can only be a DataFrame or a
Series if pandas is already imported, so `sys.modules` tells.
"""

import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import numpy as np


def _pandas() -> ModuleType | None:
    return sys.modules.get("pandas")


def is_dataframe(value: Any) -> bool:
    """Whether `value` is a `pandas.DataFrame` (False without pandas)."""
    pandas = _pandas()
    return pandas is not None and isinstance(value, pandas.DataFrame)


def is_series(value: Any) -> bool:
    """Whether `value` is a `pandas.Series` (False without pandas)."""
    pandas = _pandas()
    return pandas is not None and isinstance(value, pandas.Series)


def _column_values(name: str, series: Any) -> np.ndarray:
    """The NumPy values of a column, rejecting missing values (NA, NaN)."""
    missing = np.asarray(series.isna())
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        label = series.index[row]
        label = label.item() if isinstance(label, np.generic) else label
        raise ValueError(
            f"{name} holds a missing value (NA) at row {row} (index "
            f"{label!r}); {int(missing.sum())} in all. Expected "
            "a value in every row."
        )
    values: np.ndarray = series.to_numpy()
    # Nullable (masked) and Arrow-backed columns come back as objects: read
    # them in their own NumPy dtype. A column of Python objects stays one,
    # which the checks of ids and ratings reject, as for a NumPy array.
    numpy_dtype = getattr(series.dtype, "numpy_dtype", None)
    if values.dtype == object and numpy_dtype not in (None, np.dtype(object)):
        values = series.to_numpy(dtype=numpy_dtype)
    return values


def columns(
    frame: Any, wanted: Iterable[str], where: str
) -> dict[str, np.ndarray]:
    """A dict of the `wanted` columns of `frame`, as NumPy arrays.

    Other columns of `frame` are ignored; a missing one raises a
    `ValueError` naming it and the columns the frame has.
    """
    missing = [column for column in wanted if column not in frame.columns]
    if missing:
        raise ValueError(
            f"`{where}` received a DataFrame without the column(s) "
            f"{missing}. Expected the columns {list(wanted)} (others are "
            f"ignored). The DataFrame has the columns "
            f"{[str(c) for c in frame.columns]}"
        )
    return {
        column: _column_values(f"Column '{column}'", frame[column])
        for column in wanted
    }


def known_columns(frame: Any, known: Iterable[str]) -> dict[str, np.ndarray]:
    """A dict of the columns of `frame` that are in `known`."""
    return {
        column: _column_values(f"Column '{column}'", frame[column])
        for column in frame.columns
        if column in known
    }


def values(value: Any, name: str = "y") -> Any:
    """A Series (or one-column DataFrame) as a NumPy array; else `value`."""
    if is_series(value):
        return _column_values(f"`{name}`", value)
    if is_dataframe(value):
        if len(value.columns) != 1:
            raise ValueError(
                f"`{name}` must be one column of values (a Series or a "
                f"one-column DataFrame). Received a DataFrame with the "
                f"columns {[str(c) for c in value.columns]}"
            )
        # As its one Series: shape (n,), like the targets of a dict.
        return _column_values(f"`{name}`", value.iloc[:, 0])
    return value
