"""`Ratings`: MovieLens ratings as NumPy arrays of contiguous ids.

The type holds arrays and splits them; it reads no file. The methods that
need files of the release (`official_split`, `user_features`) hand over to
the loader (`keras_catembed.datasets.movielens.loading`).
"""

import dataclasses
import os
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed.datasets.movielens.checks import _index_array
from keras_catembed.datasets.movielens.checks import _integer_array
from keras_catembed.datasets.movielens.checks import _object_array
from keras_catembed.datasets.movielens.checks import _row_fields
from keras_catembed.datasets.movielens.checks import _tuples
from keras_catembed.datasets.movielens.days import UserDays
from keras_catembed.datasets.movielens.days import day_indices
from keras_catembed.datasets.movielens.splits import random_test_mask
from keras_catembed.datasets.movielens.splits import subset_positions
from keras_catembed.datasets.movielens.splits import temporal_test_mask


@dataclasses.dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class Ratings:
    """Ratings of movies by users, with ids renumbered from 0 to embed.

    Row `i` says that user `user_id[i]` gave movie `movie_id[i]` the rating
    `rating[i]` (at `timestamp[i]`). `user_id` and `movie_id` are contiguous
    indices, so they feed an embedding table of `num_users` (or
    `num_movies`) rows directly; `user_ids[j]` and `movie_ids[j]` give the
    original MovieLens id of index `j`, and `titles[j]` and `genres[j]`
    describe movie `j`. Only rated movies get an index. A movie that the
    release's movie file does not list gets the title `"movie <id>"` and
    no genres.

    Splits (`random_split`, `temporal_split`, `official_split`) and
    `subset` return new `Ratings` that share the index maps, `titles` and
    `genres` of this one, so a model sized on the full data set fits every
    split.

    `load_ratings` and `Ratings.from_arrays` are the usual ways to get one.

    Args:
        user_id: int32 array of shape `(num_ratings,)`. User index of each
            rating, in `0..num_users-1`.
        movie_id: int32 array of shape `(num_ratings,)`. Movie index of
            each rating, in `0..num_movies-1`.
        rating: float32 array of shape `(num_ratings,)`. The ratings.
        timestamp: int64 array of shape `(num_ratings,)` (seconds since
            1970-01-01 UTC), or `None` where the data has no timestamps.
        user_ids: int64 array of shape `(num_users,)`. Original id of each
            user index.
        movie_ids: int64 array of shape `(num_movies,)`. Original id of
            each movie index.
        titles: Array (dtype object) of `num_movies` strings: the title of
            each movie index.
        genres: Array (dtype object) of `num_movies` tuples of strings: the
            genres of each movie index (empty when none are listed).
        name: String. The release name (`"ml-100k"`, ...) or `"custom"`.
            Defaults to `"custom"`.
        path: String or `None`. Where the release's files were read from
            (a folder, or a zip file); `official_split` reads the fold files
            there. Defaults to `None`.

    Example:

    ```python
    ratings = keras_catembed.datasets.movielens.load_ratings("ml-100k")
    train, test = ratings.official_split("u1")
    print(ratings.titles[train.movie_id[0]], train.rating[0])
    ```
    """

    user_id: np.ndarray
    movie_id: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray | None
    user_ids: np.ndarray
    movie_ids: np.ndarray
    titles: np.ndarray
    genres: np.ndarray
    name: str = "custom"
    path: str | None = None
    # The (user, day) index map of `user_day()`, shared by splits.
    _day_map: UserDays | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        def _set(field: str, value: object) -> None:
            object.__setattr__(self, field, value)

        user_ids = _integer_array("user_ids", self.user_ids)
        movie_ids = _integer_array("movie_ids", self.movie_ids)
        _set("user_ids", user_ids)
        _set("movie_ids", movie_ids)
        _set(
            "user_id",
            _index_array("user_id", self.user_id, user_ids.size, "user_ids"),
        )
        _set(
            "movie_id",
            _index_array(
                "movie_id", self.movie_id, movie_ids.size, "movie_ids"
            ),
        )
        num_ratings = self.user_id.size
        rating = np.asarray(self.rating)
        if rating.ndim != 1 or rating.dtype.kind not in "iuf":
            raise ValueError(
                "`rating` must be a 1-D array of numbers. Received: "
                f"rating with shape {rating.shape} and dtype {rating.dtype}"
            )
        _set("rating", rating.astype(np.float32, copy=False))
        if self.timestamp is not None:
            _set("timestamp", _integer_array("timestamp", self.timestamp))
        for field in ("movie_id", "rating", "timestamp"):
            values = getattr(self, field)
            if values is not None and values.size != num_ratings:
                raise ValueError(
                    f"`{field}` must have one entry per rating, like "
                    f"`user_id` ({num_ratings}). Received: {values.size} "
                    "entries"
                )
        _set("titles", _object_array("titles", self.titles, movie_ids.size))
        genres = self.genres
        if not (isinstance(genres, np.ndarray) and genres.dtype == object):
            genres = _tuples(list(genres))
        _set("genres", _object_array("genres", genres, movie_ids.size))
        if not isinstance(self.name, str):
            raise ValueError(
                f"`name` must be a string. Received: name={self.name!r}"
            )
        if self.path is not None:
            _set("path", os.fspath(self.path))
        if self.timestamp is None:
            _set("_day_map", None)
        elif self._day_map is None:
            _set("_day_map", UserDays(self.user_id, self.timestamp))

    @property
    def user_days(self) -> NDArray[np.int64] | None:
        """The sorted keys of the data set's distinct (user, day) pairs.

        The index map of `user_day()`: made from the ratings that were
        loaded (or built by `from_arrays`) on first use, and shared by
        their splits. `None` without timestamps.
        """
        return None if self._day_map is None else self._day_map.keys

    def user_day(self) -> NDArray[np.int32]:
        """The index of each rating's user and day, for a `"user_day"` column.

        A user's ratings of one day (UTC) share an index, in
        `0..num_user_days-1`: a model learns a vector (and a bias) per
        user and day, the day-specific user effect of timeSVD++ (Koren,
        2009). The index map is the data set's (`user_days`), shared by
        its splits, so a test rating of a day that the training part
        holds too gets the trained vector.

        Returns:
            int32 array of shape `(len(self),)`.

        Raises:
            ValueError: if the ratings have no timestamps.
        """
        if self.timestamp is None or self.user_days is None:
            raise ValueError(
                f"The 'user_day' column needs timestamps, but the ratings "
                f"of {self.name!r} have none (timestamp=None). Use a "
                "release with timestamps or "
                "`Ratings.from_arrays(..., timestamps=...)`."
            )
        return day_indices(self.user_days, self.user_id, self.timestamp)

    @property
    def num_users(self) -> int:
        """Number of distinct users (rows of a user embedding table)."""
        return int(self.user_ids.size)

    @property
    def num_movies(self) -> int:
        """Number of distinct rated movies (rows of a movie table)."""
        return int(self.movie_ids.size)

    @property
    def num_user_days(self) -> int:
        """Distinct (user, day) pairs: rows of a `"user_day"` table."""
        return 0 if self.user_days is None else int(self.user_days.size)

    def __len__(self) -> int:
        return int(self.user_id.size)

    def __repr__(self) -> str:
        return (
            f"Ratings(name={self.name!r}, num_ratings={len(self)}, "
            f"num_users={self.num_users}, num_movies={self.num_movies}, "
            f"timestamps={self.timestamp is not None})"
        )

    @classmethod
    def from_arrays(
        cls,
        user_ids: ArrayLike,
        movie_ids: ArrayLike,
        ratings: ArrayLike,
        timestamps: ArrayLike | None = None,
        *,
        titles: Mapping[int, str] | None = None,
        genres: Mapping[int, str | Sequence[str]] | None = None,
        name: str = "custom",
    ) -> Self:
        """Builds `Ratings` from one row per rating with original ids.

        Users and movies are renumbered `0..n-1` in increasing order of
        their original ids.

        Args:
            user_ids: 1-D array-like of integers. Original user id of each
                rating.
            movie_ids: 1-D array-like of integers. Original movie id of
                each rating.
            ratings: 1-D array-like of finite numbers. The ratings.
            timestamps: Optional 1-D array-like of integers, one per
                rating. Defaults to `None` (no timestamps:
                `temporal_split` is then unavailable).
            titles: Optional mapping from original movie id to title.
                Movies it leaves out are titled `"movie <id>"`. Defaults to
                `None`.
            genres: Optional mapping from original movie id to a sequence
                of genre names (or one `"A|B"` string). Defaults to `None`.
            name: String stored as `Ratings.name`. Defaults to `"custom"`.

        Returns:
            A `Ratings` object.

        Raises:
            ValueError: If an argument has the wrong shape or type, an id
                is not a whole number, a rating is not finite, or the
                arrays differ in length.

        Example:

        ```python
        data = numpy.loadtxt(
            "ratings_no_timestamp.csv", delimiter=",", skiprows=1,
            dtype="int64")
        ratings = keras_catembed.datasets.movielens.Ratings.from_arrays(
            data[:, 0], data[:, 1], data[:, 2], name="ml-1m")
        train, test = ratings.random_split(0.1, seed=1)
        ```
        """
        return cls(
            **_row_fields(
                user_ids, movie_ids, ratings, timestamps, titles, genres
            ),
            name=name,
        )

    def subset(self, indices: ArrayLike) -> Self:
        """Returns the ratings at `indices`, sharing this object's maps.

        Args:
            indices: Boolean mask of shape `(len(self),)`, or 1-D array of
                row positions in `0..len(self)-1`.

        Returns:
            A `Ratings` object with the selected rows, in the given order.

        Raises:
            ValueError: If `indices` is neither such a mask nor such
                positions.
        """
        positions = subset_positions(indices, len(self))
        return dataclasses.replace(
            self,
            user_id=self.user_id[positions],
            movie_id=self.movie_id[positions],
            rating=self.rating[positions],
            timestamp=(
                None if self.timestamp is None else self.timestamp[positions]
            ),
        )

    def random_split(
        self, test_fraction: float = 0.2, *, seed: int | None = 0
    ) -> tuple[Self, Self]:
        """Splits the ratings at random into train and test.

        Each rating lands in exactly one part; both keep the original row
        order.

        Args:
            test_fraction: Float in (0, 1). Fraction of the ratings that go
                to the test part (rounded to a whole number of ratings).
                Defaults to `0.2`.
            seed: Integer or `None`. Seed of the shuffle; the same seed
                gives the same split. Defaults to `0`.

        Returns:
            A tuple `(train, test)` of `Ratings`.

        Raises:
            ValueError: If `test_fraction` is not in (0, 1).
        """
        is_test = random_test_mask(len(self), test_fraction, seed)
        return self.subset(~is_test), self.subset(is_test)

    def temporal_split(self, num_last: int = 1) -> tuple[Self, Self]:
        """Holds out each user's latest ratings (leave-last-n).

        For every user, the `num_last` ratings with the latest timestamps go
        to the test part (ties keep the row order: a later row counts as
        later). A user with `num_last` ratings or fewer keeps their earliest
        rating in train, so every user appears in train.

        Args:
            num_last: Positive integer. Ratings per user to hold out.
                Defaults to `1`.

        Returns:
            A tuple `(train, test)` of `Ratings`.

        Raises:
            ValueError: If the ratings have no timestamps, or `num_last` is
                not a positive integer.
        """
        if self.timestamp is None:
            raise ValueError(
                f"`temporal_split` needs timestamps, but the ratings of "
                f"{self.name!r} have none (timestamp=None). Use "
                "`random_split`, or build the ratings with "
                "`Ratings.from_arrays(..., timestamps=...)`."
            )
        is_test = temporal_test_mask(
            self.user_id, self.timestamp, self.num_users, num_last
        )
        return self.subset(~is_test), self.subset(is_test)

    def official_split(self, fold: str) -> tuple["Ratings", "Ratings"]:
        """Returns one of the train/test splits shipped with ml-100k.

        ml-100k comes with five folds `u1`..`u5` (80,000/20,000 ratings;
        the five test sets partition the data) and two splits `ua`, `ub`
        (exactly ten test ratings per user). This reads `<fold>.base` and
        `<fold>.test` from where the release was loaded (`self.path`),
        through `load_official_split(self, fold)`.

        Args:
            fold: String, one of `"u1"`, `"u2"`, `"u3"`, `"u4"`, `"u5"`,
                `"ua"`, `"ub"`.

        Returns:
            A tuple `(train, test)` of `Ratings`, rows in file order.

        Raises:
            ValueError: If these ratings are not ml-100k loaded from files,
                `fold` is unknown, or a fold file is malformed or names a
                user or movie that the ratings do not have.
        """
        from keras_catembed.datasets.movielens import loading

        return loading.load_official_split(self, fold)

    def user_features(self) -> dict[str, NDArray[np.int32]]:
        """The age group, gender and occupation of each user index.

        ml-100k (`u.user`) and ml-1m (`users.dat`) describe their users;
        this reads that file from where the release was loaded
        (`self.path`), through `load_user_features(self)`. Each feature is
        coded `0..n-1` (`n` in `USER_FEATURES`), so it feeds a
        `RatingModel` column directly: index a feature with `user_id` to
        get one value per rating.

        - `"age"`: the age group, an index into `AGE_GROUPS` (ml-1m's
          groups; ml-100k's ages in years are put in the same groups).
        - `"gender"`: an index into `GENDERS`.
        - `"occupation"`: an index into `OCCUPATIONS_100K` (the order of
          ml-100k's `u.occupation`) or `OCCUPATIONS_1M` (ml-1m's codes).

        Returns:
            Dict mapping each name of `USER_FEATURES` to an int32 array of
            shape `(num_users,)`.

        Raises:
            ValueError: if the release has no user file (only ml-100k and
                ml-1m have one), the ratings were not loaded from files, or
                the file is malformed or lacks a user of the ratings.
        """
        from keras_catembed.datasets.movielens import loading

        return loading.load_user_features(self)
