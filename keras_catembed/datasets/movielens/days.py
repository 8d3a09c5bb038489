"""The (user, day) index map of a `"user_day"` column, pure NumPy.

Each rating's key packs its user index and its day (UTC); a data set's
map is its distinct keys, sorted, and a rating's index is its key's
position there (`Ratings.user_day()`).
"""

from typing import Any

import numpy as np
from numpy.typing import NDArray

_SECONDS_PER_DAY = 86_400


def _user_day_keys(
    user_id: NDArray[np.int32], timestamp: NDArray[np.int64]
) -> NDArray[np.int64]:
    """One key per rating: its user index and its day (UTC)."""
    day: NDArray[np.int64] = timestamp // _SECONDS_PER_DAY
    user: NDArray[np.int64] = user_id.astype(np.int64)
    return user * 2**32 + (day + 2**31)


class UserDays:
    """A data set's distinct (user, day) keys, sorted, made on first use.

    Splits share the object, so the keys are the whole data set's; sorting
    only when a `"user_day"` column is asked for keeps loading a large
    release as fast as before.
    """

    def __init__(
        self, user_id: NDArray[np.int32], timestamp: NDArray[np.int64]
    ) -> None:
        self._arrays: tuple[Any, Any] | None = (user_id, timestamp)
        self._keys: NDArray[np.int64] | None = None

    @property
    def keys(self) -> NDArray[np.int64]:
        if self._keys is None:
            assert self._arrays is not None
            # A sort, then the first of each run: faster than `np.unique`
            # on 64-bit keys.
            keys = np.sort(_user_day_keys(*self._arrays))
            first = np.ones(keys.size, bool)
            first[1:] = keys[1:] != keys[:-1]
            self._keys, self._arrays = keys[first], None
        return self._keys


def day_indices(
    keys: NDArray[np.int64],
    user_id: NDArray[np.int32],
    timestamp: NDArray[np.int64],
) -> NDArray[np.int32]:
    """The position in the map `keys` of each rating's user and day.

    Raises:
        ValueError: naming the first rating whose day `keys` lacks.
    """
    wanted = _user_day_keys(user_id, timestamp)
    positions = np.searchsorted(keys, wanted)
    found = positions < keys.size
    found[found] = keys[positions[found]] == wanted[found]
    if not found.all():
        first = int(np.argmin(found))
        raise ValueError(
            f"The rating at row {first} (user index "
            f"{int(user_id[first])}, timestamp {int(timestamp[first])}) is "
            "on a day that the index map `user_days` does not hold. "
            "Expected ratings split from the `Ratings` that made the map."
        )
    return positions.astype(np.int32)
