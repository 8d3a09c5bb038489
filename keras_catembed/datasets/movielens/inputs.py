"""Model inputs from `Ratings`: a dict of id arrays keyed by column."""

from collections.abc import Sequence
from typing import Any

from numpy.typing import NDArray

from keras_catembed.datasets.movielens.ratings import Ratings
from keras_catembed.datasets.movielens.releases import TIME_COLUMNS
from keras_catembed.datasets.movielens.releases import USER_FEATURES


def inputs(
    ratings: Ratings, columns: Sequence[str] = ("user_id", "movie_id")
) -> dict[str, NDArray[Any]]:
    """The model inputs of a `Ratings`: a dict keyed by column name.

    Args:
        ratings: A `keras_catembed.datasets.movielens.Ratings`.
        columns: The model's columns (`model.columns`): `"user_id"`,
            `"movie_id"`, names of `movielens.USER_FEATURES`, which are
            looked up for each rating's user in `ratings.user_features()`,
            and `"user_day"`, the index of each rating's user and day
            (`ratings.user_day()`; needs timestamps). Defaults to
            `("user_id", "movie_id")`.

    Returns:
        Dict of arrays of one id per rating, keyed by column.
    """
    x: dict[str, NDArray[Any]] = {
        "user_id": ratings.user_id,
        "movie_id": ratings.movie_id,
    }
    known = ["user_id", "movie_id", *USER_FEATURES, *TIME_COLUMNS]
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(
            f"No MovieLens input is named {unknown[0]!r}. Expected columns "
            f"among {known}"
        )
    if "user_day" in columns:
        x["user_day"] = ratings.user_day()
    if any(column in USER_FEATURES for column in columns):
        features = ratings.user_features()
        for column in columns:
            if column in features:
                x[column] = features[column][ratings.user_id]
    return {column: x[column] for column in columns}
