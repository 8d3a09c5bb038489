"""Top-N recommendations from a trained model or ensemble."""

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed import _checks
from keras_catembed import _pairs
from keras_catembed import _requests
from keras_catembed import backend
from keras_catembed._requests import Excluded
from keras_catembed._requests import Users

# Rows scored per `predict` call: users times candidates.
ROWS_PER_CALL = 2**20

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
    request = _requests.check_request(
        model,
        users,
        k,
        exclude=exclude,
        candidates=candidates,
        user_column=user_column,
        item_column=item_column,
        read_users=_requests.model_users,
        read_candidates=_requests.check_candidates,
    )
    user_column, item_column, _, columns, ids, _ = request
    # Every id, and the pairs, are checked here, before any compiled call.
    check_ids(model, columns, ids, user_column, item_column)

    kind = scorer_kind(model, path)
    # The scorers run compiled models that share `model`'s layers. Keras's
    # JAX loop detaches their variables while it runs: a call that fails
    # puts them back, so the model stays usable.
    saved = backend.current.save_state(model, copy=False)
    try:
        return _ranked(model, kind, request)
    except BaseException:
        for part in _checks.model_tree(model):
            part.__dict__.pop("_recommend_functions", None)
        backend.current.restore_state(model, saved)
        raise


def check_ids(
    model: Any,
    users: Users,
    candidates: NDArray[Any],
    user_column: str,
    item_column: str,
) -> None:
    """Raises unless `model` (each member of an ensemble) can score them.

    A model with id tables checks the users' ids and the candidates with
    them; one that reads adapted pairs or stored ratings must hold them.
    An ensemble's members are checked with the columns each reads, and
    each must read the user and item columns.
    """
    members = getattr(model, "members", None)
    if members is not None:
        for member in members:
            own = getattr(member, "columns", None)
            if own is not None and not {user_column, item_column} <= set(own):
                raise ValueError(
                    f"`recommend` scores each user's items with every "
                    f"member: member '{member.name}' reads the columns "
                    f"{list(own)}, expected both {user_column!r} and "
                    f"{item_column!r}."
                )
            check_ids(
                member,
                member_users(member, users),
                candidates,
                user_column,
                item_column,
            )
        return
    ready = getattr(model, "_require_adapted", None)
    if ready is not None:
        ready("recommend")
    _pairs.check_model_adapted(model)
    layers = getattr(model, "embedding_layers", None) or {}
    for column, values in users.items():
        if column in layers:
            layers[column].check_ids(values)
    if item_column in layers:
        layers[item_column].check_ids(candidates)


def member_users(member: Any, users: Users) -> Users:
    """The columns of `users` that an ensemble's `member` reads.

    All of them for a member without `columns`, as the ensemble's `call`
    gives such a member every input.
    """
    own = getattr(member, "columns", None)
    return {c: v for c, v in users.items() if own is None or c in own}


def _ranked(model: Any, kind: Any, request: _requests.Request) -> Ranked:
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
        `scorer_kind`): the proof holds for its own methods.
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


def scorer_kind(
    model: Any, path: str | None = None, blocks: bool = False
) -> type[Scorer]:
    """The fastest scorer proven equal to scoring through the model.

    The model's class offers its fast scorers, fastest first, each with
    the class whose methods it was proven on (`_recommend_scorers`:
    `{name: (scorer, class)}`); `"predict"` applies to any model. With
    `blocks`, only scorers that score blocks of users (`scores`) qualify,
    as an ensemble's members must.
    """
    offered: dict[str, tuple[type[Scorer], type]] = getattr(
        model, "_recommend_scorers", dict
    )()
    offered["predict"] = (PredictGrid, object)
    usable: dict[str, type[Scorer]] = {
        name: kind
        for name, (kind, base) in offered.items()
        if kind.applies(model, base)
        and not (blocks and kind.scores is Scorer.scores)
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
