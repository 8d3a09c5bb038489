"""Argument checks and id renumbering shared by `Ratings` and the loader."""

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed.datasets.movielens.releases import _NO_GENRES


def _genre_tuple(genres: str | Iterable[object]) -> tuple[str, ...]:
    if isinstance(genres, str):
        if genres.strip() in ("", _NO_GENRES):
            return ()
        return tuple(genres.split("|"))
    return tuple(str(genre) for genre in genres)


def _movie_metadata(
    movie_ids: NDArray[np.integer],
    titles: Mapping[int, object],
    genres: Mapping[int, tuple[str, ...]],
) -> tuple[list[str], list[tuple[str, ...]]]:
    """Lists the title and genres of each movie index."""
    movie_titles: list[str] = []
    movie_genres: list[tuple[str, ...]] = []
    for movie in movie_ids.tolist():
        movie_titles.append(str(titles.get(movie, f"movie {movie}")))
        movie_genres.append(genres.get(movie, ()))
    return movie_titles, movie_genres


def _index_ids(
    raw: NDArray[np.integer],
) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
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


def _lookup(
    raw: NDArray[np.integer], ids: NDArray[np.integer], what: str, where: str
) -> NDArray[np.int32]:
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
    indices: NDArray[np.int32] = order[found].astype(np.int32)
    return indices


def _integer_array(name: str, values: ArrayLike) -> NDArray[np.int64]:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(
            f"`{name}` must be a 1-D array of integers. Received: array of "
            f"shape {array.shape} and dtype {array.dtype}"
        )
    return array.astype(np.int64, copy=False)


def _index_array(
    name: str, values: ArrayLike, size: int, map_name: str
) -> NDArray[np.int32]:
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


def _raw_ids(name: str, values: ArrayLike) -> NDArray[np.int64]:
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


def _finite_numbers(name: str, values: ArrayLike) -> NDArray[np.float64]:
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


def _mapping(name: str, value: object) -> dict[int, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(
            f"`{name}` must be a mapping from original movie id to "
            f"{name[:-1]}. Received: {type(value).__name__}"
        )
    return {int(k): v for k, v in value.items()}


def _object_array(
    name: str, values: Iterable[object], size: int
) -> NDArray[np.object_]:
    if isinstance(values, np.ndarray) and values.dtype == object:
        array = values
    else:
        items = list(values)
        array = np.empty(len(items), object)
        array[:] = items
    if array.shape != (size,):
        raise ValueError(
            f"`{name}` must have one entry per movie ({size}). Received: "
            f"shape {array.shape}"
        )
    return array


def _tuples(values: Sequence[str | Iterable[object]]) -> NDArray[np.object_]:
    array = np.empty(len(values), object)
    for index, value in enumerate(values):
        array[index] = _genre_tuple(value)
    return array


def _row_fields(
    user_ids: ArrayLike,
    movie_ids: ArrayLike,
    ratings: ArrayLike,
    timestamps: ArrayLike | None,
    titles: Mapping[int, str] | None,
    genres: Mapping[int, str | Sequence[str]] | None,
) -> dict[str, Any]:
    """The `Ratings` fields of one row per rating (`Ratings.from_arrays`).

    Checks each argument, renumbers users and movies `0..n-1` in
    increasing order of their original ids, and fills in the titles and
    genres of the movies.
    """
    users = _raw_ids("user_ids", user_ids)
    movies = _raw_ids("movie_ids", movie_ids)
    values = _finite_numbers("ratings", ratings)
    stamps: NDArray[np.int64] | None = None
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
    title_map = _mapping("titles", titles)
    genre_map = _mapping("genres", genres)
    user_index, user_map = _index_ids(users)
    movie_index, movie_map = _index_ids(movies)
    movie_titles, movie_genres = _movie_metadata(
        movie_map,
        title_map,
        {k: _genre_tuple(v) for k, v in genre_map.items()},
    )
    return {
        "user_id": user_index,
        "movie_id": movie_index,
        "rating": values.astype(np.float32),
        "timestamp": stamps,
        "user_ids": user_map,
        "movie_ids": movie_map,
        "titles": _object_array("titles", movie_titles, movie_map.size),
        "genres": _tuples(movie_genres),
    }
