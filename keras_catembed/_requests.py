"""The checked arguments of a `recommend` call, shared by recommenders."""

import collections.abc
import numbers
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed import _frames

# Each user's columns: one id array per column, one id per user.
Users = dict[str, NDArray[Any]]
# The item ids to leave out, per user id.
Excluded = Mapping[int, list[int]]


class Request(NamedTuple):
    """The checked arguments of a `recommend` call."""

    user_column: str
    item_column: str
    k: int
    users: Users
    candidates: NDArray[Any]
    excluded: Excluded


def check_request(
    recommender: Any,
    users: Any,
    k: int,
    *,
    exclude: Any,
    candidates: ArrayLike | None,
    user_column: str | None,
    item_column: str | None,
    read_users: Callable[[Any, Any, Any, str, str], tuple[Users, Any]],
    read_candidates: Callable[[Any, ArrayLike | None, str], NDArray[Any]],
) -> Request:
    """Checks the arguments of a `recommend` method, before any scoring.

    Shared by `RatingModel.recommend` and `MostPopular.recommend`: the
    columns, `k`, the users, the candidates (at least `k` of them) and the
    `exclude` pairs, in that order. What a recommender accepts as users and
    candidates is its own: `read_users(recommender, users, exclude,
    user_column, item_column)` returns the users as a dict of id arrays
    holding `user_column`, and `exclude` (both may be converted, e.g. from
    a DataFrame); `read_candidates(recommender, candidates, item_column)`
    returns the candidate ids.
    """
    user_column, item_column = check_columns(
        recommender, user_column, item_column
    )
    k = check_k(k)
    users, exclude = read_users(
        recommender, users, exclude, user_column, item_column
    )
    candidates = read_candidates(recommender, candidates, item_column)
    if k > candidates.size:
        raise ValueError(
            f"`k` must be at most the number of candidates "
            f"({candidates.size}). Received: k={k}"
        )
    excluded = excluded_pairs(
        exclude, user_column, item_column, users[user_column]
    )
    return Request(user_column, item_column, k, users, candidates, excluded)


def model_users(
    model: Any, users: Any, exclude: Any, user_column: str, item_column: str
) -> tuple[Users, Any]:
    """A model's users (one id per column per user) and `exclude`."""
    if _frames.is_dataframe(users):
        others = [
            c for c in model.columns if c not in (user_column, item_column)
        ]
        users = _frames.columns(users, [user_column, *others], "users")
    if _frames.is_dataframe(exclude):
        exclude = _frames.columns(
            exclude, [user_column, item_column], "exclude"
        )
    return check_users(model, users, user_column, item_column), exclude


def check_columns(
    model: Any, user_column: str | None, item_column: str | None
) -> tuple[str, str]:
    columns = model.columns
    if len(columns) != 2 and (user_column is None or item_column is None):
        raise ValueError(
            "`recommend` needs `user_column` and `item_column` for a "
            f"model of {len(columns)} columns {columns}."
        )
    user_column = columns[0] if user_column is None else user_column
    item_column = columns[1] if item_column is None else item_column
    for name, value in (
        ("user_column", user_column),
        ("item_column", item_column),
    ):
        if value not in columns:
            raise ValueError(
                f"`{name}` must be one of the model's columns {columns}. "
                f"Received: {name}={value!r}"
            )
    if user_column == item_column:
        raise ValueError(
            "`user_column` and `item_column` must differ. Received "
            f"{user_column!r} for both"
        )
    return user_column, item_column


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
    return int(k)


def as_ids(name: str, values: ArrayLike) -> NDArray[Any]:
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of ids. Received shape {array.shape}"
        )
    return array


def check_users(
    model: Any, users: Any, user_column: str, item_column: str
) -> Users:
    others = [c for c in model.columns if c not in (user_column, item_column)]
    if not isinstance(users, collections.abc.Mapping):
        users = {user_column: users}
    users = dict(users)
    if user_column not in users:
        raise ValueError(
            f"`users` must hold the column {user_column!r}. Received the "
            f"columns {sorted(users)}"
        )
    missing = [c for c in others if c not in users]
    unknown = [c for c in users if c not in (user_column, *others)]
    if missing or unknown:
        raise ValueError(
            "`users` must give, per user, the columns "
            f"{[user_column, *others]}. Missing: {missing}; unknown: "
            f"{unknown}"
        )
    checked = {c: as_ids(f"users[{c!r}]", v) for c, v in users.items()}
    lengths = {c: len(v) for c, v in checked.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"The columns of `users` must have one length. Received {lengths}"
        )
    if not lengths[user_column]:
        raise ValueError("`users` must hold at least one user. Received none")
    return checked


def check_candidates(
    model: Any, candidates: ArrayLike | None, item_column: str
) -> NDArray[Any]:
    if candidates is None:
        layers = item_layers(model, item_column)
        if not layers:
            raise ValueError(
                "`candidates` must be given: no model here holds a table "
                f"of {item_column!r} ids to take them from. Received: "
                "candidates=None"
            )
        # Every table's ids (an ensemble's members may hold fewer), in
        # the order of the first.
        held = [
            np.asarray(layer.vocabulary)
            if layer.vocabulary is not None
            else np.arange(layer.input_dim, dtype="int64")
            for layer in layers
        ]
        ids = held[0]
        for other in held[1:]:
            ids = ids[np.isin(ids, other)]
        if ids.size == 0:
            raise ValueError(
                "`candidates` must be given: the models here hold no "
                f"{item_column!r} id in common. Received: candidates=None"
            )
        return ids
    candidates = as_ids("candidates", candidates)
    if candidates.size == 0:
        raise ValueError("`candidates` must hold at least one id")
    if np.unique(candidates).size != candidates.size:
        raise ValueError("`candidates` must not repeat an id")
    return candidates


def item_layers(model: Any, item_column: str) -> list[Any]:
    """The id tables of `item_column`: the model's, or its members'."""
    from keras_catembed import _checks

    found = []
    for part in _checks.model_tree(model):
        layers = getattr(part, "embedding_layers", None) or {}
        if item_column in layers:
            found.append(layers[item_column])
    return found


def excluded_pairs(
    exclude: Any, user_column: str, item_column: str, wanted: NDArray[Any]
) -> dict[int, list[int]]:
    """Maps each of the `wanted` user ids to the item ids to leave out."""
    if exclude is None:
        return {}
    if not isinstance(exclude, collections.abc.Mapping):
        raise ValueError(
            "`exclude` must be a dict with the columns "
            f"{[user_column, item_column]} (the pairs already rated). "
            f"Received: {type(exclude).__name__}"
        )
    missing = [c for c in (user_column, item_column) if c not in exclude]
    if missing:
        raise ValueError(
            f"`exclude` must hold the columns {[user_column, item_column]}. "
            f"Missing: {missing}"
        )
    from keras_catembed import _checks

    # Whole numbers, as the model's own ids: `int` would truncate 5.5.
    users, items = (
        _checks.ids_to_numpy(
            f"`exclude[{column!r}]`", as_ids(f"exclude[{column!r}]", values)
        )
        for column, values in (
            (user_column, exclude[user_column]),
            (item_column, exclude[item_column]),
        )
    )
    if users.size != items.size:
        raise ValueError(
            "The columns of `exclude` must have one length. Received "
            f"{users.size} and {items.size}"
        )
    # Only the pairs of the users asked for are looked at again.
    mine = np.isin(users, wanted)
    users, items = users[mine], items[mine]
    excluded: dict[int, list[int]] = collections.defaultdict(list)
    for user, item in zip(users.tolist(), items.tolist(), strict=True):
        excluded[int(user)].append(int(item))
    return excluded
