"""`MostPopular`: the most-rated-items baseline of the ranking metrics."""

import collections.abc
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed import _recommend
from keras_catembed import _requests
from keras_catembed.evaluation._ids import check_candidate_ids
from keras_catembed.evaluation._ids import describe
from keras_catembed.evaluation._ids import integer_ids

__all__ = ["MostPopular"]


class MostPopular:
    """Recommends the items rated most often in the training pairs.

    The baseline every recommender should beat: each user gets the most
    rated training items that the user has not rated yet (the `exclude`
    pairs), ties broken by the smaller item id. It has `RatingModel`'s
    `recommend` method and `columns`, so `ranking_metrics` takes it too.

    Args:
        x: Dict of arrays, the training pairs: `user_column` and
            `item_column` (other keys are ignored).
        user_column: String. The users' column of `x`.
        item_column: String. The items' column of `x`.
        candidates: Optional array of distinct item ids to recommend from,
            e.g. every item of the catalogue. Defaults to the items of `x`.

    Example:

    ```python
    baseline = MostPopular(
        x_train, user_column="user_id", item_column="movie_id"
    )
    items, counts = baseline.recommend([0, 1], k=10, exclude=x_train)
    ```
    """

    def __init__(
        self,
        x: Mapping[str, ArrayLike],
        *,
        user_column: str,
        item_column: str,
        candidates: ArrayLike | None = None,
    ) -> None:
        for name, value in (
            ("user_column", user_column),
            ("item_column", item_column),
        ):
            if not isinstance(value, str):
                raise ValueError(
                    f"`{name}` must be a column name (a string). Received: "
                    f"{name}={value!r}"
                )
        if user_column == item_column:
            raise ValueError(
                "`user_column` and `item_column` must differ. Received "
                f"{user_column!r} for both"
            )
        if not isinstance(x, collections.abc.Mapping):
            raise ValueError(
                f"`x` must be a dict holding the column {item_column!r}. "
                f"Received: {describe(x)}"
            )
        if item_column not in x:
            raise ValueError(
                f"`x` must hold the column {item_column!r}. Received the "
                f"columns {sorted(x)}"
            )
        items = integer_ids(f"x[{item_column!r}]", x[item_column])
        self.columns = (user_column, item_column)
        self._items, self._counts = np.unique(items, return_counts=True)
        if candidates is None:
            if self._items.size == 0:
                raise ValueError(
                    f"`x` holds no pairs; pass `candidates`. Received "
                    f"x[{item_column!r}] of length 0"
                )
            candidates = self._items
        self.candidates = check_candidate_ids(candidates)

    def _count(self, items: NDArray[Any]) -> NDArray[np.int64]:
        """The number of training pairs of each of `items` (0 if unseen)."""
        where = np.searchsorted(self._items, items)
        found = where < self._items.size
        found[found] = self._items[where[found]] == items[found]
        counts = np.zeros(items.shape, dtype="int64")
        counts[found] = self._counts[where[found]]
        return counts

    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude: Mapping[str, ArrayLike] | None = None,
        candidates: ArrayLike | None = None,
        user_column: str | None = None,
        item_column: str | None = None,
    ) -> _recommend.Ranked:
        """Returns the `k` most rated items per user, not in `exclude`.

        Args:
            users: Array of user ids, or a dict holding `user_column`.
            k: Positive integer. How many items per user. Defaults to 10.
            exclude: Optional dict with `user_column` and `item_column`
                arrays: pairs never to recommend (typically the training
                pairs). Defaults to `None`.
            candidates: Optional array of distinct item ids to choose
                from. Defaults to the constructor's `candidates`.
            user_column: String. Defaults to the constructor's.
            item_column: String. Defaults to the constructor's.

        Returns:
            A tuple `(item_ids, counts)` of NumPy arrays of shape
            `(len(users), k)`, most rated first; `counts` (float32) holds
            the number of training pairs of each item. Where fewer than
            `k` candidates remain for a user, the last places hold the id
            `-1` and NaN.
        """
        request = _requests.check_request(
            self,
            users,
            k,
            exclude=exclude,
            candidates=candidates,
            user_column=user_column,
            item_column=item_column,
            read_users=_users,
            read_candidates=_candidates,
        )
        user_column, _, k, columns, candidates, excluded = request
        users = columns[user_column]
        counts = self._count(candidates)
        ranked = np.lexsort((candidates, -counts))
        ranked_items, ranked_counts = candidates[ranked], counts[ranked]
        item_ids = np.full((users.size, k), -1, dtype=candidates.dtype)
        scores = np.full((users.size, k), np.nan, dtype="float32")
        for row, user in enumerate(users.tolist()):
            seen = excluded.get(int(user), ())
            head = slice(0, k + len(seen))
            keep = ~np.isin(ranked_items[head], seen)
            chosen = ranked_items[head][keep][:k]
            item_ids[row, : chosen.size] = chosen
            scores[row, : chosen.size] = ranked_counts[head][keep][:k]
        return item_ids, scores


def _users(
    recommender: Any,
    users: Any,
    exclude: Any,
    user_column: str,
    item_column: str,
) -> tuple[_requests.Users, Any]:
    """The ids of `user_column` (other columns of a dict are ignored)."""
    if not isinstance(users, collections.abc.Mapping):
        users = {user_column: users}
    if user_column not in users:
        raise ValueError(
            f"`users` must hold the column {user_column!r}. Received "
            f"the columns {sorted(users)}"
        )
    ids = _requests.as_ids(f"users[{user_column!r}]", users[user_column])
    return {user_column: ids}, exclude


def _candidates(
    recommender: MostPopular, candidates: ArrayLike | None, item_column: str
) -> NDArray[np.int64]:
    """`candidates`, or the constructor's."""
    if candidates is None:
        return recommender.candidates
    return check_candidate_ids(candidates)
