"""keras_catembed.evaluation: ranking metrics and the most-popular baseline."""

import math
import sys

import numpy as np
import pytest

import keras_catembed
from keras_catembed.evaluation import METRICS
from keras_catembed.evaluation import MostPopular
from keras_catembed.evaluation import ranking_metrics

pytest.importorskip("keras_rs")

# 1 / log2(3): the discount of rank 2.
D2 = 1 / math.log2(3)

# Training pairs: item 0 rated 3 times, items 1 and 2 twice, item 3 once,
# items 4 and 5 never.
TRAIN = {
    "user_id": np.array([0, 0, 1, 1, 2, 2, 2, 2]),
    "movie_id": np.array([0, 1, 0, 2, 0, 1, 2, 3]),
}
# Test pairs and ratings. User 3 has no training pair.
TEST = {
    "user_id": np.array([0, 0, 1, 1, 2, 3]),
    "movie_id": np.array([3, 5, 4, 5, 4, 0]),
}
TEST_RATINGS = np.array([5, 3, 4, 5, 2, 4])


def baseline():
    return MostPopular(
        TRAIN,
        user_column="user_id",
        item_column="movie_id",
        candidates=np.arange(6),
    )


def test_most_popular_recommends_unrated_items_by_count():
    items, counts = baseline().recommend([0, 1, 2, 3], k=2, exclude=TRAIN)
    # Ranked 0, 1, 2, 3, 4, 5 (ties by id); each user's rated ones left out.
    np.testing.assert_array_equal(items, [[2, 3], [1, 3], [4, 5], [0, 1]])
    np.testing.assert_array_equal(counts, [[2, 1], [2, 1], [0, 0], [3, 2]])


def test_most_popular_pads_when_candidates_run_out():
    items, counts = baseline().recommend(
        [2], k=3, exclude=TRAIN, candidates=[0, 1, 2, 3, 4]
    )
    np.testing.assert_array_equal(items, [[4, -1, -1]])
    assert counts[0, 0] == 0 and np.isnan(counts[0, 1:]).all()


def test_most_popular_defaults_to_the_training_items():
    model = MostPopular(TRAIN, user_column="user_id", item_column="movie_id")
    np.testing.assert_array_equal(model.candidates, [0, 1, 2, 3])
    items, _ = model.recommend([5], k=4)
    np.testing.assert_array_equal(items, [[0, 1, 2, 3]])


def test_metrics_of_most_popular_by_hand():
    # Lists (k=2): user 0 [2, 3], user 1 [1, 3], user 3 [0, 1]; user 2 has
    # no rating >= 4. Relevant: user 0 {3}, user 1 {4, 5}, user 3 {0}.
    metrics = ranking_metrics(
        baseline(), TEST, TEST_RATINGS, k=2, exclude=TRAIN
    )
    expected = {
        "precision": (1 / 2 + 0 + 1 / 2) / 3,
        "recall": (1 + 0 + 1) / 3,
        "ndcg": (D2 + 0 + 1) / 3,
        "map": (1 / 2 + 0 + 1) / 3,
        "mrr": (1 / 2 + 0 + 1) / 3,
        "hit_rate": 2 / 3,
        "coverage": 4 / 6,  # Items 0, 1, 2, 3.
    }
    assert set(metrics) == {*METRICS, "users"}
    assert metrics["users"] == 3
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    assert metrics["ndcg"] == pytest.approx(0.5436432512, abs=1e-6)


def test_every_test_pair_relevant_without_a_threshold():
    # Relevant: user 0 {3, 5}, user 1 {4, 5}, user 2 {4}, user 3 {0}.
    metrics = ranking_metrics(
        baseline(),
        TEST,
        k=2,
        exclude=TRAIN,
        relevance_threshold=None,
    )
    expected = {
        "precision": 3 / 8,
        "recall": (1 / 2 + 0 + 1 + 1) / 4,
        "ndcg": (D2 / (1 + D2) + 0 + 1 + 1) / 4,
        "map": (1 / 4 + 0 + 1 + 1) / 4,
        "mrr": (1 / 2 + 0 + 1 + 1) / 4,
        "hit_rate": 3 / 4,
        "coverage": 1.0,
        "users": 4,
    }
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    assert metrics["ndcg"] == pytest.approx(0.5967132018, abs=1e-6)


class FixedLists:
    """A recommender that returns given lists, to check the arithmetic."""

    columns = ("user", "item")
    candidates = np.arange(6)

    def __init__(self, lists):
        self.lists = lists
        self.calls = []

    def recommend(self, users, k, **kwargs):
        self.calls.append((users, k, kwargs))
        users = users["user"]
        return np.array([self.lists[u] for u in users]), None


def test_metrics_of_fixed_lists_by_hand():
    recommender = FixedLists(
        {0: [0, 1, 2], 1: [3, 4, 0], 2: [2, 0, -1], 4: [0, 1, 2]}
    )
    x = {
        "user": np.array([0, 0, 1, 2, 2, 2, 2, 3, 4, 4]),
        "item": np.array([1, 4, 3, 2, 3, 4, 5, 1, 5, 0]),
    }
    y = np.array([4, 5, 4, 5, 4, 4, 5, 1, 4, 3])
    metrics = ranking_metrics(recommender, x, y, k=3)
    # Relevant: user 0 {1, 4}, user 1 {3}, user 2 {2, 3, 4, 5} (4 > k),
    # user 4 {5}; user 3 has none and is not evaluated.
    expected = {
        "precision": (1 / 3 + 1 / 3 + 1 / 3 + 0) / 4,
        "recall": (1 / 2 + 1 + 1 / 4 + 0) / 4,
        "ndcg": (D2 / (1 + D2) + 1 + 1 / (1 + D2 + 1 / 2) + 0) / 4,
        # Average precision divides by min(k, |R|): 2, 1, 3.
        "map": ((1 / 2) / 2 + 1 + 1 / 3 + 0) / 4,
        "mrr": (1 / 2 + 1 + 1 + 0) / 4,
        "hit_rate": 3 / 4,
        "coverage": 5 / 6,  # Items 0-4; -1 is no item.
        "users": 4,
    }
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    assert metrics["ndcg"] == pytest.approx(0.4640330, abs=1e-6)
    assert metrics["map"] == pytest.approx(0.3958333, abs=1e-6)
    ((users, k, kwargs),) = recommender.calls
    np.testing.assert_array_equal(users["user"], [0, 1, 2, 4])
    assert k == 3
    np.testing.assert_array_equal(kwargs["candidates"], np.arange(6))


def reference(lists, relevant, k):
    """Textbook per-user metrics, averaged: the NumPy reference."""
    totals = dict.fromkeys(("precision", "recall", "ndcg", "map", "mrr"), 0.0)
    for items, wanted in zip(lists, relevant, strict=True):
        rel = np.array([item in wanted for item in items], dtype=float)
        discounts = 1 / np.log2(np.arange(2, k + 2))
        ideal = discounts[: min(k, len(wanted))].sum()
        precision_at = np.cumsum(rel) / np.arange(1, k + 1)
        totals["precision"] += rel.sum() / k
        totals["recall"] += rel.sum() / len(wanted)
        totals["ndcg"] += (rel * discounts).sum() / ideal
        totals["map"] += (precision_at * rel).sum() / min(k, len(wanted))
        first = np.flatnonzero(rel)
        totals["mrr"] += 1 / (first[0] + 1) if first.size else 0.0
    return {name: total / len(lists) for name, total in totals.items()}


def test_model_metrics_match_a_numpy_reference():
    model = keras_catembed.RatingModel(
        {"user_id": 12, "movie_id": 20}, hidden_units=[8]
    )
    rng = np.random.default_rng(3)
    pairs = rng.choice(12 * 20, 120, replace=False)
    users, items = np.divmod(pairs, 20)
    ratings = rng.integers(1, 6, 120)
    train = {"user_id": users[:80], "movie_id": items[:80]}
    test = {"user_id": users[80:], "movie_id": items[80:]}
    y = ratings[80:]
    k = 5
    metrics = ranking_metrics(model, test, y, k=k, exclude=train)

    evaluated = np.unique(test["user_id"][y >= 4])
    lists, _ = model.recommend(evaluated, k=k, exclude=train)
    relevant = [
        set(test["movie_id"][(test["user_id"] == u) & (y >= 4)])
        for u in evaluated
    ]
    for items_of_user, u in zip(lists, evaluated, strict=True):
        seen = set(train["movie_id"][train["user_id"] == u])
        assert not seen & set(items_of_user)
    expected = reference(lists, relevant, k)
    assert metrics["users"] == evaluated.size
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    hits = [
        bool(set(row) & wanted)
        for row, wanted in zip(lists, relevant, strict=True)
    ]
    assert metrics["hit_rate"] == pytest.approx(np.mean(hits))
    assert metrics["coverage"] == pytest.approx(np.unique(lists).size / 20)


def test_a_model_with_user_features_gets_each_users_features():
    model = keras_catembed.RatingModel(
        {"user_id": 4, "movie_id": 6, "age": 3}, hidden_units=[4]
    )
    x = {
        "user_id": np.array([0, 0, 2]),
        "movie_id": np.array([1, 2, 3]),
        "age": np.array([2, 2, 1]),
    }
    metrics = ranking_metrics(
        model,
        x,
        np.array([5, 4, 4]),
        k=2,
        user_column="user_id",
        item_column="movie_id",
    )
    lists, _ = model.recommend(
        {"user_id": [0, 2], "age": [2, 1]},
        k=2,
        user_column="user_id",
        item_column="movie_id",
    )
    expected = reference(lists, [{1, 2}, {3}], 2)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y": None}, r"`y` \(the test ratings\) is needed"),
        ({"y": np.array([5, 4])}, r"one rating per row of `x`: shape \(6,\)"),
        ({"y": np.array(["a"] * 6)}, "numeric ratings"),
        (
            {"y": np.array([5, 4, np.nan, 1, 2, 3])},
            "finite ratings. Received nan at position 2",
        ),
        ({"relevance_threshold": "4"}, "relevance_threshold='4'"),
        ({"relevance_threshold": math.inf}, "finite number or None"),
        ({"relevance_threshold": 6}, "No pair of `x` is relevant"),
        ({"k": 0}, "`k` must be a positive integer. Received: k=0"),
        ({"k": 7}, "at most the number of candidates"),
        ({"x": {"user_id": [0]}}, r"Missing: \['movie_id'\]"),
        ({"x": [0, 1]}, "`x` must be a dict"),
        ({"x": {"user_id": [0, 1], "movie_id": [0]}}, "one length"),
        ({"candidates": [0, 0, 1]}, "must not repeat an id"),
        ({"candidates": [0.5, 1.0]}, "integer ids. Received 0.5"),
        ({"exclude": [1, 2]}, "`exclude` must be a dict"),
        ({"user_column": "age"}, "`user_column` must be one of"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    arguments = {
        "x": TEST,
        "y": TEST_RATINGS,
        "k": 2,
        "exclude": TRAIN,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        ranking_metrics(baseline(), **arguments)


def test_bad_model_ids_are_rejected_before_predicting():
    model = keras_catembed.RatingModel(
        {"user_id": 3, "movie_id": 4}, hidden_units=[4]
    )
    x = {"user_id": np.array([0, 7]), "movie_id": np.array([1, 2])}
    with pytest.raises(ValueError, match="7"):
        ranking_metrics(model, x, np.array([5, 5]), k=2)


def test_a_recommender_must_have_recommend_and_columns():
    with pytest.raises(ValueError, match="`recommender` must have"):
        ranking_metrics(object(), TEST, TEST_RATINGS)


def test_most_popular_rejects_bad_arguments():
    with pytest.raises(
        ValueError,
        match=r"column 'movie_id'. Received the columns \['user_id'\]",
    ):
        MostPopular({"user_id": [0]}, user_column="u", item_column="movie_id")
    with pytest.raises(ValueError, match="must differ"):
        MostPopular(TRAIN, user_column="movie_id", item_column="movie_id")
    with pytest.raises(ValueError, match=r"x\['movie_id'\].*integer ids"):
        MostPopular(
            {"movie_id": ["a"]}, user_column="u", item_column="movie_id"
        )
    with pytest.raises(ValueError, match="at most the number of candidates"):
        baseline().recommend([0], k=7)


def test_missing_keras_rs_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_rs", None)
    with pytest.raises(ImportError, match=r"keras-catembed\[ranking\]"):
        ranking_metrics(baseline(), TEST, TEST_RATINGS, k=2)
    # Without KerasRS the baseline itself still works.
    items, _ = baseline().recommend([3], k=1)
    np.testing.assert_array_equal(items, [[0]])


def test_evaluation_is_a_public_module():
    from keras_catembed import evaluation

    assert evaluation.ranking_metrics is ranking_metrics
    assert evaluation.MostPopular is MostPopular
