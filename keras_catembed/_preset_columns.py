"""The MovieLens columns a preset embeds, and adding more to a preset."""

import os
from collections.abc import Iterable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from keras_catembed import _checks
from keras_catembed import _inputs
from keras_catembed._preset_files import load

if TYPE_CHECKING:
    from keras_catembed.datasets.movielens import Ratings

ID_COLUMNS = ("user_id", "movie_id")


def known_columns() -> tuple[dict[str, int], tuple[str, ...]]:
    """The columns a preset can add: user features (by size), time columns."""
    # Imported here: the MovieLens package imports the model modules.
    from keras_catembed.datasets.movielens import TIME_COLUMNS
    from keras_catembed.datasets.movielens import USER_FEATURES

    return USER_FEATURES, TIME_COLUMNS


def columns(config: Mapping[str, Any]) -> list[str]:
    """Every column a preset config embeds, ids first.

    The user and movie ids; the columns listed under `"user_features"`
    and `"time_columns"`; and every column the model part sets per column
    (`config["model"]["embeddings"]`), so that a preset folder, whose model
    part names each of its columns, embeds the same columns again.
    """
    named = [
        *ID_COLUMNS,
        *(config.get("user_features") or ()),
        *(config.get("time_columns") or ()),
        *(config.get("model", {}).get("embeddings") or {}),
    ]
    return list(dict.fromkeys(named))


def cardinalities(columns: Iterable[str], ratings: "Ratings") -> dict[str, int]:
    """The cardinality of each MovieLens column for `ratings`.

    Users, movies and time columns (`"user_day"`) are sized by the
    `Ratings` (whose splits share the whole data set's index maps), user
    features by `movielens.USER_FEATURES`.
    """
    features, times = known_columns()
    embeddings: dict[str, int] = {}
    for column in columns:
        if column == "user_id":
            embeddings[column] = ratings.num_users
        elif column == "movie_id":
            embeddings[column] = ratings.num_movies
        elif column in features:
            embeddings[column] = features[column]
        elif column in times:
            if ratings.timestamp is None:
                ratings.user_day()  # Raises: the column needs timestamps.
            embeddings[column] = ratings.num_user_days
        else:
            raise ValueError(
                f"Cannot make the column {column!r} from MovieLens ratings. "
                f"Expected 'user_id', 'movie_id', user features "
                f"{sorted(features)} or time columns {list(times)}"
            )
    return embeddings


def with_columns(
    preset: str | os.PathLike[str] | Mapping[str, Any],
    names: Iterable[str],
    *,
    output_dim: int = 8,
) -> dict[str, Any]:
    """A preset dict with more MovieLens columns; see `presets`."""
    if isinstance(names, str):
        names = [names]
    if isinstance(names, Iterable):
        names = list(names)
    if not isinstance(names, list) or not all(
        isinstance(name, str) for name in names
    ):
        raise ValueError(
            "`columns` must be a list of column names (strings). Received: "
            f"columns={names!r}"
        )
    output_dim = _checks.positive_int("output_dim", output_dim)
    features, times = known_columns()
    unknown = [n for n in names if n not in features and n not in times]
    if unknown or not names:
        raise ValueError(
            "`columns` must name some of the user features "
            f"{sorted(features)} or the time columns {list(times)}. "
            f"Received: {names}"
        )
    config = load(preset)
    # A folder's trained weights and cardinalities are not this preset's.
    for key in ("weights", "embeddings"):
        config.pop(key, None)
    model = config["model"]
    by_column = model.get("embeddings") or {}
    # Every column is set per column; those the shared settings size keep
    # them (an empty dict).
    for column in columns(config):
        by_column.setdefault(column, {})
    for name in names:
        key = "user_features" if name in features else "time_columns"
        listed = list(config.get(key) or [])
        if name not in listed:
            listed.append(name)
        config[key] = listed
        by_column[name] = {"output_dim": output_dim}
    model["embeddings"] = by_column
    for key in ("implicit", "neighborhood"):
        if key in model:
            model[key] = _inputs.first_two_paired(model[key], columns(config))
    return config
