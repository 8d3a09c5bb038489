"""Top-N recommendations from a trained `RatingModel`."""

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
from keras_catembed import backend

# Rows scored per `predict` call: users times candidates.
ROWS_PER_CALL = 2**20

# Each user's columns: one id array per column, one id per user.
Users = dict[str, NDArray[Any]]
# The item ids to leave out, per user id.
Excluded = Mapping[int, list[int]]
# `(item_ids, scores)`, each of shape `(users, k)`.
Ranked = tuple[NDArray[Any], NDArray[np.float32]]


def recommend(
    model: Any,
    users: Any,
    k: int = 10,
    *,
    exclude: Any = None,
    candidates: ArrayLike | None = None,
    user_column: str | None = None,
    item_column: str | None = None,
    path: str | None = None,
) -> Ranked:
    """Scores every candidate item for each user; see `RatingModel`.

    `path` (for benchmarks and tests) forces a scorer: `"predict"` (every
    row through `model.predict`), `"grid"` (column vectors once, the head
    over the grid) or `"retrieval"` (keras-rs top-k of a dot product). By
    default the fastest one that applies to `model` is used.
    """
    request = check_request(
        model,
        users,
        k,
        exclude=exclude,
        candidates=candidates,
        user_column=user_column,
        item_column=item_column,
        read_users=_model_users,
        read_candidates=_check_candidates,
    )
    user_column, item_column, _, columns, ids, _ = request
    # Every id is checked here, before any compiled call.
    for column, values in columns.items():
        model.embedding_layers[column].check_ids(values)
    model.embedding_layers[item_column].check_ids(ids)

    kind = _scorer_kind(model, path)
    # The scorers run compiled models that share `model`'s layers. Keras's
    # JAX loop detaches their variables while it runs: a call that fails
    # puts them back, so the model stays usable.
    saved = backend.current.save_state(model, copy=False)
    try:
        return _ranked(model, kind, request)
    except BaseException:
        model.__dict__.pop("_recommend_functions", None)
        backend.current.restore_state(model, saved)
        raise


def _ranked(model: Any, kind: Any, request: "Request") -> Ranked:
    """The top `k` items of each user, as the scorer `kind` scores them."""
    user_column, item_column, k, columns, ids, excluded = request
    num_users = len(columns[user_column])
    scorer = kind(model, columns, ids, user_column, item_column)
    retrieved: Ranked | None = scorer.top_k(k, excluded)
    if retrieved is not None:
        return retrieved
    item_ids = np.full((num_users, k), -1, dtype=ids.dtype)
    scores = np.full((num_users, k), np.nan, dtype="float32")
    chunk = max(1, scorer.rows_per_call // ids.size)
    position = {int(item): i for i, item in enumerate(ids)}
    for start in range(0, num_users, chunk):
        stop = min(start + chunk, num_users)
        seen = _seen(excluded, columns[user_column][start:stop], position)
        block = scorer.scores(start, stop, seen)
        block[seen] = -np.inf
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        valid = np.isfinite(top_scores)
        item_ids[start:stop] = np.where(valid, ids[top], -1)
        scores[start:stop] = np.where(valid, top_scores, np.nan)
    return item_ids, scores


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
    user_column, item_column = _check_columns(
        recommender, user_column, item_column
    )
    k = _check_k(k)
    users, exclude = read_users(
        recommender, users, exclude, user_column, item_column
    )
    candidates = read_candidates(recommender, candidates, item_column)
    if k > candidates.size:
        raise ValueError(
            f"`k` must be at most the number of candidates "
            f"({candidates.size}). Received: k={k}"
        )
    excluded = _excluded(exclude, user_column, item_column, users[user_column])
    return Request(user_column, item_column, k, users, candidates, excluded)


def _model_users(
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
    return _check_users(model, users, user_column, item_column), exclude


def _seen(
    excluded: Excluded, users: NDArray[Any], position: Mapping[int, int]
) -> NDArray[np.bool_]:
    """Boolean mask `(len(users), len(position))` of the pairs to leave out."""
    seen = np.zeros((len(users), len(position)), dtype=bool)
    for row, user in enumerate(users.tolist()):
        for item in excluded.get(int(user), ()):
            if item in position:
                seen[row, position[item]] = True
    return seen


class Scorer:
    """Scores the candidate items of users; what `recommend` asks of a path.

    A scorer either ranks by itself (`top_k`) or scores blocks of users
    (`scores`, about `rows_per_call` user-item rows at a time), which
    `recommend` ranks.
    """

    rows_per_call = ROWS_PER_CALL

    @staticmethod
    def applies(model: Any, base: type) -> bool:
        """Whether this scorer is proven equal to scoring through `model`.

        `base` is the model class that offers the scorer (see
        `_scorer_kind`): the proof holds for its own methods.
        """
        return True

    def __init__(
        self,
        model: Any,
        users: Users,
        candidates: NDArray[Any],
        user_column: str,
        item_column: str,
    ) -> None:
        self.model = model
        self.users = users
        self.candidates = candidates
        self.user_column = user_column
        self.item_column = item_column
        self.prepare()

    def prepare(self) -> None:
        """Computes once what scoring needs (a subclass's set-up)."""

    def top_k(self, k: int, excluded: Excluded) -> Ranked | None:
        """Every user's top `k` items and scores, or None to use `scores`."""
        return None

    def scores(
        self, start: int, stop: int, seen: NDArray[np.bool_]
    ) -> NDArray[np.float32]:
        """Scores of users `start:stop`, `(stop - start, candidates)`."""
        raise NotImplementedError


def _scorer_kind(model: Any, path: str | None = None) -> type[Scorer]:
    """The fastest scorer proven equal to scoring through the model.

    The model's class offers its fast scorers, fastest first, each with
    the class whose methods it was proven on (`_recommend_scorers`:
    `{name: (scorer, class)}`); `"predict"` applies to any model.
    """
    offered: dict[str, tuple[type[Scorer], type]] = getattr(
        model, "_recommend_scorers", dict
    )()
    offered["predict"] = (PredictGrid, object)
    usable: dict[str, type[Scorer]] = {
        name: kind
        for name, (kind, base) in offered.items()
        if kind.applies(model, base)
    }
    if path is None:
        return next(iter(usable.values()))
    if path not in usable:
        raise ValueError(
            f"`path` must be one of {list(usable)} for this model. "
            f"Received: path={path!r}"
        )
    return usable[path]


class PredictGrid(Scorer):
    """Scores every user-item row through `model.predict`: always exact."""

    def scores(
        self, start: int, stop: int, seen: NDArray[np.bool_]
    ) -> NDArray[np.float32]:
        size = stop - start
        inputs = {
            column: np.repeat(values[start:stop], self.candidates.size)
            for column, values in self.users.items()
        }
        inputs[self.item_column] = np.tile(self.candidates, size)
        predicted = self.model.predict(inputs, batch_size=65536, verbose=0)
        return np.asarray(predicted, "float32").reshape(size, -1)


def _check_columns(
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


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
    return int(k)


def _as_ids(name: str, values: ArrayLike) -> NDArray[Any]:
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


def _check_users(
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
    checked = {c: _as_ids(f"users[{c!r}]", v) for c, v in users.items()}
    lengths = {c: len(v) for c, v in checked.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"The columns of `users` must have one length. Received {lengths}"
        )
    if not lengths[user_column]:
        raise ValueError("`users` must hold at least one user. Received none")
    return checked


def _check_candidates(
    model: Any, candidates: ArrayLike | None, item_column: str
) -> NDArray[Any]:
    layer = model.embedding_layers[item_column]
    if candidates is None:
        if layer.vocabulary is not None:
            return np.asarray(layer.vocabulary)
        return np.arange(layer.input_dim, dtype="int64")
    candidates = _as_ids("candidates", candidates)
    if candidates.size == 0:
        raise ValueError("`candidates` must hold at least one id")
    if np.unique(candidates).size != candidates.size:
        raise ValueError("`candidates` must not repeat an id")
    return candidates


def _excluded(
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
            f"`exclude[{column!r}]`", _as_ids(f"exclude[{column!r}]", values)
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
