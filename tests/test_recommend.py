"""RatingModel.recommend: top-N items per user."""

import numpy as np
import pytest

import keras_catembed

USERS, MOVIES = 6, 9


def make_model(**columns):
    columns = columns or {"user_id": USERS, "movie_id": MOVIES}
    return keras_catembed.RatingModel(columns, hidden_units=[8])


def all_scores(model, users, movies, extra=None):
    """Brute force: the model's prediction for every (user, movie)."""
    x = {
        "user_id": np.repeat(users, len(movies)),
        "movie_id": np.tile(movies, len(users)),
    }
    for column, values in (extra or {}).items():
        x[column] = np.repeat(values, len(movies))
    return model.predict(x, verbose=0).reshape(len(users), len(movies))


def test_recommend_returns_the_best_scored_items_first():
    model = make_model()
    users = np.array([0, 3, 5])
    items, scores = model.recommend(users, k=4)
    assert items.shape == scores.shape == (3, 4)
    expected = all_scores(model, users, np.arange(MOVIES))
    for row in range(3):
        order = np.argsort(-expected[row], kind="stable")[:4]
        np.testing.assert_array_equal(items[row], order)
        np.testing.assert_allclose(scores[row], expected[row, order], rtol=1e-5)
        assert np.all(np.diff(scores[row]) <= 0)


def test_exclude_leaves_out_the_rated_pairs():
    model = make_model()
    users = np.array([1, 2])
    rated = {"user_id": np.array([1, 1, 2]), "movie_id": np.array([4, 7, 0])}
    items, _ = model.recommend(users, k=MOVIES - 2, exclude=rated)
    assert not {4, 7} & set(items[0].tolist())
    assert 0 not in items[1].tolist()
    # User 1 has only MOVIES - 2 items left: all of them, best first.
    expected = all_scores(model, users, np.arange(MOVIES))
    left = [
        m for m in np.argsort(-expected[0], kind="stable") if m not in (4, 7)
    ]
    np.testing.assert_array_equal(items[0], left)
    # User 2 has one more left than asked for: the worst is cut.
    assert len(set(items[1].tolist())) == MOVIES - 2


def test_fewer_candidates_left_than_k_are_padded():
    model = make_model()
    rated = {
        "user_id": np.zeros(MOVIES - 1, "int32"),
        "movie_id": np.arange(1, MOVIES),
    }
    items, scores = model.recommend([0], k=3, exclude=rated)
    assert items[0, 0] == 0 and np.isfinite(scores[0, 0])
    np.testing.assert_array_equal(items[0, 1:], [-1, -1])
    assert np.all(np.isnan(scores[0, 1:]))


def test_candidates_restrict_the_items():
    model = make_model()
    candidates = np.array([8, 2, 5])
    items, scores = model.recommend([4], k=3, candidates=candidates)
    assert set(items[0].tolist()) == {8, 2, 5}
    expected = all_scores(model, np.array([4]), candidates)[0]
    np.testing.assert_allclose(np.sort(scores[0]), np.sort(expected), rtol=1e-5)


def test_raw_id_vocabularies_return_raw_ids():
    model = keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(vocabulary=[10, 20, 30]),
            "movie_id": keras_catembed.EntityEmbedding(
                vocabulary=[101, 205, 309, 412]
            ),
        },
        hidden_units=[4],
    )
    items, _ = model.recommend([20, 30], k=4)
    for row in items:
        assert sorted(row.tolist()) == [101, 205, 309, 412]


def test_wider_models_take_the_other_columns_per_user():
    model = make_model(user_id=USERS, movie_id=MOVIES, age=3)
    with pytest.raises(ValueError, match="`user_column` and `item_column`"):
        model.recommend([0])
    with pytest.raises(ValueError, match=r"Missing: \['age'\]"):
        model.recommend([0], user_column="user_id", item_column="movie_id")
    users = {"user_id": np.array([0, 1]), "age": np.array([2, 0])}
    items, scores = model.recommend(
        users, k=MOVIES, user_column="user_id", item_column="movie_id"
    )
    expected = all_scores(
        model, users["user_id"], np.arange(MOVIES), {"age": users["age"]}
    )
    for row in range(2):
        np.testing.assert_allclose(
            scores[row], np.sort(expected[row])[::-1], rtol=1e-5
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, r"`k` must be a positive integer. Received: k=0"),
        ({"k": 2.0}, r"`k` must be a positive integer"),
        ({"k": MOVIES + 1}, r"`k` must be at most the number of candidates"),
        ({"user_column": "zip"}, r"`user_column` must be one of"),
        ({"item_column": "user_id"}, r"must differ"),
        ({"candidates": [1, 1]}, r"must not repeat"),
        ({"exclude": [(0, 1)]}, r"`exclude` must be a dict"),
        ({"exclude": {"user_id": [0]}}, r"Missing: \['movie_id'\]"),
        (
            {"exclude": {"user_id": [0], "movie_id": [2.5]}},
            r"`exclude\['movie_id'\]` received the non-integer id 2.5",
        ),
        (
            {"exclude": {"user_id": [0.5], "movie_id": [2]}},
            r"`exclude\['user_id'\]` received the non-integer id 0.5",
        ),
        ({"users": []}, r"`users` must hold at least one user"),
        ({"users": {"user_id": np.array([], "int32")}}, r"at least one user"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, match):
    kwargs = {"users": [0], "k": 2, **kwargs}
    model = make_model()
    one = {"user_id": np.array([0]), "movie_id": np.array([1])}
    expected = model.predict(one, verbose=0)
    with pytest.raises(ValueError, match=match):
        model.recommend(**kwargs)
    # The model is left usable (on JAX, a failed compiled call was not).
    np.testing.assert_array_equal(model.predict(one, verbose=0), expected)
    assert model.recommend([0], k=2)[0].shape == (1, 2)


def test_unknown_ids_are_rejected_before_scoring():
    model = make_model()
    with pytest.raises(ValueError, match="user_id"):
        model.recommend([USERS + 4], k=2)
    with pytest.raises(ValueError, match="movie_id"):
        model.recommend([0], k=1, candidates=[MOVIES])
