"""Parsers of the movie and user files: titles, genres and user codes.

Each file is read as bytes; a UTF-8 byte order mark at its start is dropped
before the text is decoded in the release's encoding (decoding it as
latin-1 first would turn the mark into three characters of the first
title).
"""

import csv
import io
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from keras_catembed.datasets.movielens.checks import _genre_tuple
from keras_catembed.datasets.movielens.releases import _AGE_GROUP_STARTS
from keras_catembed.datasets.movielens.releases import _FORMATS
from keras_catembed.datasets.movielens.releases import GENDERS
from keras_catembed.datasets.movielens.releases import GENRES_100K
from keras_catembed.datasets.movielens.releases import OCCUPATIONS_1M
from keras_catembed.datasets.movielens.releases import OCCUPATIONS_100K
from keras_catembed.datasets.movielens.releases import USER_FEATURES
from keras_catembed.datasets.movielens.releases import Release
from keras_catembed.datasets.movielens.sources import _Source

_BOM = b"\xef\xbb\xbf"
# {movie id: (title, genres)}.
_Movies = dict[int, tuple[str, tuple[str, ...]]]
# (age group, gender, occupation) codes of one user.
_UserCodes = tuple[int, int, int]


def _read_text(
    source: _Source, filename: str, encoding: str, errors: str = "replace"
) -> str:
    """The text of a file, without a leading UTF-8 byte order mark."""
    data = source.read(filename).removeprefix(_BOM)
    return data.decode(encoding, errors).removeprefix("\ufeff")


def _user_codes_100k(
    fields: Sequence[str], occupations: Sequence[str]
) -> _UserCodes:
    """(age group, gender, occupation) of a u.user line's fields."""
    age = np.searchsorted(_AGE_GROUP_STARTS[1:], int(fields[1]), "right")
    return int(age), GENDERS.index(fields[2]), occupations.index(fields[3])


def _user_codes_1m(
    fields: Sequence[str], occupations: Sequence[str]
) -> _UserCodes:
    """(age group, gender, occupation) of a users.dat line's fields."""
    occupation = int(fields[3])
    if not 0 <= occupation < len(occupations):
        raise ValueError(f"occupation code {occupation}")
    age = _AGE_GROUP_STARTS.index(int(fields[2]))
    return age, GENDERS.index(fields[1]), occupation


# Per release format: the users file, its separator, the layout a line
# must have, and the parser of its fields.
_USER_FILES: dict[
    str,
    tuple[str, str, str, Callable[[Sequence[str], Sequence[str]], _UserCodes]],
] = {
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


def _read_movies(release: Release, source: _Source) -> _Movies:
    """Returns {movie id: (title, genres)} from the release's movie file."""
    fmt = release["format"]
    filename = _FORMATS[fmt]["movies"]
    if not source.exists(filename):
        return {}
    where = source.describe(filename)
    text = _read_text(source, filename, release["encoding"])
    if fmt == "100k":
        return _parse_u_item(text, where, _read_u_genre(release, source))
    if fmt == "dat":
        return _parse_movies_dat(text, where)
    return _parse_movies_csv(text, where)


def _movie_id(field: str, where: str, line_number: int) -> int:
    try:
        return int(field)
    except ValueError:
        raise ValueError(
            f"Malformed line {line_number} in {where}: the movie id "
            f"{field!r} is not a whole number."
        ) from None


def _read_u_genre(release: Release, source: _Source) -> tuple[str, ...]:
    if not source.exists("u.genre"):
        return GENRES_100K
    where = source.describe("u.genre")
    text = _read_text(source, "u.genre", release["encoding"])
    names: dict[int, str] = {}
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


def _parse_u_item(text: str, where: str, genre_names: Sequence[str]) -> _Movies:
    movies: _Movies = {}
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


def _parse_movies_dat(text: str, where: str) -> _Movies:
    movies: _Movies = {}
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


def _parse_movies_csv(text: str, where: str) -> _Movies:
    movies: _Movies = {}
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


def _read_user_features(
    source: _Source,
    release: Release,
    name: str,
    user_ids: NDArray[np.integer],
) -> dict[str, NDArray[np.int32]]:
    """{feature: int32 codes of each of `user_ids`} from the users file."""
    filename, separator, expected, parse = _USER_FILES[release["format"]]
    where = source.describe(filename)
    if not source.exists(filename):
        raise ValueError(
            f"`user_features` needs {where}, which does not exist. "
            f"Expected a complete {name} release."
        )
    occupations: tuple[str, ...] = OCCUPATIONS_1M
    if release["format"] == "100k":
        occupations = OCCUPATIONS_100K
        if source.exists("u.occupation"):
            text = _read_text(source, "u.occupation", "latin-1")
            occupations = tuple(
                line.strip() for line in text.splitlines() if line.strip()
            )
    by_id: dict[int, _UserCodes] = {}
    text = _read_text(source, filename, "latin-1")
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
    missing = [int(u) for u in user_ids if int(u) not in by_id]
    if missing:
        raise ValueError(
            f"{where} does not describe the user id {missing[0]} (and "
            f"{len(missing) - 1} more) of the ratings. Expected the "
            "users file of the same release."
        )
    table = np.array([by_id[int(u)] for u in user_ids], "int32")
    table = table.reshape(-1, 3)
    return {
        name: table[:, column].copy()
        for column, name in enumerate(USER_FEATURES)
    }
