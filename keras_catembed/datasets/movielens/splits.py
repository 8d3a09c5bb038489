"""The NumPy arithmetic behind `Ratings.subset` and its splits.

Each function takes arrays and returns row positions or masks; `Ratings`
checks the arguments and builds the parts.
"""

import numbers

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray


def subset_positions(indices: ArrayLike, num_rows: int) -> NDArray[np.intp]:
    """Row positions (intp) of a boolean mask or of integer positions."""
    positions = np.asarray(indices)
    if positions.dtype == bool:
        if positions.shape != (num_rows,):
            raise ValueError(
                "A boolean `indices` mask must have shape "
                f"({num_rows},). Received: shape {positions.shape}"
            )
        positions = np.flatnonzero(positions)
    elif positions.ndim != 1 or (
        positions.size and positions.dtype.kind not in "iu"
    ):
        raise ValueError(
            "`indices` must be a boolean mask or a 1-D array of integer "
            f"positions. Received: array of shape {positions.shape} and "
            f"dtype {positions.dtype}"
        )
    elif positions.size and (
        positions.min() < 0 or positions.max() >= num_rows
    ):
        bad = positions[(positions < 0) | (positions >= num_rows)][0]
        raise ValueError(
            f"`indices` must be positions in 0..{num_rows - 1}. "
            f"Received: {int(bad)}"
        )
    return positions.astype(np.intp, copy=False)


def random_test_mask(
    num_rows: int, test_fraction: object, seed: int | None
) -> NDArray[np.bool_]:
    """A mask of `round(num_rows * test_fraction)` rows drawn at random."""
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, numbers.Real)
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ValueError(
            "`test_fraction` must be a float in (0, 1). Received: "
            f"test_fraction={test_fraction!r}"
        )
    num_test = int(round(num_rows * float(test_fraction)))
    order = np.random.default_rng(seed).permutation(num_rows)
    is_test = np.zeros(num_rows, bool)
    is_test[order[:num_test]] = True
    return is_test


def temporal_test_mask(
    user_id: NDArray[np.integer],
    timestamp: NDArray[np.integer],
    num_users: int,
    num_last: object,
) -> NDArray[np.bool_]:
    """A mask of each user's `num_last` latest rows, one row kept back."""
    if (
        isinstance(num_last, bool)
        or not isinstance(num_last, numbers.Integral)
        or num_last < 1
    ):
        raise ValueError(
            "`num_last` must be a positive integer. Received: "
            f"num_last={num_last!r}"
        )
    num_rows = user_id.size
    # Stable sort by user, then time: equal timestamps keep row order.
    order = np.lexsort((timestamp, user_id))
    counts = np.bincount(user_id, minlength=num_users)
    sorted_users = user_id[order]
    first_row = np.cumsum(counts) - counts
    from_end = (
        counts[sorted_users]
        - 1
        - (np.arange(num_rows) - first_row[sorted_users])
    )
    num_test = np.minimum(int(num_last), counts - 1)
    is_test = np.empty(num_rows, bool)
    is_test[order] = from_end < num_test[sorted_users]
    return is_test
