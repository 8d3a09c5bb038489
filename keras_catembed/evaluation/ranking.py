"""Ranking metrics of top-k recommendations, and a most-popular baseline.

`ranking_metrics` asks a recommender (a `RatingModel`, a `MostPopular`
baseline, or any object with the same `recommend` method and `columns`)
for the `k` best items of every user of a test set and scores those lists
against the user's relevant test items.

**Relevance.** A test pair `(user, item)` is relevant when its rating is
at least `relevance_threshold` (default 4 on a 1-5 scale: the items the
user liked), or every test pair when `relevance_threshold=None`. Only
users with at least one relevant test pair are evaluated, and every metric
is the plain mean over those users. Relevance is binary: NDCG gives each
relevant item the gain 1, whatever its rating.

With `R` the user's relevant items, `hits` the number of them among the
`k` recommended, and `rel_i` 1 when the item at rank `i` (from 1) is
relevant, else 0, each user scores:

- `precision`: `hits / k`;
- `recall`: `hits / len(R)`;
- `ndcg`: `DCG / ideal DCG`, where `DCG = sum_i rel_i / log2(i + 1)`
  and the ideal DCG is that of `min(k, len(R))` relevant items first;
- `map` (average precision): `sum_i rel_i * precision@i / min(k, len(R))`,
  1 for a list that is as good as it can be;
- `mrr`: `1 / rank` of the first relevant item, 0 if none is in the list;
- `hit_rate`: 1 if `hits > 0`, else 0;

and `coverage` is the share of the candidate items that appear in at
least one evaluated user's list (catalogue coverage). Relevant items that
the recommender cannot recommend (left out by `exclude` or not among the
`candidates`) still count in `len(R)`.

Precision, recall, NDCG, MAP and MRR are computed by the metrics of
[KerasRS](https://keras.io/keras_rs/) (`keras_rs.metrics`), an optional
dependency: `pip install "keras-catembed[ranking]"`.
"""

import collections.abc
import math
import numbers
from collections.abc import Mapping
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import keras
import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

from keras_catembed import _requests
from keras_catembed.evaluation._ids import check_candidate_ids
from keras_catembed.evaluation._ids import describe
from keras_catembed.evaluation.popularity import MostPopular

__all__ = ["METRICS", "MostPopular", "ranking_metrics"]

# The keys of `ranking_metrics`' result, besides "users".
METRICS = (
    "precision",
    "recall",
    "ndcg",
    "map",
    "mrr",
    "hit_rate",
    "coverage",
)


def _keras_rs_metrics() -> ModuleType:
    try:
        import keras_rs
    except ImportError:
        raise ImportError(
            "Ranking metrics need KerasRS (keras-rs), which is not "
            'installed. Install it with: pip install "keras-catembed[ranking]"'
        ) from None
    metrics: ModuleType = keras_rs.metrics
    return metrics


def ranking_metrics(
    recommender: Any,
    x: Mapping[str, ArrayLike],
    y: ArrayLike | None = None,
    *,
    k: int = 10,
    exclude: Any = None,
    relevance_threshold: float | None = 4.0,
    candidates: ArrayLike | None = None,
    user_column: str | None = None,
    item_column: str | None = None,
) -> dict[str, float]:
    """Precision, recall, NDCG, MAP, MRR, hit rate@k and coverage.

    Every user of `x` with at least one relevant test pair gets the `k`
    items `recommender.recommend` scores best among `candidates`, leaving
    out the user's `exclude` pairs (pass the training pairs, so that no
    known rating is recommended again). The module's description defines
    relevance and each metric.

    Args:
        recommender: A `RatingModel`, a `MostPopular`, or any object with
            their `recommend` method and `columns`.
        x: Dict of arrays, the test pairs: `user_column`, `item_column`
            and, for a model with more columns, those columns (each user's
            value is taken from the user's first row).
        y: Array of the test ratings, one per row of `x`. Required unless
            `relevance_threshold` is `None`.
        k: Positive integer. The length of each recommendation list.
            Defaults to 10.
        exclude: Optional dict with `user_column` and `item_column` arrays:
            the pairs never to recommend, typically the training pairs.
            Defaults to `None` (nothing left out).
        relevance_threshold: Number, or `None`. A test pair is relevant
            when its rating is at least this; `None` makes every test pair
            relevant. Defaults to 4.0 (4 or 5 stars on a 1-5 scale).
        candidates: Optional array of distinct item ids to recommend from;
            `coverage` is measured against them. Defaults to the
            recommender's `candidates` attribute when it has one
            (`MostPopular`), else a model's every item id.
        user_column: String. Defaults to the recommender's first column
            (required with more than two columns).
        item_column: String. Defaults to the recommender's second column
            (required with more than two columns).

    Returns:
        Dict of floats keyed by `METRICS` (`"precision"`, `"recall"`,
        `"ndcg"`, `"map"`, `"mrr"`, `"hit_rate"`, `"coverage"`), and
        `"users"`: the number of users evaluated.

    Raises:
        ImportError: when KerasRS is not installed.
        ValueError: for malformed `x`, `y`, `k` or `relevance_threshold`,
            when no user has a relevant pair, and for whatever the
            recommender's `recommend` rejects (unknown ids, say); nothing
            is computed then.

    Example:

    ```python
    from keras_catembed.evaluation import MostPopular
    from keras_catembed.evaluation import ranking_metrics

    metrics = ranking_metrics(model, x_test, y_test, k=10, exclude=x_train)
    baseline = ranking_metrics(
        MostPopular(x_train, user_column="user_id", item_column="movie_id"),
        x_test,
        y_test,
        k=10,
        exclude=x_train,
        candidates=model_item_ids,
    )
    ```
    """
    keras_rs_metrics = _keras_rs_metrics()
    if not hasattr(recommender, "recommend") or not hasattr(
        recommender, "columns"
    ):
        raise ValueError(
            "`recommender` must have a `recommend` method and `columns`, "
            "like a RatingModel or MostPopular. Received: "
            f"{type(recommender).__name__}"
        )
    user_column, item_column = _requests.check_columns(
        recommender, user_column, item_column
    )
    k = _requests.check_k(k)
    x = _check_x(x, recommender.columns)
    num_rows = len(x[user_column])
    relevant = _relevant_rows(y, relevance_threshold, num_rows)
    candidates = _resolve_candidates(recommender, candidates, item_column)

    users, first_rows = np.unique(x[user_column][relevant], return_index=True)
    if users.size == 0:
        raise ValueError(
            f"No pair of `x` is relevant (rating >= relevance_threshold="
            f"{relevance_threshold}), so there is no user to evaluate. "
            "Lower `relevance_threshold`, or pass None to count every pair"
        )
    rows = np.flatnonzero(relevant)[first_rows]
    inputs = {column: x[column][rows] for column in recommender.columns}
    del inputs[item_column]
    item_ids, _ = recommender.recommend(
        inputs,
        k,
        exclude=exclude,
        candidates=candidates,
        user_column=user_column,
        item_column=item_column,
    )
    item_ids = np.asarray(item_ids)
    if item_ids.shape != (users.size, k):
        raise ValueError(
            f"`recommender.recommend` must return item ids of shape "
            f"{(users.size, k)}. Received shape {item_ids.shape}"
        )

    hits, num_relevant = _hits(
        users,
        x[user_column][relevant],
        x[item_column][relevant],
        item_ids,
    )
    results = {}
    for name, metric_class, limit in (
        ("precision", keras_rs_metrics.PrecisionAtK, None),
        ("recall", keras_rs_metrics.RecallAtK, None),
        ("ndcg", keras_rs_metrics.NDCG, k),
        ("map", keras_rs_metrics.MeanAveragePrecision, k),
        ("mrr", keras_rs_metrics.MeanReciprocalRank, None),
    ):
        labels, scores = _lists(hits, num_relevant, limit)
        metric = metric_class(k=k, shuffle_ties=False, name=name)
        metric.update_state(labels, scores)
        results[name] = float(keras.ops.convert_to_numpy(metric.result()))
    results["hit_rate"] = float(np.mean(hits.any(axis=1)))
    recommended = np.unique(item_ids[item_ids != -1])
    results["coverage"] = float(
        np.isin(candidates, recommended).sum() / candidates.size
    )
    results["users"] = int(users.size)
    return results


def _hits(
    users: NDArray[Any],
    relevant_users: NDArray[Any],
    relevant_items: NDArray[Any],
    item_ids: NDArray[Any],
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Which recommended items are relevant; each user's number of them."""
    order = np.argsort(relevant_users, kind="stable")
    relevant_users = relevant_users[order]
    relevant_items = relevant_items[order]
    starts = np.searchsorted(relevant_users, users, side="left")
    stops = np.searchsorted(relevant_users, users, side="right")
    hits = np.zeros(item_ids.shape, dtype=bool)
    num_relevant = np.zeros(users.size, dtype="int64")
    for row, (start, stop) in enumerate(zip(starts, stops, strict=True)):
        mine = np.unique(relevant_items[start:stop])
        num_relevant[row] = mine.size
        hits[row] = np.isin(item_ids[row], mine) & (item_ids[row] != -1)
    return hits, num_relevant


def _lists(
    hits: NDArray[np.bool_], num_relevant: NDArray[np.int64], limit: int | None
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """One ranked list per user, in the layout `keras_rs.metrics` scores.

    The first `k` places hold the recommendations (labels: relevant or
    not; scores `k, k-1, ..., 1`); after them come the user's relevant
    items that were not recommended (label 1, score 0), at most `limit`
    relevant items in all (all of them when `limit` is `None`), then
    padding (label -1, which the metrics ignore). Cut at `k`, each list is
    the recommendations, while recall, MAP and NDCG see how many relevant
    items there are.
    """
    num_users, k = hits.shape
    missed = num_relevant - hits.sum(axis=1)
    if limit is not None:
        missed = np.minimum(num_relevant, limit) - hits.sum(axis=1)
    width = k + max(int(missed.max()), 0)
    labels = np.full((num_users, width), -1.0, dtype="float32")
    labels[:, :k] = hits
    extra = np.arange(width - k)[None, :] < missed[:, None]
    labels[:, k:][extra] = 1.0
    scores = np.zeros((num_users, width), dtype="float32")
    scores[:, :k] = np.arange(k, 0, -1, dtype="float32")
    return labels, scores


def _check_x(x: object, columns: Sequence[str]) -> dict[str, NDArray[Any]]:
    if not isinstance(x, collections.abc.Mapping):
        raise ValueError(
            f"`x` must be a dict of id arrays with the columns "
            f"{list(columns)}. Received: {describe(x)}"
        )
    missing = [c for c in columns if c not in x]
    if missing:
        raise ValueError(
            f"`x` must hold the columns {list(columns)}. Missing: {missing}"
        )
    ids = {c: _requests.as_ids(f"x[{c!r}]", x[c]) for c in columns}
    lengths = {c: len(v) for c, v in ids.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"The columns of `x` must have one length. Received {lengths}"
        )
    if not any(lengths.values()):
        raise ValueError("`x` must hold at least one pair. Received 0 rows")
    return ids


def _relevant_rows(
    y: ArrayLike | None, relevance_threshold: object, num_rows: int
) -> NDArray[np.bool_]:
    """A boolean mask of the relevant rows of `x`."""
    if relevance_threshold is None:
        return np.ones(num_rows, dtype=bool)
    if (
        isinstance(relevance_threshold, bool)
        or not isinstance(relevance_threshold, numbers.Real)
        or not math.isfinite(relevance_threshold)
    ):
        raise ValueError(
            "`relevance_threshold` must be a finite number or None. "
            f"Received: relevance_threshold={relevance_threshold!r}"
        )
    if y is None:
        raise ValueError(
            "`y` (the test ratings) is needed to tell relevant pairs with "
            f"relevance_threshold={relevance_threshold}. Pass `y`, or "
            "relevance_threshold=None to count every test pair as relevant"
        )
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.shape != (num_rows,):
        raise ValueError(
            f"`y` must hold one rating per row of `x`: shape ({num_rows},). "
            f"Received shape {y.shape}"
        )
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
        raise ValueError(
            f"`y` must hold numeric ratings. Received dtype {y.dtype}"
        )
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ValueError(
            f"`y` must hold finite ratings. Received {y[bad[0]]} at "
            f"position {bad[0]}"
        )
    return y >= relevance_threshold


def _resolve_candidates(
    recommender: Any, candidates: ArrayLike | None, item_column: str
) -> NDArray[Any]:
    if candidates is not None:
        return check_candidate_ids(candidates)
    own = getattr(recommender, "candidates", None)
    if own is not None:
        return check_candidate_ids(own)
    if _requests.item_layers(recommender, item_column):
        return _requests.check_candidates(recommender, None, item_column)
    raise ValueError(
        f"Pass `candidates`: {type(recommender).__name__} names no "
        "candidate items of its own"
    )
