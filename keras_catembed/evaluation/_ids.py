"""Checks of item-id arrays shared by the ranking tools."""

import numpy as np

from keras_catembed import _recommend


def check_candidate_ids(candidates):
    candidates = _recommend._as_ids("candidates", candidates)
    if candidates.size == 0:
        raise ValueError("`candidates` must hold at least one id")
    if np.unique(candidates).size != candidates.size:
        raise ValueError("`candidates` must not repeat an id")
    return integer_ids("candidates", candidates)


def integer_ids(name, values):
    values = _recommend._as_ids(name, values)
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


def describe(value):
    return type(value).__name__
