"""The public loaders: a release from the cache or a folder, folds, users.

`load_ratings` finds the release (downloading and extracting it into the
Keras cache when needed), parses it, checks what it holds (the rating
scale of the release, no repeated (user, movie) pair) and returns
`Ratings`. `load_official_split` and `load_user_features` read the other
files of the release a `Ratings` was loaded from.
"""

import dataclasses
import os
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from keras_catembed.datasets.movielens.cache import _cache_dir
from keras_catembed.datasets.movielens.cache import _cache_key
from keras_catembed.datasets.movielens.cache import _extracted_release
from keras_catembed.datasets.movielens.cache import _lock
from keras_catembed.datasets.movielens.cache import _Parsed
from keras_catembed.datasets.movielens.cache import _read_parsed
from keras_catembed.datasets.movielens.cache import _write_parsed
from keras_catembed.datasets.movielens.checks import _index_ids
from keras_catembed.datasets.movielens.checks import _lookup
from keras_catembed.datasets.movielens.checks import _movie_metadata
from keras_catembed.datasets.movielens.checks import _object_array
from keras_catembed.datasets.movielens.download import DOWNLOAD_TIMEOUT_SECONDS
from keras_catembed.datasets.movielens.metadata import _read_movies
from keras_catembed.datasets.movielens.metadata import _read_user_features
from keras_catembed.datasets.movielens.parsing import _parse_ratings
from keras_catembed.datasets.movielens.ratings import Ratings
from keras_catembed.datasets.movielens.releases import _FORMATS
from keras_catembed.datasets.movielens.releases import OFFICIAL_FOLDS
from keras_catembed.datasets.movielens.releases import RELEASES
from keras_catembed.datasets.movielens.releases import Release
from keras_catembed.datasets.movielens.releases import _release
from keras_catembed.datasets.movielens.sources import _find_source
from keras_catembed.datasets.movielens.sources import _FolderSource
from keras_catembed.datasets.movielens.sources import _Source
from keras_catembed.datasets.movielens.sources import _source_at
from keras_catembed.datasets.movielens.verify import _check_no_duplicates
from keras_catembed.datasets.movielens.verify import _check_rating_scale


def load_ratings(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    download_timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
) -> Ratings:
    """Loads a MovieLens release as `Ratings` ready to embed.

    Without `data_dir`, the official GroupLens archive is downloaded once
    (with a progress bar) into the Keras cache, `$KERAS_HOME/datasets/`
    (by default `~/.keras/datasets/`), checked against the md5 that
    GroupLens publishes (`ml-latest` and `ml-latest-small` change over
    time and are not checked), and extracted to
    `datasets/<name>_extracted/`. The parsed arrays are saved beside the
    archive as `<name>.npz`, so later loads skip parsing. A lock file
    keeps processes that load at the same time from corrupting the cache.
    A truncated or corrupt archive is downloaded again once. Extraction is
    bounded (an archive whose entries would expand beyond a few times the
    size of the release is refused before it is written out), and the
    size and sha256 of every extracted file are recorded in a manifest: an
    extracted file that was truncated, changed or deleted since is noticed
    on the next load, and the folder is extracted again from the archive.

    With `data_dir`, nothing is downloaded or cached: the release is read
    from there.

    Each release is read in its own format: `u.data`/`u.item`/`u.genre`
    (ml-100k), `ratings.dat`/`movies.dat` (ml-1m, ml-10m) or
    `ratings.csv`/`movies.csv` (ml-20m and later). A UTF-8 byte order
    mark at the start of a file is ignored.

    What the ratings file holds is checked: every rating must be one the
    release publishes (whole stars 1..5 for ml-100k and ml-1m, half stars
    0.5..5 from ml-10m on), and each (user, movie) pair may appear only
    once: a repeated pair raises a `ValueError` naming the pair and its two
    lines (MovieLens keeps one rating per user and movie, so a repeat means
    a damaged or edited file; to load such data anyway, choose the rows to
    keep and use `Ratings.from_arrays`).

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
        download_timeout: Positive number. Seconds the whole download may
            take (besides each read waiting at most 60 seconds); a slower
            download is abandoned with an `OSError`. Defaults to `3600`.

    Returns:
        A `Ratings` object.

    Raises:
        ValueError: If `name` is unknown, the archive's checksum does not
            match, the archive is corrupt or unsafe (entries outside its
            folder, symbolic links, entries that expand beyond the limit of
            the release), a file has a malformed line, a rating outside the
            release's scale or a repeated (user, movie) pair (the message
            names the file and line).
        FileNotFoundError: If `data_dir` holds no copy of the release, or
            `download=False` and the cache holds none.
        OSError: If the download fails or does not finish within
            `download_timeout` (the message says how to pass `data_dir`
            instead).

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
    if (
        isinstance(download_timeout, bool)
        or not isinstance(download_timeout, (int, float))
        or not download_timeout > 0
    ):
        raise ValueError(
            "`download_timeout` must be a positive number of seconds. "
            f"Received: download_timeout={download_timeout!r}"
        )
    if data_dir is not None:
        source = _find_source(name, release, data_dir)
        return _to_ratings(name, source.path, _parse_release(release, source))
    cache_dir = _cache_dir()
    with _lock(os.path.join(cache_dir, f"{name}.lock")):
        folder = _extracted_release(
            name, release, cache_dir, download, float(download_timeout)
        )
        source = _FolderSource(folder)
        parsed_path = os.path.join(cache_dir, f"{name}.npz")
        key = _cache_key(name, release, source)
        arrays = _read_parsed(parsed_path, key)
        if arrays is None:
            arrays = _parse_release(release, source)
            _write_parsed(parsed_path, key, arrays)
    return _to_ratings(name, folder, arrays)


def _parse_release(release: Release, source: _Source) -> _Parsed:
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
    where = source.describe(ratings_name)
    first_line = 1 if fmt["header"] is None else 2
    _check_rating_scale(values, release["rating_scale"], where, first_line)
    user_id, user_ids = _index_ids(users)
    movie_id, movie_ids = _index_ids(movies)
    _check_no_duplicates(
        user_id, movie_id, movie_ids.size, users, movies, where, first_line
    )
    metadata = _read_movies(release, source)
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


def _to_ratings(name: str, path: str, arrays: _Parsed) -> Ratings:
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


def _pack(strings: Iterable[str]) -> NDArray[np.uint8]:
    """Packs strings without newlines into a uint8 array (for `.npz`)."""
    return np.frombuffer("\n".join(strings).encode("utf-8"), np.uint8)


def _unpack(packed: NDArray[np.uint8], count: int) -> list[str]:
    if count == 0:
        return []
    return packed.tobytes().decode("utf-8").split("\n")


def load_official_split(ratings: Ratings, fold: str) -> tuple[Ratings, Ratings]:
    """Reads one of ml-100k's official splits for ratings of ml-100k.

    The same as `ratings.official_split(fold)`: reads `<fold>.base` and
    `<fold>.test` from `ratings.path`, checks them like the ratings file,
    and returns parts that share the index maps of `ratings`.

    Args:
        ratings: `Ratings` of ml-100k, loaded by `load_ratings`.
        fold: String, one of `"u1"`, `"u2"`, `"u3"`, `"u4"`, `"u5"`,
            `"ua"`, `"ub"`.

    Returns:
        A tuple `(train, test)` of `Ratings`, rows in file order.

    Raises:
        ValueError: If the ratings are not ml-100k loaded from files,
            `fold` is unknown, or a fold file is malformed or names a
            user or movie that the ratings do not have.
    """
    release = RELEASES.get(ratings.name)
    if release is None or release["format"] != "100k":
        raise ValueError(
            "`official_split` is only available for ml-100k, whose "
            "release ships the folds u1..u5, ua and ub. Received: "
            f"ratings of {ratings.name!r}. Use `random_split` or "
            "`temporal_split` instead."
        )
    if fold not in OFFICIAL_FOLDS:
        raise ValueError(
            f"`fold` must be one of {', '.join(OFFICIAL_FOLDS)}. "
            f"Received: fold={fold!r}"
        )
    if ratings.path is None:
        raise ValueError(
            "`official_split` reads the fold files of the release, but "
            "these ratings do not say where it is (path=None). Load "
            "them with `load_ratings`."
        )
    source = _source_at(ratings.path, release)
    return (
        _from_fold_file(ratings, release, source, f"{fold}.base"),
        _from_fold_file(ratings, release, source, f"{fold}.test"),
    )


def _from_fold_file(
    ratings: Ratings, release: Release, source: _Source, filename: str
) -> Ratings:
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
    _check_rating_scale(values, release["rating_scale"], where, 1)
    user_id = _lookup(users, ratings.user_ids, "user", where)
    movie_id = _lookup(movies, ratings.movie_ids, "movie", where)
    _check_no_duplicates(
        user_id, movie_id, ratings.num_movies, users, movies, where, 1
    )
    return dataclasses.replace(
        ratings,
        user_id=user_id,
        movie_id=movie_id,
        rating=values.astype(np.float32),
        timestamp=stamps,
    )


def load_user_features(ratings: Ratings) -> dict[str, NDArray[np.int32]]:
    """Reads the age group, gender and occupation of each user index.

    The same as `ratings.user_features()`: reads the users file of ml-100k
    (`u.user`) or ml-1m (`users.dat`) from `ratings.path`.

    Args:
        ratings: `Ratings` of ml-100k or ml-1m, loaded by `load_ratings`.

    Returns:
        Dict mapping each name of `USER_FEATURES` to an int32 array of
        shape `(num_users,)`.

    Raises:
        ValueError: if the release has no user file (only ml-100k and
            ml-1m have one), the ratings were not loaded from files, or
            the file is malformed or lacks a user of the ratings.
    """
    if ratings.name not in ("ml-100k", "ml-1m"):
        raise ValueError(
            "`user_features` reads the users file of ml-100k (u.user) "
            "or ml-1m (users.dat); other releases describe no users. "
            f"Received: ratings of {ratings.name!r}"
        )
    if ratings.path is None:
        raise ValueError(
            "`user_features` reads the users file of the release, but "
            "these ratings do not say where it is (path=None). Load "
            "them with `load_ratings`."
        )
    release = RELEASES[ratings.name]
    source = _source_at(ratings.path, release)
    return _read_user_features(source, release, ratings.name, ratings.user_ids)
