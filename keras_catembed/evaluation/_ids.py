"""Checks of item-id arrays shared by the ranking tools."""

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed import _requests


def check_candidate_ids(candidates: ArrayLike) -> NDArray[np.int64]:
    ids = _requests.as_ids("candidates", candidates)
    if ids.size == 0:
        raise ValueError("`candidates` must hold at least one id")
    if np.unique(ids).size != ids.size:
        raise ValueError("`candidates` must not repeat an id")
    return integer_ids("candidates", ids)


def integer_ids(name: str, ids: ArrayLike) -> NDArray[np.int64]:
    values = _requests.as_ids(name, ids)
    if values.size and (
        values.dtype == bool or not np.issubdtype(values.dtype, np.number)
    ):
        raise ValueError(
            f"`{name}` must hold integer ids. Received dtype {values.dtype}"
        )
    if values.size and not np.issubdtype(values.dtype, np.integer):
        fractional = np.flatnonzero(
            ~np.isfinite(values) | (values != np.round(values))
        )
        if fractional.size:
            raise ValueError(
                f"`{name}` must hold integer ids. Received "
                f"{values[fractional[0]]} at position {fractional[0]}"
            )
        values = values.astype("int64")
    return values.astype("int64", copy=False)


def describe(value: object) -> str:
    return type(value).__name__
