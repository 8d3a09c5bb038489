"""The MovieLens releases the loader knows, and the codes of their fields.

Pure data: each release's archive, file format and what its files may
hold (the rating scale, how large the extracted files may grow), plus the
genre, age group, gender and occupation names that index codes stand for.
"""

from typing import TypedDict


class Release(TypedDict):
    """One entry of `RELEASES`."""

    url: str
    file_hash: str | None
    folder: str
    format: str
    encoding: str
    rating_scale: tuple[float, float, float]
    max_extracted_bytes: int


class _Format(TypedDict):
    """One entry of `_FORMATS`."""

    ratings: str
    separator: bytes
    header: bytes | None
    columns: tuple[str, str, str, str]
    movies: str


_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
_MIB = 1 << 20

# The releases `load_ratings` knows. Each entry gives the archive's `url`,
# its `file_hash` ("md5:<hex>" or "sha256:<hex>", or None where GroupLens
# updates the archive in place), the `folder` the archive extracts to, the
# file `format` ("100k", "dat" or "csv") and the text `encoding` of the
# movie metadata. The md5 values are those GroupLens publishes beside each
# archive (`<url>.md5`). Tests point `url` and `file_hash` at local fixtures.
#
# `rating_scale` is `(lowest, highest, step)` of the ratings the release
# publishes: whole stars 1..5 for ml-100k and ml-1m, half stars 0.5..5 from
# ml-10m on. `max_extracted_bytes` bounds what extracting the archive may
# write: a few times the size of the published files (the ml-latest
# releases grow over time, so they get more room); an archive whose entries
# would expand beyond it is refused.
RELEASES: dict[str, Release] = {
    "ml-100k": {
        "url": _BASE_URL + "ml-100k.zip",
        "file_hash": "md5:0e33842e24a9c977be4e0107933c0723",
        "folder": "ml-100k",
        "format": "100k",
        "encoding": "latin-1",
        "rating_scale": (1, 5, 1),
        "max_extracted_bytes": 64 * _MIB,
    },
    "ml-1m": {
        "url": _BASE_URL + "ml-1m.zip",
        "file_hash": "md5:c4d9eecfca2ab87c1945afe126590906",
        "folder": "ml-1m",
        "format": "dat",
        "encoding": "latin-1",
        "rating_scale": (1, 5, 1),
        "max_extracted_bytes": 128 * _MIB,
    },
    "ml-10m": {
        "url": _BASE_URL + "ml-10m.zip",
        "file_hash": "md5:ce571fd55effeba0271552578f2648bd",
        "folder": "ml-10M100K",
        "format": "dat",
        "encoding": "utf-8",
        "rating_scale": (0.5, 5, 0.5),
        "max_extracted_bytes": 2048 * _MIB,
    },
    "ml-20m": {
        "url": _BASE_URL + "ml-20m.zip",
        "file_hash": "md5:cd245b17a1ae2cc31bb14903e1204af3",
        "folder": "ml-20m",
        "format": "csv",
        "encoding": "utf-8",
        "rating_scale": (0.5, 5, 0.5),
        "max_extracted_bytes": 4096 * _MIB,
    },
    "ml-25m": {
        "url": _BASE_URL + "ml-25m.zip",
        "file_hash": "md5:6b51fb2759a8657d3bfcbfc42b592ada",
        "folder": "ml-25m",
        "format": "csv",
        "encoding": "utf-8",
        "rating_scale": (0.5, 5, 0.5),
        "max_extracted_bytes": 6144 * _MIB,
    },
    "ml-32m": {
        "url": _BASE_URL + "ml-32m.zip",
        "file_hash": "md5:d472be332d4daa821edc399621853b57",
        "folder": "ml-32m",
        "format": "csv",
        "encoding": "utf-8",
        "rating_scale": (0.5, 5, 0.5),
        "max_extracted_bytes": 6144 * _MIB,
    },
    "ml-latest-small": {
        "url": _BASE_URL + "ml-latest-small.zip",
        "file_hash": None,
        "folder": "ml-latest-small",
        "format": "csv",
        "encoding": "utf-8",
        "rating_scale": (0.5, 5, 0.5),
        "max_extracted_bytes": 64 * _MIB,
    },
    "ml-latest": {
        "url": _BASE_URL + "ml-latest.zip",
        "file_hash": None,
        "folder": "ml-latest",
        "format": "csv",
        "encoding": "utf-8",
        "rating_scale": (0.5, 5, 0.5),
        "max_extracted_bytes": 16384 * _MIB,
    },
}

_FORMATS: dict[str, _Format] = {
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
# Columns of each rating's time that `inputs` derives from the timestamps:
# "user_day" indexes the rating's user and day (`Ratings.user_day()`).
TIME_COLUMNS = ("user_day",)
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


_NO_GENRES = "(no genres listed)"


def _release(name: object) -> Release:
    if not isinstance(name, str) or name not in RELEASES:
        raise ValueError(
            f"Unknown MovieLens release. Received: name={name!r}. Expected "
            f"one of: {', '.join(RELEASES)}."
        )
    return RELEASES[name]
