"""MovieLens ratings from GroupLens, as contiguous ids ready to embed.

`load_ratings(name)` returns a `Ratings` object: one row per rating, with
users and movies renumbered `0..n-1` (ready for an embedding table), maps
back to the original ids, and each movie's title and genres. The official
GroupLens archive is downloaded once into the Keras cache (checked against
the published checksum where GroupLens publishes a fixed one) and the
parsed arrays are cached beside it, so later loads skip parsing. Pass
`data_dir` to read a copy you already have instead.

MovieLens data sets are (c) GroupLens Research, University of Minnesota.
Their licence allows research use with acknowledgement and forbids
redistribution; read the `README` inside each archive.
"""

import contextlib
import csv
import dataclasses
import hashlib
import http.client
import io
import json
import numbers
import os
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping

import keras
import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; renames stay atomic.
    fcntl = None

_BASE_URL = "https://files.grouplens.org/datasets/movielens/"

# The releases `load_ratings` knows. Each entry gives the archive's `url`,
# its `file_hash` ("md5:<hex>" or "sha256:<hex>", or None where GroupLens
# updates the archive in place), the `folder` the archive extracts to, the
# file `format` ("100k", "dat" or "csv") and the text `encoding` of the
# movie metadata. The md5 values are those GroupLens publishes beside each
# archive (`<url>.md5`). Tests point `url` and `file_hash` at local fixtures.
RELEASES = {
    "ml-100k": {
        "url": _BASE_URL + "ml-100k.zip",
        "file_hash": "md5:0e33842e24a9c977be4e0107933c0723",
        "folder": "ml-100k",
        "format": "100k",
        "encoding": "latin-1",
    },
    "ml-1m": {
        "url": _BASE_URL + "ml-1m.zip",
        "file_hash": "md5:c4d9eecfca2ab87c1945afe126590906",
        "folder": "ml-1m",
        "format": "dat",
        "encoding": "latin-1",
    },
    "ml-10m": {
        "url": _BASE_URL + "ml-10m.zip",
        "file_hash": "md5:ce571fd55effeba0271552578f2648bd",
        "folder": "ml-10M100K",
        "format": "dat",
        "encoding": "utf-8",
    },
    "ml-20m": {
        "url": _BASE_URL + "ml-20m.zip",
        "file_hash": "md5:cd245b17a1ae2cc31bb14903e1204af3",
        "folder": "ml-20m",
        "format": "csv",
        "encoding": "utf-8",
    },
    "ml-25m": {
        "url": _BASE_URL + "ml-25m.zip",
        "file_hash": "md5:6b51fb2759a8657d3bfcbfc42b592ada",
        "folder": "ml-25m",
        "format": "csv",
        "encoding": "utf-8",
    },
    "ml-32m": {
        "url": _BASE_URL + "ml-32m.zip",
        "file_hash": "md5:d472be332d4daa821edc399621853b57",
        "folder": "ml-32m",
        "format": "csv",
        "encoding": "utf-8",
    },
    "ml-latest-small": {
        "url": _BASE_URL + "ml-latest-small.zip",
        "file_hash": None,
        "folder": "ml-latest-small",
        "format": "csv",
        "encoding": "utf-8",
    },
    "ml-latest": {
        "url": _BASE_URL + "ml-latest.zip",
        "file_hash": None,
        "folder": "ml-latest",
        "format": "csv",
        "encoding": "utf-8",
    },
}

_FORMATS = {
    "100k": {
        "ratings": "u.data",
        "separator": b"\t",
        "header": None,
        "columns": ("user id", "item id", "rating", "timestamp"),
        "movies": "u.item",
    },
    "dat": {
        "ratings": "ratings.dat",
        "separator": b"::",
        "header": None,
        "columns": ("UserID", "MovieID", "Rating", "Timestamp"),
        "movies": "movies.dat",
    },
    "csv": {
        "ratings": "ratings.csv",
        "separator": b",",
        "header": b"userId,movieId,rating,timestamp",
        "columns": ("userId", "movieId", "rating", "timestamp"),
        "movies": "movies.csv",
    },
}

# The 19 genres of ml-100k, in the order of `u.genre` and of the flags in
# `u.item`; used when `u.genre` is missing.
GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

OFFICIAL_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

# What `Ratings.user_features` returns: each feature's name and number of
# codes (its cardinality as a model column).
USER_FEATURES = {"age": 7, "gender": 2, "occupation": 21}
# The codes of "age": ml-1m's age groups, named by their first age in
# users.dat (1 means under 18); ml-100k's ages are put in the same groups.
AGE_GROUPS = ("under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_AGE_GROUP_STARTS = (1, 18, 25, 35, 45, 50, 56)
# The codes of "gender".
GENDERS = ("F", "M")
# The codes of "occupation": ml-100k's names (the order of u.occupation,
# used when that file is missing) and ml-1m's (its codes 0..20).
OCCUPATIONS_100K = (
    "administrator",
    "artist",
    "doctor",
    "educator",
    "engineer",
    "entertainment",
    "executive",
    "healthcare",
    "homemaker",
    "lawyer",
    "librarian",
    "marketing",
    "none",
    "other",
    "programmer",
    "retired",
    "salesman",
    "scientist",
    "student",
    "technician",
    "writer",
)
OCCUPATIONS_1M = (
    "other or not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)


def _user_codes_100k(fields, occupations):
    """(age group, gender, occupation) of a u.user line's fields."""
    age = np.searchsorted(_AGE_GROUP_STARTS[1:], int(fields[1]), "right")
    return int(age), GENDERS.index(fields[2]), occupations.index(fields[3])


def _user_codes_1m(fields, occupations):
    """(age group, gender, occupation) of a users.dat line's fields."""
    occupation = int(fields[3])
    if not 0 <= occupation < len(occupations):
        raise ValueError(f"occupation code {occupation}")
    age = _AGE_GROUP_STARTS.index(int(fields[2]))
    return age, GENDERS.index(fields[1]), occupation


# Per release format: the users file, its separator, the layout a line
# must have, and the parser of its fields.
_USER_FILES = {
    "100k": (
        "u.user",
        "|",
        "user id|age|gender (F or M)|occupation|zip code, occupation one "
        "of u.occupation",
        _user_codes_100k,
    ),
    "dat": (
        "users.dat",
        "::",
        "UserID::Gender (F or M)::Age (1, 18, 25, 35, 45, 50 or "
        "56)::Occupation (0..20)::Zip-code",
        _user_codes_1m,
    ),
}

_NO_GENRES = "(no genres listed)"
_CACHE_VERSION = 1
_CHUNK_BYTES = 1 << 19  # Small enough for the CPU cache.
_DOWNLOAD_BLOCK = 1 << 20
_TIMEOUT_SECONDS = 60
_CORRUPT_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)
_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


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

    def __post_init__(self):
        def _set(field, value):
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

    @property
    def num_users(self):
        """Number of distinct users (rows of a user embedding table)."""
        return int(self.user_ids.size)

    @property
    def num_movies(self):
        """Number of distinct rated movies (rows of a movie table)."""
        return int(self.movie_ids.size)

    def __len__(self):
        return int(self.user_id.size)

    def __repr__(self):
        return (
            f"Ratings(name={self.name!r}, num_ratings={len(self)}, "
            f"num_users={self.num_users}, num_movies={self.num_movies}, "
            f"timestamps={self.timestamp is not None})"
        )

    @classmethod
    def from_arrays(
        cls,
        user_ids,
        movie_ids,
        ratings,
        timestamps=None,
        *,
        titles=None,
        genres=None,
        name="custom",
    ):
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
        users = _raw_ids("user_ids", user_ids)
        movies = _raw_ids("movie_ids", movie_ids)
        values = _finite_numbers("ratings", ratings)
        stamps = None
        if timestamps is not None:
            stamps = _raw_ids("timestamps", timestamps)
        for argument, array in (
            ("movie_ids", movies),
            ("ratings", values),
            ("timestamps", stamps),
        ):
            if array is not None and array.size != users.size:
                raise ValueError(
                    f"`{argument}` must have one entry per rating, like "
                    f"`user_ids` ({users.size}). Received: {array.size} "
                    "entries"
                )
        titles = _mapping("titles", titles)
        genres = _mapping("genres", genres)
        user_index, user_map = _index_ids(users)
        movie_index, movie_map = _index_ids(movies)
        movie_titles, movie_genres = _movie_metadata(
            movie_map, titles, {k: _genre_tuple(v) for k, v in genres.items()}
        )
        return cls(
            user_id=user_index,
            movie_id=movie_index,
            rating=values.astype(np.float32),
            timestamp=stamps,
            user_ids=user_map,
            movie_ids=movie_map,
            titles=_object_array("titles", movie_titles, movie_map.size),
            genres=_tuples(movie_genres),
            name=name,
        )

    def subset(self, indices):
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
        positions = np.asarray(indices)
        if positions.dtype == bool:
            if positions.shape != (len(self),):
                raise ValueError(
                    "A boolean `indices` mask must have shape "
                    f"({len(self)},). Received: shape {positions.shape}"
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
            positions.min() < 0 or positions.max() >= len(self)
        ):
            bad = positions[(positions < 0) | (positions >= len(self))][0]
            raise ValueError(
                f"`indices` must be positions in 0..{len(self) - 1}. "
                f"Received: {int(bad)}"
            )
        positions = positions.astype(np.intp, copy=False)
        return dataclasses.replace(
            self,
            user_id=self.user_id[positions],
            movie_id=self.movie_id[positions],
            rating=self.rating[positions],
            timestamp=(
                None if self.timestamp is None else self.timestamp[positions]
            ),
        )

    def random_split(self, test_fraction=0.2, *, seed=0):
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
        if (
            isinstance(test_fraction, bool)
            or not isinstance(test_fraction, numbers.Real)
            or not 0.0 < test_fraction < 1.0
        ):
            raise ValueError(
                "`test_fraction` must be a float in (0, 1). Received: "
                f"test_fraction={test_fraction!r}"
            )
        num_test = int(round(len(self) * float(test_fraction)))
        order = np.random.default_rng(seed).permutation(len(self))
        is_test = np.zeros(len(self), bool)
        is_test[order[:num_test]] = True
        return self.subset(~is_test), self.subset(is_test)

    def temporal_split(self, num_last=1):
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
        if (
            isinstance(num_last, bool)
            or not isinstance(num_last, numbers.Integral)
            or num_last < 1
        ):
            raise ValueError(
                "`num_last` must be a positive integer. Received: "
                f"num_last={num_last!r}"
            )
        # Stable sort by user, then time: equal timestamps keep row order.
        order = np.lexsort((self.timestamp, self.user_id))
        counts = np.bincount(self.user_id, minlength=self.num_users)
        sorted_users = self.user_id[order]
        first_row = np.cumsum(counts) - counts
        from_end = (
            counts[sorted_users]
            - 1
            - (np.arange(len(self)) - first_row[sorted_users])
        )
        num_test = np.minimum(int(num_last), counts - 1)
        is_test = np.empty(len(self), bool)
        is_test[order] = from_end < num_test[sorted_users]
        return self.subset(~is_test), self.subset(is_test)

    def official_split(self, fold):
        """Returns one of the train/test splits shipped with ml-100k.

        ml-100k comes with five folds `u1`..`u5` (80,000/20,000 ratings;
        the five test sets partition the data) and two splits `ua`, `ub`
        (exactly ten test ratings per user). This reads `<fold>.base` and
        `<fold>.test` from where the release was loaded (`self.path`).

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
        release = RELEASES.get(self.name)
        if release is None or release["format"] != "100k":
            raise ValueError(
                "`official_split` is only available for ml-100k, whose "
                "release ships the folds u1..u5, ua and ub. Received: "
                f"ratings of {self.name!r}. Use `random_split` or "
                "`temporal_split` instead."
            )
        if fold not in OFFICIAL_FOLDS:
            raise ValueError(
                f"`fold` must be one of {', '.join(OFFICIAL_FOLDS)}. "
                f"Received: fold={fold!r}"
            )
        if self.path is None:
            raise ValueError(
                "`official_split` reads the fold files of the release, but "
                "these ratings do not say where it is (path=None). Load "
                "them with `load_ratings`."
            )
        source = _source_at(self.path, release)
        return tuple(
            self._from_fold_file(source, f"{fold}.{part}")
            for part in ("base", "test")
        )

    def user_features(self):
        """The age group, gender and occupation of each user index.

        ml-100k (`u.user`) and ml-1m (`users.dat`) describe their users;
        this reads that file from where the release was loaded
        (`self.path`). Each feature is coded `0..n-1` (`n` in
        `USER_FEATURES`), so it feeds a `RatingModel` column directly:
        index a feature with `user_id` to get one value per rating.

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
        release = RELEASES.get(self.name)
        if self.name not in ("ml-100k", "ml-1m"):
            raise ValueError(
                "`user_features` reads the users file of ml-100k (u.user) "
                "or ml-1m (users.dat); other releases describe no users. "
                f"Received: ratings of {self.name!r}"
            )
        if self.path is None:
            raise ValueError(
                "`user_features` reads the users file of the release, but "
                "these ratings do not say where it is (path=None). Load "
                "them with `load_ratings`."
            )
        source = _source_at(self.path, release)
        filename, separator, expected, parse = _USER_FILES[release["format"]]
        where = source.describe(filename)
        if not source.exists(filename):
            raise ValueError(
                f"`user_features` needs {where}, which does not exist. "
                f"Expected a complete {self.name} release."
            )
        occupations = OCCUPATIONS_1M
        if release["format"] == "100k":
            occupations = OCCUPATIONS_100K
            if source.exists("u.occupation"):
                text = source.read("u.occupation").decode("latin-1")
                occupations = tuple(
                    line.strip() for line in text.splitlines() if line.strip()
                )
        by_id = {}
        text = source.read(filename).decode("latin-1")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split(separator)
            try:
                if len(fields) != 5:
                    raise ValueError(f"{len(fields)} fields")
                by_id[int(fields[0])] = parse(fields, occupations)
            except ValueError:
                raise ValueError(
                    f"Line {number} of {where} is malformed: {line!r}. "
                    f"Expected {expected}."
                ) from None
        missing = [int(u) for u in self.user_ids if int(u) not in by_id]
        if missing:
            raise ValueError(
                f"{where} does not describe the user id {missing[0]} (and "
                f"{len(missing) - 1} more) of the ratings. Expected the "
                "users file of the same release."
            )
        table = np.array([by_id[int(u)] for u in self.user_ids], "int32")
        table = table.reshape(-1, 3)
        return {
            name: table[:, column].copy()
            for column, name in enumerate(USER_FEATURES)
        }

    def _from_fold_file(self, source, filename):
        fmt = _FORMATS["100k"]
        where = source.describe(filename)
        if not source.exists(filename):
            raise ValueError(
                f"`official_split` needs {where}, which does not exist. "
                "Expected a complete ml-100k release."
            )
        users, movies, values, stamps = _parse_ratings(
            source, filename, fmt, header=None
        )
        return dataclasses.replace(
            self,
            user_id=_lookup(users, self.user_ids, "user", where),
            movie_id=_lookup(movies, self.movie_ids, "movie", where),
            rating=values.astype(np.float32),
            timestamp=stamps,
        )


def load_ratings(name, *, data_dir=None, download=True):
    """Loads a MovieLens release as `Ratings` ready to embed.

    Without `data_dir`, the official GroupLens archive is downloaded once
    (with a progress bar) into the Keras cache, `$KERAS_HOME/datasets/`
    (by default `~/.keras/datasets/`), checked against the md5 that
    GroupLens publishes (`ml-latest` and `ml-latest-small` change over
    time and are not checked), and extracted to
    `datasets/<name>_extracted/`. The parsed arrays are saved beside the
    archive as `<name>.npz`, so later loads skip parsing. A lock file
    keeps processes that load at the same time from corrupting the cache.
    A truncated or corrupt archive is downloaded again once.

    With `data_dir`, nothing is downloaded or cached: the release is read
    from there.

    Each release is read in its own format: `u.data`/`u.item`/`u.genre`
    (ml-100k), `ratings.dat`/`movies.dat` (ml-1m, ml-10m) or
    `ratings.csv`/`movies.csv` (ml-20m and later).

    Args:
        name: String. One of `"ml-100k"`, `"ml-1m"`, `"ml-10m"`,
            `"ml-20m"`, `"ml-25m"`, `"ml-32m"`, `"ml-latest-small"`,
            `"ml-latest"`.
        data_dir: Optional path. A folder holding the extracted release
            (the release folder itself, e.g. `.../ml-100k`, or its parent),
            the release's zip file, or a folder holding `<name>.zip`.
            Defaults to `None` (use the Keras cache).
        download: Boolean. Whether to download the archive when the cache
            does not hold it. Defaults to `True`.

    Returns:
        A `Ratings` object.

    Raises:
        ValueError: If `name` is unknown, the archive's checksum does not
            match, the archive is corrupt or unsafe (entries outside its
            folder, symbolic links), or a file has a malformed line (the
            message names the file and line).
        FileNotFoundError: If `data_dir` holds no copy of the release, or
            `download=False` and the cache holds none.
        OSError: If the download fails (the message says how to pass
            `data_dir` instead).

    Example:

    ```python
    ratings = keras_catembed.datasets.movielens.load_ratings("ml-100k")
    train, test = ratings.official_split("u1")
    model = keras_catembed.RatingModel(
        {"user": ratings.num_users, "movie": ratings.num_movies},
        rating_range=(0.5, 5.5),
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(
        {"user": train.user_id, "movie": train.movie_id},
        train.rating,
        validation_data=(
            {"user": test.user_id, "movie": test.movie_id},
            test.rating,
        ),
        batch_size=256,
        epochs=5,
    )
    ```
    """
    release = _release(name)
    if not isinstance(download, bool):
        raise ValueError(
            f"`download` must be True or False. Received: download={download!r}"
        )
    if data_dir is not None:
        source = _find_source(name, release, data_dir)
        return _to_ratings(name, source.path, _parse_release(release, source))
    cache_dir = _cache_dir()
    with _lock(os.path.join(cache_dir, f"{name}.lock")):
        folder = _extracted_release(name, release, cache_dir, download)
        source = _FolderSource(folder)
        parsed_path = os.path.join(cache_dir, f"{name}.npz")
        key = _cache_key(name, release, source)
        arrays = _read_parsed(parsed_path, key)
        if arrays is None:
            arrays = _parse_release(release, source)
            _write_parsed(parsed_path, key, arrays)
    return _to_ratings(name, folder, arrays)


def _release(name):
    if not isinstance(name, str) or name not in RELEASES:
        raise ValueError(
            f"Unknown MovieLens release. Received: name={name!r}. Expected "
            f"one of: {', '.join(RELEASES)}."
        )
    return RELEASES[name]


# ---------------------------------------------------------------------------
# Where the files are: a folder, or a zip archive read in place.


class _FolderSource:
    def __init__(self, path):
        self.path = path

    def exists(self, filename):
        return os.path.isfile(os.path.join(self.path, filename))

    def read(self, filename):
        with open(os.path.join(self.path, filename), "rb") as handle:
            return handle.read()

    def describe(self, filename):
        return os.path.join(self.path, filename)

    def stat(self, filename):
        info = os.stat(os.path.join(self.path, filename))
        return [info.st_size, info.st_mtime_ns]


class _ZipSource:
    def __init__(self, path, prefix, names):
        self.path = path
        self.prefix = prefix
        self.names = names

    def exists(self, filename):
        return self.prefix + filename in self.names

    def read(self, filename):
        try:
            with zipfile.ZipFile(self.path) as archive:
                return archive.read(self.prefix + filename)
        except _CORRUPT_ZIP_ERRORS as error:
            raise ValueError(
                f"{self.describe(filename)} could not be read: the archive "
                f"is corrupt ({error}). Download it again."
            ) from error

    def describe(self, filename):
        return f"{self.path}:{self.prefix}{filename}"


def _open_zip_source(path, release):
    ratings_name = _FORMATS[release["format"]]["ratings"]
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(archive, path)
    except _CORRUPT_ZIP_ERRORS as error:
        raise ValueError(
            f"{path} is not a readable zip archive ({error}). Expected the "
            "release's zip file, or a folder holding the extracted release."
        ) from error
    names = {info.filename for info in members}
    preferred = f"{release['folder']}/{ratings_name}"
    if preferred in names:
        return _ZipSource(path, preferred[: -len(ratings_name)], names)
    found = sorted(
        n for n in names if n == ratings_name or n.endswith("/" + ratings_name)
    )
    if len(found) != 1:
        raise ValueError(
            f"{path} does not hold exactly one {ratings_name} (found "
            f"{len(found)}). Expected the archive of the release, with "
            f"{preferred}."
        )
    return _ZipSource(path, found[0][: -len(ratings_name)], names)


def _source_at(path, release):
    if os.path.isfile(path):
        return _open_zip_source(path, release)
    return _FolderSource(path)


def _find_source(name, release, data_dir):
    try:
        path = os.path.expanduser(os.fspath(data_dir))
    except TypeError:
        raise ValueError(
            "`data_dir` must be a path (string or os.PathLike). Received: "
            f"data_dir={data_dir!r}"
        ) from None
    ratings_name = _FORMATS[release["format"]]["ratings"]
    hint = (
        f"Expected a folder holding the extracted {name} release (the "
        f"`{release['folder']}` folder itself or its parent), the path of "
        f"{name}.zip, or a folder holding {name}.zip."
    )
    if os.path.isfile(path):
        return _open_zip_source(path, release)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"`data_dir` does not exist. Received: data_dir={data_dir!r}. "
            + hint
        )
    folders = []
    for folder in (
        path,
        os.path.join(path, release["folder"]),
        os.path.join(path, name),
        os.path.join(path, f"{name}_extracted", release["folder"]),
    ):
        if folder not in folders:
            folders.append(folder)
    for folder in folders:
        if os.path.isfile(os.path.join(folder, ratings_name)):
            return _FolderSource(folder)
    archive = os.path.join(path, f"{name}.zip")
    if os.path.isfile(archive):
        return _open_zip_source(archive, release)
    raise FileNotFoundError(
        f"`data_dir` holds no copy of {name}: looked for {ratings_name} in "
        f"{', '.join(folders)} and for {archive}. Received: "
        f"data_dir={data_dir!r}. " + hint
    )


# ---------------------------------------------------------------------------
# The Keras cache: download, verify, extract, all under one lock.


class _CorruptArchive(Exception):
    """A download or archive that is incomplete; worth one more download."""


def _cache_dir():
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    roots = [os.path.expanduser(home)]
    roots.append(os.path.join(tempfile.gettempdir(), ".keras"))
    for root in roots:
        path = os.path.join(root, "datasets")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise OSError(
        f"No writable Keras cache folder: tried {' and '.join(roots)}. Set "
        "the KERAS_HOME environment variable to a writable folder, or pass "
        "`data_dir` to read a copy of the release you already have."
    )


@contextlib.contextmanager
def _lock(path):
    """Holds an exclusive lock on `path` (a no-op where locks can't work)."""
    try:
        handle = open(path, "a+b")
    except OSError:
        handle = None
    if handle is None:
        yield
        return
    with handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _offline_message(name, release, cache_dir):
    return (
        f"To load {name} without downloading, pass the folder of a copy "
        f"you already have: load_ratings({name!r}, data_dir=...), where "
        f"the folder holds the extracted release (`{release['folder']}/` "
        f"or its parent) or {name}.zip; or put {name}.zip from "
        f"{release['url']} into {cache_dir}."
    )


def _extracted_release(name, release, cache_dir, download):
    """Returns the folder of the extracted release, fetching it if needed."""
    ratings_name = _FORMATS[release["format"]]["ratings"]
    archive = os.path.join(cache_dir, f"{name}.zip")
    extracted = os.path.join(cache_dir, f"{name}_extracted")
    folder = os.path.join(extracted, release["folder"])
    if os.path.isfile(os.path.join(folder, ratings_name)):
        return folder
    if os.path.isdir(extracted):  # Left incomplete by someone else.
        _remove_tree(extracted)
    downloads = 0
    while True:
        try:
            if not os.path.isfile(archive):
                if not download:
                    raise FileNotFoundError(
                        f"{name} is not in the Keras cache ({cache_dir}) "
                        "and download=False. "
                        + _offline_message(name, release, cache_dir)
                    )
                downloads += 1
                _download(name, release, archive, cache_dir)
            elif release["file_hash"] and not _hash_matches(
                archive, release["file_hash"]
            ):
                _remove_file(archive)
                if not download:
                    raise ValueError(
                        f"The cached {archive} does not match the published "
                        f"checksum ({release['file_hash']}), so it was "
                        "removed. Pass download=True to download it again. "
                        + _offline_message(name, release, cache_dir)
                    )
                print(
                    f"The cached {archive} does not match its checksum; "
                    "downloading it again."
                )
                continue
            try:
                _extract(archive, extracted, release)
            except ValueError:
                _remove_file(archive)
                raise
            return folder
        except _CorruptArchive as error:
            _remove_file(archive)
            if not download or downloads >= 2:
                raise ValueError(
                    f"The {name} archive is corrupt: {error}. It was "
                    f"removed from the cache after {downloads} "
                    f"download{'s' * (downloads != 1)}. Check the network "
                    "and try again. "
                    + _offline_message(name, release, cache_dir)
                ) from error
            print(
                f"The {name} archive is corrupt ({error}); downloading again."
            )


def _download(name, release, target, cache_dir):
    url = release["url"]
    algorithm, expected = _parse_hash(release["file_hash"])
    hasher = hashlib.new(algorithm) if algorithm else None
    handle, partial = tempfile.mkstemp(
        prefix=f".{name}.zip.", suffix=".part", dir=cache_dir
    )
    try:
        print(f"Downloading data from {url}")
        try:
            with (
                os.fdopen(handle, "wb") as out,
                urllib.request.urlopen(
                    url, timeout=_TIMEOUT_SECONDS
                ) as response,
            ):
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                progbar = keras.utils.Progbar(total, unit_name="byte")
                received = 0
                while block := response.read(_DOWNLOAD_BLOCK):
                    out.write(block)
                    received += len(block)
                    if hasher is not None:
                        hasher.update(block)
                    progbar.update(received)
                if total is None:
                    progbar.update(received, finalize=True)
        except http.client.IncompleteRead as error:
            raise _CorruptArchive(
                f"the download of {url} stopped after "
                f"{len(error.partial)} bytes"
            ) from error
        except _NETWORK_ERRORS as error:
            raise OSError(
                f"Could not download {name} from {url}: {error}. "
                + _offline_message(name, release, cache_dir)
            ) from error
        if total is not None and received != total:
            raise _CorruptArchive(
                f"the download of {url} stopped after {received} of {total} "
                "bytes"
            )
        if hasher is not None and hasher.hexdigest() != expected:
            raise ValueError(
                f"The file downloaded from {url} does not match the "
                f"published checksum: expected {algorithm} {expected}, got "
                f"{hasher.hexdigest()}. It was not kept in the cache. The "
                "download may have been altered or the release replaced; "
                "try again later, or pass `data_dir` with a copy you trust."
            )
        os.replace(partial, target)
    finally:
        _remove_file(partial)


def _parse_hash(file_hash):
    if not file_hash:
        return None, None
    algorithm, _, expected = file_hash.rpartition(":")
    if not algorithm:
        algorithm = "sha256" if len(expected) == 64 else "md5"
    return algorithm, expected.lower()


def _hash_matches(path, file_hash):
    algorithm, expected = _parse_hash(file_hash)
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(_DOWNLOAD_BLOCK):
            hasher.update(block)
    return hasher.hexdigest() == expected


def _checked_members(archive, path):
    """Returns the archive's entries; raises if one could escape its folder."""
    members = archive.infolist()
    for info in members:
        entry = info.filename
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(
                f"Refusing to use {path}: its entry {entry!r} is a symbolic "
                "link. Expected only regular files and folders."
            )
        parts = entry.replace("\\", "/").split("/")
        if (
            entry.startswith(("/", "\\"))
            or (len(parts[0]) >= 2 and parts[0][1] == ":")
            or ".." in parts
        ):
            raise ValueError(
                f"Refusing to use {path}: its entry {entry!r} would be "
                "written outside the extraction folder (an absolute path or "
                "'..'). Expected paths inside the archive's folder."
            )
    return members


def _extract(archive_path, destination, release):
    """Extracts the archive into the new folder `destination`, atomically."""
    ratings_name = _FORMATS[release["format"]]["ratings"]
    expected = f"{release['folder']}/{ratings_name}"
    parent = os.path.dirname(destination)
    staging = tempfile.mkdtemp(
        prefix=f".{os.path.basename(destination)}.", suffix=".part", dir=parent
    )
    try:
        root = os.path.realpath(staging)
        try:
            with zipfile.ZipFile(archive_path) as archive:
                members = _checked_members(archive, archive_path)
                if expected not in {info.filename for info in members}:
                    raise ValueError(
                        f"{archive_path} does not hold {expected}. Expected "
                        f"the official archive of the release."
                    )
                for info in members:
                    target = os.path.realpath(
                        os.path.join(staging, *info.filename.split("/"))
                    )
                    if not target.startswith(root + os.sep):
                        raise ValueError(
                            f"Refusing to use {archive_path}: its entry "
                            f"{info.filename!r} would be written outside "
                            "the extraction folder."
                        )
                    if info.is_dir():
                        os.makedirs(target, exist_ok=True)
                        continue
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with archive.open(info) as src, open(target, "wb") as dst:
                        while block := src.read(_DOWNLOAD_BLOCK):
                            dst.write(block)
        except _CORRUPT_ZIP_ERRORS as error:
            raise _CorruptArchive(
                f"{archive_path} is not a valid zip archive ({error})"
            ) from error
        os.replace(staging, destination)
    finally:
        if os.path.isdir(staging):
            _remove_tree(staging)


def _remove_file(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _remove_tree(path):
    # Walks the tree itself so that it never follows symbolic links.
    for root, dirs, files in os.walk(path, topdown=False):
        for filename in files:
            _remove_file(os.path.join(root, filename))
        for directory in dirs:
            directory = os.path.join(root, directory)
            if os.path.islink(directory):
                _remove_file(directory)
            else:
                os.rmdir(directory)
    os.rmdir(path)


def _cache_key(name, release, source):
    fmt = _FORMATS[release["format"]]
    files = {}
    for filename in (fmt["ratings"], fmt["movies"], "u.genre"):
        if source.exists(filename):
            files[filename] = source.stat(filename)
    return json.dumps(
        {
            "version": _CACHE_VERSION,
            "name": name,
            "release": release,
            "files": files,
        },
        sort_keys=True,
    )


def _read_parsed(path, key):
    """Returns the arrays cached at `path`, or None if absent or stale."""
    try:
        with np.load(path, allow_pickle=False) as cached:
            if str(cached["key"]) != key:
                return None
            arrays = {name: cached[name] for name in cached.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    arrays.pop("key")
    arrays.setdefault("timestamp", None)
    return arrays


def _write_parsed(path, key, arrays):
    stored = {k: v for k, v in arrays.items() if v is not None}
    handle, partial = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.",
        suffix=".part",
        dir=os.path.dirname(path),
    )
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, key=np.array(key), **stored)
        os.replace(partial, path)
    except OSError:
        pass  # A cache that can't be written only costs time.
    finally:
        _remove_file(partial)


# ---------------------------------------------------------------------------
# Parsing.


def _parse_ratings(source, filename, fmt, header):
    """Parses a ratings file: (user, movie, rating, timestamp) columns."""
    return _parse_table(
        source.read(filename),
        separator=fmt["separator"],
        columns=fmt["columns"],
        kinds=("int", "int", "float", "int"),
        filename=source.describe(filename),
        header=header,
    )


def _parse_release(release, source):
    """Parses a release into the arrays of a `Ratings` (strings packed)."""
    fmt = _FORMATS[release["format"]]
    ratings_name = fmt["ratings"]
    if not source.exists(ratings_name):
        raise FileNotFoundError(
            f"{source.describe(ratings_name)} does not exist. Expected the "
            "ratings file of the release."
        )
    users, movies, values, stamps = _parse_ratings(
        source, ratings_name, fmt, header=fmt["header"]
    )
    metadata = _read_movies(release, source)
    user_id, user_ids = _index_ids(users)
    movie_id, movie_ids = _index_ids(movies)
    titles, genres = _movie_metadata(
        movie_ids,
        {k: v[0] for k, v in metadata.items()},
        {k: v[1] for k, v in metadata.items()},
    )
    return {
        "user_id": user_id,
        "movie_id": movie_id,
        "rating": values.astype(np.float32),
        "timestamp": stamps,
        "user_ids": user_ids,
        "movie_ids": movie_ids,
        "titles": _pack(titles),
        "genres": _pack("|".join(g) for g in genres),
    }


def _to_ratings(name, path, arrays):
    num_movies = arrays["movie_ids"].size
    titles = _unpack(arrays["titles"], num_movies)
    genres = np.empty(num_movies, object)
    for index, packed in enumerate(_unpack(arrays["genres"], num_movies)):
        genres[index] = tuple(packed.split("|")) if packed else ()
    return Ratings(
        user_id=arrays["user_id"],
        movie_id=arrays["movie_id"],
        rating=arrays["rating"],
        timestamp=arrays["timestamp"],
        user_ids=arrays["user_ids"],
        movie_ids=arrays["movie_ids"],
        titles=_object_array("titles", titles, num_movies),
        genres=genres,
        name=name,
        path=path,
    )


def _pack(strings):
    """Packs strings without newlines into a uint8 array (for `.npz`)."""
    return np.frombuffer("\n".join(strings).encode("utf-8"), np.uint8)


def _unpack(packed, count):
    if count == 0:
        return []
    return packed.tobytes().decode("utf-8").split("\n")


# Bytes below "." (46) are never digits: "\n", "\t" and "," are the line
# and field separators; anything else there makes the line malformed.
_FIRST_NON_SEPARATOR = 46
_PAD = b"0" * 16
_UINT64 = np.uint64
_ZEROS = _UINT64(0x3030303030303030)
_ALL_BITS = _UINT64(0xFFFFFFFFFFFFFFFF)


def _parse_table(data, *, separator, columns, kinds, filename, header=None):
    """Parses numeric delimited text into one array per column.

    Vectorised over all lines with NumPy; a malformed line raises a
    `ValueError` naming `filename` and the line number.
    """
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    text = data
    shown_separator = separator.decode()
    if len(separator) > 1:
        data = data.replace(separator, b"\t")
        separator = b"\t"
    start, first_line = 0, 1
    if header is not None:
        end_of_header = data.find(b"\n")
        if end_of_header < 0:
            end_of_header = len(data)
        found = data[:end_of_header].removeprefix(b"\xef\xbb\xbf").strip()
        if found != header:
            raise ValueError(
                f"{filename}, line 1: expected the header "
                f"{header.decode()!r}. Received: "
                f"{found.decode('utf-8', 'replace')!r}"
            )
        start, first_line = end_of_header + 1, 2
    end = len(data)
    while end > start and data[end - 1] == 10:
        end -= 1
    num_rows = data.count(b"\n", start, end) + 1 if end > start else 0
    outputs = [
        np.empty(num_rows, np.int64 if kind == "int" else np.float64)
        for kind in kinds
    ]
    context = {
        "text": text,
        "filename": filename,
        "separator": shown_separator,
        "columns": columns,
        "kinds": kinds,
    }
    row = 0
    while start < end:
        stop = data.find(b"\n", min(start + _CHUNK_BYTES, end))
        if stop < 0 or stop > end:
            stop = end
        chunk = b"".join((_PAD, memoryview(data)[start:stop], b"\n"))
        row += _parse_chunk(
            chunk, separator[0], kinds, outputs, row, first_line, context
        )
        start = stop + 1
    return outputs


def _parse_chunk(chunk, separator, kinds, outputs, row, first_line, context):
    """Parses whole lines in `chunk` into `outputs[j][row:...]`."""
    values = np.frombuffer(chunk, np.uint8)
    num_columns = len(kinds)
    ends = np.flatnonzero(values < _FIRST_NON_SEPARATOR)
    if ends.size % num_columns:
        _raise_structure_error(values, separator, row, first_line, context)
    num_rows = ends.size // num_columns
    ends = ends.reshape(num_rows, num_columns)
    if not (
        np.all(values[ends[:, -1]] == 10)
        and np.all(values[ends[:, :-1]] == separator)
    ):
        _raise_structure_error(values, separator, row, first_line, context)
    starts = np.empty_like(ends)
    starts[0, 0] = len(_PAD)
    starts[1:, 0] = ends[:-1, -1] + 1
    starts[:, 1:] = ends[:, :-1] + 1
    for column, kind in enumerate(kinds):
        field_starts = starts[:, column]
        field_ends = ends[:, column]
        if kind == "int":
            parsed, bad = _parse_integers(chunk, field_starts, field_ends)
        else:
            parsed, bad = _parse_decimals(values, field_starts, field_ends)
        if bad.any():
            index = int(np.argmax(bad))
            field = values[field_starts[index] : field_ends[index]].tobytes()
            _raise_line_error(
                row + index,
                first_line,
                context,
                f"the {context['columns'][column]} field "
                f"{field.decode('utf-8', 'replace')!r} is not "
                + ("a whole number" if kind == "int" else "a number"),
            )
        outputs[column][row : row + num_rows] = parsed
    return num_rows


def _parse_integers(chunk, starts, ends):
    """Parses digit fields of up to 16 digits, eight bytes at a time."""
    words = np.ndarray((len(chunk) - 7,), np.dtype("<u8"), chunk, 0, (1,))
    lengths = ends - starts
    low_length = np.minimum(lengths, 8)
    value, ok = _eight_digits(words, ends, low_length)
    bad = ~ok | (lengths == 0)
    if lengths.max(initial=0) > 8:
        high, high_ok = _eight_digits(
            words, ends - 8, np.minimum(lengths - low_length, 8)
        )
        value += high * _UINT64(100_000_000)
        bad |= ~high_ok | (lengths > 16)
    return value.astype(np.int64), bad


def _eight_digits(words, ends, lengths):
    """Values of the `lengths` (0..8) digits just before each of `ends`."""
    # Little-endian: the field's first digit is in the lowest kept byte.
    word = words[ends - 8]
    shift = (64 - 8 * lengths).astype(np.uint64)
    keep = np.left_shift(_ALL_BITS, shift)  # A shift of 64 keeps nothing.
    x = (word & keep) - (_ZEROS & keep)
    ok = (
        (x | (x + _UINT64(0x7676767676767676))) & _UINT64(0x8080808080808080)
    ) == 0
    x = x * _UINT64(10) + (x >> _UINT64(8))
    x = (
        (x & _UINT64(0x000000FF000000FF)) * _UINT64(100 + (1000000 << 32))
        + ((x >> _UINT64(16)) & _UINT64(0x000000FF000000FF))
        * _UINT64(1 + (10000 << 32))
    ) >> _UINT64(32)
    return x, ok


def _parse_decimals(values, starts, ends):
    """Parses fields such as `4`, `3.5` or `4.0` (one position at a time)."""
    lengths = ends - starts
    width = min(int(lengths.max(initial=0)), 18)
    mantissa = np.zeros(starts.size, np.int64)
    num_digits = np.zeros(starts.size, np.int64)
    num_dots = np.zeros(starts.size, np.int64)
    dot_at = np.full(starts.size, -1, np.int64)
    for offset in range(width, 0, -1):
        position = ends - offset
        byte = values[position]
        inside = position >= starts
        digit = byte - np.uint8(48)
        is_digit = (digit <= 9) & inside
        is_dot = (byte == 46) & inside
        num_digits += is_digit
        num_dots += is_dot
        dot_at = np.where(is_dot, position, dot_at)
        mantissa = np.where(is_digit, mantissa * 10 + digit, mantissa)
    bad = (
        (num_digits + num_dots != lengths)
        | (num_dots > 1)
        | (num_digits == 0)
        | (lengths > 18)
    )
    decimals = np.where(dot_at >= 0, ends - dot_at - 1, 0)
    return mantissa / 10.0**decimals, bad


def _raise_structure_error(values, separator, row, first_line, context):
    """Finds the first line of a chunk with wrong fields, and raises."""
    newlines = np.flatnonzero(values == 10)
    separators = np.cumsum(values == separator)[newlines]
    per_line = np.diff(separators, prepend=0)
    expected = len(context["kinds"]) - 1
    wrong = np.flatnonzero(per_line != expected)
    if wrong.size:
        index = int(wrong[0])
        _raise_line_error(
            row + index,
            first_line,
            context,
            f"expected {expected + 1} fields separated by "
            f"{context['separator']!r}, found {per_line[index] + 1}",
        )
    stray = np.flatnonzero(
        (values < _FIRST_NON_SEPARATOR) & (values != 10) & (values != separator)
    )
    if not stray.size:
        raise ValueError(f"{context['filename']} could not be parsed.")
    index = int(np.searchsorted(newlines, stray[0]))
    _raise_line_error(
        row + index,
        first_line,
        context,
        f"unexpected character {chr(values[stray[0]])!r}; expected "
        f"numbers separated by {context['separator']!r}",
    )


def _raise_line_error(row, first_line, context, problem):
    line_number = first_line + row
    text = context["text"]
    newlines = np.flatnonzero(np.frombuffer(text, np.uint8) == 10)
    start = int(newlines[line_number - 2]) + 1 if line_number > 1 else 0
    stop = newlines[line_number - 1] if line_number <= newlines.size else None
    line = text[start:stop]
    raise ValueError(
        f"Malformed line {line_number} in {context['filename']}: {problem}. "
        f"The line reads {line.decode('utf-8', 'replace')!r}; expected "
        f"{context['separator'].join(context['columns'])}."
    )


def _read_movies(release, source):
    """Returns {movie id: (title, genres)} from the release's movie file."""
    fmt = release["format"]
    filename = _FORMATS[fmt]["movies"]
    if not source.exists(filename):
        return {}
    where = source.describe(filename)
    text = source.read(filename).decode(release["encoding"], "replace")
    text = text.removeprefix("\ufeff")
    if fmt == "100k":
        return _parse_u_item(text, where, _read_u_genre(release, source))
    if fmt == "dat":
        return _parse_movies_dat(text, where)
    return _parse_movies_csv(text, where)


def _movie_id(field, where, line_number):
    try:
        return int(field)
    except ValueError:
        raise ValueError(
            f"Malformed line {line_number} in {where}: the movie id "
            f"{field!r} is not a whole number."
        ) from None


def _read_u_genre(release, source):
    if not source.exists("u.genre"):
        return GENRES_100K
    where = source.describe("u.genre")
    text = source.read("u.genre").decode(release["encoding"], "replace")
    names = {}
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        genre, _, index = line.rpartition("|")
        if not genre or not index.strip().isdigit():
            raise ValueError(
                f"Malformed line {line_number} in {where}: expected "
                f"'name|index'. The line reads {line!r}."
            )
        names[int(index)] = genre
    if sorted(names) != list(range(len(names))):
        raise ValueError(
            f"{where} must number its genres 0..{len(names) - 1}. Received: "
            f"indices {sorted(names)}"
        )
    return tuple(names[i] for i in range(len(names)))


def _parse_u_item(text, where, genre_names):
    movies = {}
    num_fields = 5 + len(genre_names)
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != num_fields or any(
            flag not in ("0", "1") for flag in fields[5:]
        ):
            raise ValueError(
                f"Malformed line {line_number} in {where}: expected "
                f"{num_fields} fields separated by '|' (id, title, release "
                f"date, video release date, IMDb URL and "
                f"{len(genre_names)} genre flags 0/1). The line reads "
                f"{line!r}."
            )
        genres = tuple(
            genre
            for genre, flag in zip(genre_names, fields[5:], strict=True)
            if flag == "1"
        )
        movies[_movie_id(fields[0], where, line_number)] = (fields[1], genres)
    return movies


def _parse_movies_dat(text, where):
    movies = {}
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) < 3:
            raise ValueError(
                f"Malformed line {line_number} in {where}: expected "
                f"MovieID::Title::Genres. The line reads {line!r}."
            )
        movies[_movie_id(fields[0], where, line_number)] = (
            "::".join(fields[1:-1]),
            _genre_tuple(fields[-1]),
        )
    return movies


def _parse_movies_csv(text, where):
    movies = {}
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != ["movieId", "title", "genres"]:
        raise ValueError(
            f"{where}, line 1: expected the header 'movieId,title,genres'. "
            f"Received: {header!r}"
        )
    for fields in reader:
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(
                f"Malformed line {reader.line_num} in {where}: expected "
                "3 fields movieId,title,genres (quote titles that hold "
                f"commas). Received: {fields!r}"
            )
        movies[_movie_id(fields[0], where, reader.line_num)] = (
            fields[1],
            _genre_tuple(fields[2]),
        )
    return movies


def _genre_tuple(genres):
    if isinstance(genres, str):
        if genres.strip() in ("", _NO_GENRES):
            return ()
        return tuple(genres.split("|"))
    return tuple(str(genre) for genre in genres)


def _movie_metadata(movie_ids, titles, genres):
    """Lists the title and genres of each movie index."""
    movie_titles, movie_genres = [], []
    for movie in movie_ids.tolist():
        movie_titles.append(str(titles.get(movie, f"movie {movie}")))
        movie_genres.append(genres.get(movie, ()))
    return movie_titles, movie_genres


# ---------------------------------------------------------------------------
# Ids and argument checks.


def _index_ids(raw):
    """Renumbers raw ids `0..n-1` in increasing order: (indices, ids)."""
    if raw.size == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int64)
    low, high = int(raw.min()), int(raw.max())
    if low >= 0 and high < 4 * raw.size + (1 << 20):
        present = np.zeros(high + 1, bool)
        present[raw] = True
        ids = np.flatnonzero(present)
        lookup = np.zeros(high + 1, np.int32)
        lookup[ids] = np.arange(ids.size, dtype=np.int32)
        return lookup[raw], ids.astype(np.int64)
    ids, inverse = np.unique(raw, return_inverse=True)
    return inverse.reshape(-1).astype(np.int32), ids.astype(np.int64)


def _lookup(raw, ids, what, where):
    """Indices of `raw` ids in the map `ids`; raises for unknown ids."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    found = np.searchsorted(sorted_ids, raw).clip(0, max(ids.size - 1, 0))
    known = sorted_ids[found] == raw if ids.size else np.zeros(raw.size, bool)
    if not np.all(known):
        index = int(np.argmin(known))
        raise ValueError(
            f"Line {index + 1} of {where} names the {what} id "
            f"{int(raw[index])}, which the loaded ratings do not have. "
            "Expected the fold files of the same release."
        )
    return order[found].astype(np.int32)


def _integer_array(name, values):
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(
            f"`{name}` must be a 1-D array of integers. Received: array of "
            f"shape {array.shape} and dtype {array.dtype}"
        )
    return array.astype(np.int64, copy=False)


def _index_array(name, values, size, map_name):
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(
            f"`{name}` must be a 1-D array of integer indices. Received: "
            f"array of shape {array.shape} and dtype {array.dtype}"
        )
    if array.size and (array.min() < 0 or array.max() >= size):
        bad = array[(array < 0) | (array >= size)][0]
        raise ValueError(
            f"`{name}` must hold indices in 0..{size - 1} (one per entry of "
            f"`{map_name}`). Received: {int(bad)}"
        )
    return array.astype(np.int32, copy=False)


def _raw_ids(name, values):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D, one entry per rating. Received: shape "
            f"{array.shape}"
        )
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.floor(array))
        if np.any(bad):
            index = int(np.argmax(bad))
            raise ValueError(
                f"`{name}` must hold whole numbers. Received: "
                f"{array[index]!r} at position {index}"
            )
        return array.astype(np.int64)
    if array.size == 0:
        return np.zeros(0, np.int64)
    raise ValueError(
        f"`{name}` must hold integers. Received: dtype {array.dtype}"
    )


def _finite_numbers(name, values):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D, one entry per rating. Received: shape "
            f"{array.shape}"
        )
    if array.size == 0:
        return np.zeros(0, np.float64)
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"`{name}` must hold numbers. Received: dtype {array.dtype}"
        )
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        index = int(np.argmin(np.isfinite(array)))
        raise ValueError(
            f"`{name}` must hold finite numbers. Received: {array[index]!r} "
            f"at position {index}"
        )
    return array


def _mapping(name, value):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(
            f"`{name}` must be a mapping from original movie id to "
            f"{name[:-1]}. Received: {type(value).__name__}"
        )
    return {int(k): v for k, v in value.items()}


def _object_array(name, values, size):
    if isinstance(values, np.ndarray) and values.dtype == object:
        array = values
    else:
        values = list(values)
        array = np.empty(len(values), object)
        array[:] = values
    if array.shape != (size,):
        raise ValueError(
            f"`{name}` must have one entry per movie ({size}). Received: "
            f"shape {array.shape}"
        )
    return array


def _tuples(values):
    array = np.empty(len(values), object)
    for index, value in enumerate(values):
        array[index] = _genre_tuple(value)
    return array
