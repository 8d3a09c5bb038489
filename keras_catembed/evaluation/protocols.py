"""Evaluation protocols: ways to split ratings into train and test parts.

A protocol splits the rows of a data set into `(train, test)` pairs of row
indices (`split`: sorted, disjoint int64 arrays) or of data (`split_data`).
The data is a `keras_catembed.datasets.movielens.Ratings` or a dict of 1-D
NumPy arrays of equal length, one per column (e.g. `{"user_id": ...,
"movie_id": ..., "rating": ..., "timestamp": ...}`). The same data and seed
always give the same splits.
"""

from __future__ import annotations

import collections.abc
import numbers
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import cast

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed.evaluation._common import Data
from keras_catembed.evaluation._common import check_fraction
from keras_catembed.evaluation._common import check_seed
from keras_catembed.evaluation._common import column
from keras_catembed.evaluation._common import is_int
from keras_catembed.evaluation._common import num_rows
from keras_catembed.evaluation._common import row_keys
from keras_catembed.evaluation._common import take
from keras_catembed.evaluation._common import timestamps

__all__ = [
    "HoldOut",
    "KFold",
    "LeaveLastN",
    "OfficialFolds",
    "Protocol",
    "TimeCut",
    "get",
]

# The train and test row positions of one split.
Split = tuple[NDArray[np.int64], NDArray[np.int64]]


class Protocol:
    """Base class of the protocols: splits data into train and test rows.

    Subclasses implement `split`.
    """

    def split(self, data: Data) -> Iterator[Split]:
        """Yields `(train_indices, test_indices)` for each split.

        Args:
            data: A `Ratings`, or a dict of 1-D arrays of equal length.

        Yields:
            Pairs of sorted int64 arrays of row positions.
        """
        raise NotImplementedError

    def split_data(self, data: Data) -> Iterator[tuple[Data, Data]]:
        """Yields `(train, test)` data of the same type as `data`.

        A `Ratings` is split with `Ratings.subset`, so both parts keep the
        index maps of the whole; a dict is split column by column.
        """
        for train, test in self.split(data):
            yield take(data, train), take(data, test)

    def num_splits(self, data: Data) -> int:
        """The number of splits `split(data)` yields."""
        return sum(1 for _ in self.split(data))


class OfficialFolds(Protocol):
    """The train/test folds that come with a data set.

    With `fold_column=None`, the data must be ml-100k `Ratings` loaded with
    `load_ratings`: each of `folds` (u1..u5 by default, whose test parts
    partition the data) is read with `Ratings.official_split`, and its
    rows are located in the data. Otherwise the rows whose fold label
    equals a fold form its test part, and all other rows its train part.

    Args:
        folds: Sequence of fold names or labels, in the order to yield
            them. Defaults to `None`: `("u1", ..., "u5")` for ml-100k, or
            every distinct label (sorted) of `fold_column`.
        fold_column: Optional string (a column of dict data, e.g.
            `"siren_fold"` of ml-1m's `ratings_no_timestamp.csv`) or 1-D
            array with one fold label per row. Defaults to `None`.
    """

    def __init__(
        self,
        folds: Sequence[Any] | None = None,
        *,
        fold_column: str | ArrayLike | None = None,
    ) -> None:
        if folds is not None and (
            isinstance(folds, str)
            or not isinstance(folds, collections.abc.Sequence)
            or not folds
        ):
            raise ValueError(
                "`folds` must be a non-empty sequence of fold names, e.g. "
                f"['u1', 'u2']. Received: folds={folds!r}"
            )
        self.folds = None if folds is None else tuple(folds)
        self.fold_column = fold_column

    def split(self, data: Data) -> Iterator[Split]:
        n = num_rows(data)
        if self.fold_column is None:
            yield from self._release_folds(data, n)
            return
        if isinstance(self.fold_column, str):
            labels = column(data, self.fold_column, "fold_column")
        else:
            labels = np.asarray(self.fold_column)
            if labels.shape != (n,):
                raise ValueError(
                    "`fold_column` must be a column name or an array with "
                    f"one label per row, shape ({n},). Received: shape "
                    f"{labels.shape}"
                )
        folds = self.folds
        if folds is None:
            folds = tuple(np.unique(labels).tolist())
        for fold in folds:
            is_test = labels == fold
            if not is_test.any():
                raise ValueError(
                    f"Fold {fold!r} of `folds` labels no row of the fold "
                    f"column. Expected labels among "
                    f"{np.unique(labels).tolist()}"
                )
            yield _pair(is_test)

    def _release_folds(self, data: Data, n: int) -> Iterator[Split]:
        if isinstance(data, collections.abc.Mapping):
            raise ValueError(
                "`OfficialFolds` needs `fold_column` (a column name or an "
                "array of fold labels) for dict data; without it, it reads "
                "the fold files of ml-100k `Ratings`."
            )
        folds = self.folds or ("u1", "u2", "u3", "u4", "u5")
        keys = row_keys(data)
        rows: dict[tuple[int, int, float, int], list[int]] = {}
        for row, key in enumerate(keys):
            rows.setdefault(key, []).append(row)
        for fold in folds:
            _, test = data.official_split(fold)
            is_test = np.zeros(n, bool)
            for key in row_keys(test):
                free = [r for r in rows.get(key, ()) if not is_test[r]]
                if not free:
                    raise ValueError(
                        f"Fold {fold!r} has a rating (user index {key[0]}, "
                        f"movie index {key[1]}) that the data lacks. "
                        "Expected the ratings of the same release."
                    )
                is_test[free[0]] = True
            yield _pair(is_test)


class KFold(Protocol):
    """Shuffled k-fold cross-validation.

    The rows are shuffled with `seed`, then cut into `n_splits` folds of
    nearly equal size (the first `n % n_splits` folds get one more row).
    Each fold is the test part once; the other folds are its train part.

    Args:
        n_splits: Integer, at least 2. Defaults to `5`.
        seed: Integer. Seed of the shuffle. Defaults to `0`.
    """

    def __init__(self, n_splits: int = 5, *, seed: int = 0) -> None:
        if not is_int(n_splits) or n_splits < 2:
            raise ValueError(
                "`n_splits` must be an integer of at least 2. Received: "
                f"n_splits={n_splits!r}"
            )
        self.n_splits = int(n_splits)
        self.seed = check_seed(seed)

    def split(self, data: Data) -> Iterator[Split]:
        n = num_rows(data)
        if n < self.n_splits:
            raise ValueError(
                f"`KFold(n_splits={self.n_splits})` needs at least "
                f"{self.n_splits} rows. Received: {n} rows"
            )
        order = np.random.default_rng(self.seed).permutation(n)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        start = 0
        for size in sizes:
            is_test = np.zeros(n, bool)
            is_test[order[start : start + size]] = True
            start += size
            yield _pair(is_test)

    def num_splits(self, data: Data | None = None) -> int:
        return self.n_splits


class HoldOut(Protocol):
    """One random train/test split.

    The same split as `Ratings.random_split(test_fraction, seed=seed)`:
    `round(n * test_fraction)` rows, drawn by a permutation seeded with
    `seed`, form the test part.

    Args:
        test_fraction: Float in (0, 1). Defaults to `0.2`.
        seed: Integer. Seed of the draw. Defaults to `0`.
    """

    def __init__(self, test_fraction: float = 0.2, *, seed: int = 0) -> None:
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        self.seed = check_seed(seed)

    def split(self, data: Data) -> Iterator[Split]:
        n = num_rows(data)
        num_test = int(round(n * self.test_fraction))
        if not 0 < num_test < n:
            raise ValueError(
                f"`HoldOut(test_fraction={self.test_fraction})` leaves an "
                f"empty part of {n} rows. Expected more rows or another "
                "fraction."
            )
        order = np.random.default_rng(self.seed).permutation(n)
        is_test = np.zeros(n, bool)
        is_test[order[:num_test]] = True
        yield _pair(is_test)


class LeaveLastN(Protocol):
    """Each user's `n` latest ratings are the test part (leave-last-n).

    The same split as `Ratings.temporal_split(n)`: ties in time keep the
    row order (a later row counts as later), and a user with `n` ratings
    or fewer keeps their earliest one in train.

    Args:
        n: Positive integer. Ratings per user to hold out. Defaults to `1`.
        user_column: String. The user column of dict data. Defaults to
            `"user_id"`.
        time_column: String. The timestamp column of dict data. Defaults
            to `"timestamp"`.
    """

    def __init__(
        self,
        n: int = 1,
        *,
        user_column: str = "user_id",
        time_column: str = "timestamp",
    ) -> None:
        if not is_int(n) or n < 1:
            raise ValueError(
                f"`n` must be a positive integer. Received: n={n!r}"
            )
        self.n = int(n)
        self.user_column = user_column
        self.time_column = time_column

    def split(self, data: Data) -> Iterator[Split]:
        users = column(data, self.user_column, "user_column")
        stamps = timestamps(data, self.time_column, "LeaveLastN")
        n = users.size
        order = np.lexsort((stamps, users))
        _, first, counts = np.unique(
            users[order], return_index=True, return_counts=True
        )
        from_end = np.empty(n, np.int64)
        for start, count in zip(first, counts, strict=True):
            from_end[start : start + count] = np.arange(count - 1, -1, -1)
        num_test = np.repeat(np.minimum(self.n, counts - 1), counts)
        is_test = np.empty(n, bool)
        is_test[order] = from_end < num_test
        yield _pair(is_test)


class TimeCut(Protocol):
    """Ratings at or after a point in time are the test part.

    Give exactly one of `at` and `quantile`. With `quantile=q`, the cut is
    the timestamp at sorted position `ceil(q * (n - 1))` (NumPy's
    `quantile(..., method="higher")`), so about a fraction `q` of the
    ratings (fewer when timestamps tie at the cut) lie before it.

    Args:
        at: Integer timestamp (seconds since 1970-01-01 UTC). Defaults to
            `None`.
        quantile: Float in (0, 1). Defaults to `None`.
        time_column: String. The timestamp column of dict data. Defaults
            to `"timestamp"`.
    """

    def __init__(
        self,
        at: int | None = None,
        *,
        quantile: float | None = None,
        time_column: str = "timestamp",
    ) -> None:
        if (at is None) == (quantile is None):
            raise ValueError(
                "`TimeCut` needs exactly one of `at` (a timestamp) and "
                f"`quantile` (in (0, 1)). Received: at={at!r}, "
                f"quantile={quantile!r}"
            )
        if at is not None and not is_int(at):
            raise ValueError(
                f"`at` must be an integer timestamp. Received: at={at!r}"
            )
        if quantile is not None:
            quantile = check_fraction("quantile", quantile)
        self.at = at
        self.quantile = quantile
        self.time_column = time_column

    def cut(self, data: Data) -> int:
        """The timestamp where the test part starts, for this `data`."""
        if self.at is not None:
            return int(self.at)
        # `__init__` sets exactly one of `at` and `quantile`.
        assert self.quantile is not None
        stamps = timestamps(data, self.time_column, "TimeCut")
        return int(np.quantile(stamps, self.quantile, method="higher"))

    def split(self, data: Data) -> Iterator[Split]:
        stamps = timestamps(data, self.time_column, "TimeCut")
        cut = self.cut(data)
        is_test = stamps >= cut
        if is_test.all() or not is_test.any():
            part = "train" if is_test.all() else "test"
            raise ValueError(
                f"The time cut at {cut} leaves an empty {part} part: the "
                f"timestamps run from {stamps.min()} to {stamps.max()}."
            )
        yield _pair(is_test)


def get(protocol: object) -> Protocol:
    """Turns a protocol spec into a `Protocol`.

    Args:
        protocol: A `Protocol`; an integer `k` (`KFold(k)`); a float in
            (0, 1) (`HoldOut(protocol)`); or `"official"`
            (`OfficialFolds()`).

    Returns:
        A `Protocol`.
    """
    if isinstance(protocol, Protocol):
        return protocol
    if is_int(protocol):
        return KFold(int(protocol))
    if not isinstance(protocol, bool) and isinstance(protocol, numbers.Real):
        return HoldOut(float(protocol))
    if protocol == "official":
        return OfficialFolds()
    raise ValueError(
        "A protocol must be a `keras_catembed.evaluation.protocols."
        "Protocol`, an integer number of folds, a test fraction in (0, 1) "
        f"or 'official'. Received: {protocol!r}"
    )


def _inner_split(
    inner: object, seed: int, argument: str, one_split: bool = True
) -> Protocol:
    """A protocol from `inner` (a fraction: a `HoldOut`), for `argument`."""
    if inner is None:
        raise ValueError(f"`{argument}` must not be None.")
    if isinstance(inner, Protocol):
        if one_split and not isinstance(
            inner,
            (HoldOut, LeaveLastN, TimeCut),
        ):
            raise ValueError(
                f"`{argument}` must be a fraction in (0, 1) or a one-split "
                "protocol (HoldOut, LeaveLastN, TimeCut). Received: "
                f"{type(inner).__name__}"
            )
        return inner
    try:
        # HoldOut rejects what is not a fraction in (0, 1).
        return HoldOut(cast(float, inner), seed=seed)
    except ValueError:
        raise ValueError(
            f"`{argument}` must be a fraction in (0, 1) or a protocol. "
            f"Received: {argument}={inner!r}"
        ) from None


def _pair(is_test: NDArray[np.bool_]) -> Split:
    return (
        np.flatnonzero(~is_test).astype(np.int64),
        np.flatnonzero(is_test).astype(np.int64),
    )
