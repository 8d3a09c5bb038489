"""`recommend` of `RatingEnsemble` and `ItemAutoencoder`: exact top-N."""

import keras
import numpy as np
import pytest

from keras_catembed import ItemAutoencoder
from keras_catembed import RatingEnsemble
from keras_catembed import RatingModel
from keras_catembed import _grid
from keras_catembed import _member_grids
from keras_catembed import _recommend

USERS, MOVIES = 9, 12
COLUMNS = ("user_id", "movie_id")


def ratings(n=45, seed=0):
    rng = np.random.default_rng(seed)
    pairs = rng.permutation(USERS * MOVIES)[:n]
    x = {
        "user_id": (pairs // MOVIES).astype("int32"),
        "movie_id": (pairs % MOVIES).astype("int32"),
    }
    return x, rng.integers(1, 6, n).astype("float32")


def trained_autoencoder(x, y, **kwargs):
    model = ItemAutoencoder(
        {"user_id": USERS, "movie_id": MOVIES}, hidden_units=5, **kwargs
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    return model


def trained_rating_model(x, y, **kwargs):
    model = RatingModel({"user_id": USERS, "movie_id": MOVIES}, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    if model.implicit:
        model.adapt(x, y)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return model


def trained_blend(x, y, weights):
    """An implicit-feedback model and an autoencoder, clipped to 1..5."""
    members = [
        trained_rating_model(x, y, implicit=True, rating_range=(1, 5)),
        trained_autoencoder(x, y),
    ]
    return RatingEnsemble(members, weights=weights, rating_range=(1, 5))


def brute_force(model, users, k, exclude=None, candidates=None, swapped=False):
    """The top `k` by scoring every (user, candidate) row with `predict`.

    `swapped`: the "users" are movies, the candidates users.
    """
    size = USERS if swapped else MOVIES
    candidates = np.arange(size) if candidates is None else candidates
    asked, offered = ("movie_id", "user_id") if swapped else COLUMNS
    rows = {
        asked: np.repeat(users, candidates.size).astype("int32"),
        offered: np.tile(candidates, len(users)).astype("int32"),
    }
    scores = model.predict(rows, verbose=0).reshape(len(users), -1)
    if exclude is not None:
        pairs = (exclude["user_id"].tolist(), exclude["movie_id"].tolist())
        seen = set(zip(*pairs, strict=True))
        for i, user in enumerate(users):
            for j, item in enumerate(candidates):
                if (int(user), int(item)) in seen:
                    scores[i, j] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, order, axis=1)
    # Fewer than `k` left: id -1 and a NaN score.
    left = np.isfinite(top)
    return np.where(left, candidates[order], -1), np.where(left, top, np.nan)


def assert_same_ranking(got, expected):
    (items, scores), (want_items, want_scores) = got, expected
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    # Ties aside, the same items in the same places.
    for row in range(items.shape[0]):
        distinct = np.abs(np.diff(want_scores[row])) > 1e-4
        keep = np.concatenate([[True], distinct]) & np.concatenate(
            [distinct, [True]]
        )
        np.testing.assert_array_equal(items[row][keep], want_items[row][keep])


def test_an_autoencoder_recommends_what_predict_scores_highest():
    x, y = ratings()
    model = trained_autoencoder(x, y, rating_range=(1, 5))
    users = np.arange(USERS)
    # Unknown users and items score the mean: user 8 rated nothing.
    held = {k: v[x["user_id"] != 8] for k, v in x.items()}
    model.adapt(held, y[x["user_id"] != 8])
    got = model.recommend(users, k=4, exclude=x)
    assert_same_ranking(got, brute_force(model, users, 4, exclude=x))
    items, scores = got
    assert items.shape == (USERS, 4) and scores.dtype == np.float32
    mean = float(keras.ops.convert_to_numpy(model.mean_rating))
    np.testing.assert_allclose(scores[8], mean, rtol=1e-6)
    # The grid, not `predict`, scored them.
    assert _recommend.scorer_kind(model) is _member_grids.AutoencoderGrid


def test_a_mixed_precision_autoencoder_recommends_through_predict():
    x, y = ratings()
    policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        model = trained_autoencoder(x, y, rating_range=(1, 5))
    finally:
        keras.config.set_dtype_policy(policy)
    # `call` rounds each rating to bfloat16, which the grid would not.
    assert _recommend.scorer_kind(model) is _recommend.PredictGrid
    users = np.arange(USERS)
    got = model.recommend(users, k=3, exclude=x)
    assert_same_ranking(got, brute_force(model, users, 3, exclude=x))


def test_an_ensemble_recommends_the_top_of_its_blended_predictions(
    monkeypatch,
):
    # Small blocks: several blocks of users and of encoded items.
    monkeypatch.setattr(_member_grids, "ENCODE_BLOCK", 5)
    monkeypatch.setattr(_recommend.Scorer, "rows_per_call", 12)
    monkeypatch.setattr(_grid.VectorGrid, "rows_per_call", 18)
    x, y = ratings()
    ensemble = trained_blend(x, y, weights=[0.7, 0.3])
    users = np.array([3, 0, 7])
    candidates = np.array([11, 2, 5, 8, 0, 6])
    got = ensemble.recommend(users, k=3, exclude=x, candidates=candidates)
    expected = brute_force(ensemble, users, 3, x, candidates)
    assert_same_ranking(got, expected)
    # The members' grids and the predict path agree.
    through_predict = _recommend.recommend(
        ensemble, users, 3, exclude=x, candidates=candidates, path="predict"
    )
    assert_same_ranking(got, through_predict)
    assert _recommend.scorer_kind(ensemble) is _member_grids.EnsembleGrid
    # The columns swapped: the users who would rate each movie highest.
    movies = np.array([4, 9, 0])
    got = ensemble.recommend(
        movies, k=4, user_column="movie_id", item_column="user_id"
    )
    assert_same_ranking(got, brute_force(ensemble, movies, 4, swapped=True))


def test_a_failure_mid_scoring_leaves_the_ensemble_usable(monkeypatch):
    monkeypatch.setattr(_recommend.Scorer, "rows_per_call", 3)
    monkeypatch.setattr(_grid.VectorGrid, "rows_per_call", 3)
    x, y = ratings()
    ensemble = trained_blend(x, y, weights=[0.6, 0.4])
    users = np.arange(USERS)
    expected = brute_force(ensemble, users, 3, exclude=x)
    assert_same_ranking(ensemble.recommend(users, k=3, exclude=x), expected)
    before = ensemble.predict(x, verbose=0)
    scores = _member_grids.AutoencoderGrid.scores
    calls = []

    def fails_on_the_second_block(self, start, stop, seen):
        calls.append(start)
        if len(calls) == 2:
            raise RuntimeError("scoring failed")
        return scores(self, start, stop, seen)

    monkeypatch.setattr(
        _member_grids.AutoencoderGrid, "scores", fails_on_the_second_block
    )
    with pytest.raises(RuntimeError, match="scoring failed"):
        ensemble.recommend(users, k=3, exclude=x)
    assert len(calls) == 2  # One block was scored before the failure.
    # No member keeps a recommend function of the failed call.
    for part in (ensemble, *ensemble.members):
        assert "_recommend_functions" not in part.__dict__
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), before)
    monkeypatch.setattr(_member_grids.AutoencoderGrid, "scores", scores)
    assert_same_ranking(ensemble.recommend(users, k=3, exclude=x), expected)


def test_default_candidates_are_the_ids_every_member_holds():
    x, y = ratings()
    small = {k: v[x["movie_id"] < 9] for k, v in x.items()}
    autoencoder = ItemAutoencoder(
        {"user_id": USERS, "movie_id": 9}, hidden_units=5
    )
    autoencoder.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    autoencoder.fit(small, y[x["movie_id"] < 9], epochs=2, verbose=0)
    ensemble = RatingEnsemble(
        [trained_rating_model(x, y), autoencoder], weights=[0.5, 0.5]
    )
    users = np.array([1, 4])
    items, _ = ensemble.recommend(users, k=9, exclude=small)
    # Movies 9 to 11 are beyond the autoencoder's table: never offered.
    assert items.max() < 9
    assert_same_ranking(
        (items, _),
        brute_force(ensemble, users, 9, small, np.arange(9)),
    )
    # Asked for by name, they are refused with the member's error.
    with pytest.raises(ValueError, match=r"unknown id 11 .*\[0, 8\]"):
        ensemble.recommend(users, k=2, candidates=[11, 0])


def test_a_nested_ensemble_and_a_plain_keras_member_recommend_exactly():
    x, y = ratings()
    inputs = {
        "user_id": keras.Input((), dtype="int32", name="user_id"),
        "movie_id": keras.Input((), dtype="int32", name="movie_id"),
    }
    table = keras.layers.Embedding(USERS * MOVIES, 1)
    pair = inputs["user_id"] * MOVIES + inputs["movie_id"]
    plain = keras.Model(inputs, 3.0 + table(pair))
    # A plain Keras model names its columns so an ensemble knows them.
    plain.columns = ["user_id", "movie_id"]
    inner = RatingEnsemble([trained_autoencoder(x, y), plain])
    ensemble = RatingEnsemble([trained_rating_model(x, y), inner])
    users = np.arange(USERS)
    got = ensemble.recommend(users, k=5)
    assert_same_ranking(got, brute_force(ensemble, users, 5))
    # Candidates come from the first member with a table of movie ids.
    alone = RatingEnsemble([plain])
    with pytest.raises(ValueError, match=r"`candidates` must be given"):
        alone.recommend(users, k=2)
    items, _ = alone.recommend(users, k=2, candidates=np.arange(4))
    assert set(np.unique(items)) <= {0, 1, 2, 3}


def test_bad_requests_raise_before_scoring_and_change_nothing():
    x, y = ratings()
    empty = ItemAutoencoder({"user_id": USERS, "movie_id": MOVIES})
    model = trained_rating_model(x, y)
    ensemble = RatingEnsemble([model, empty])
    with pytest.raises(ValueError, match=r"`recommend` needs the model's"):
        ensemble.recommend([0, 1], k=2)
    with pytest.raises(ValueError, match=r"`recommend` needs the model's"):
        empty.recommend([0, 1], k=2)
    ready = RatingEnsemble([model, trained_autoencoder(x, y)])
    rows = {"user_id": np.array([0, 1]), "movie_id": np.array([2, 3])}
    before = ready.predict(rows, verbose=0)
    with pytest.raises(ValueError, match=r"user_id.*99|99.*user_id"):
        ready.recommend([0, 99], k=2)
    with pytest.raises(ValueError, match=r"movie_id.*-4|-4.*movie_id"):
        ready.recommend([0], k=1, candidates=[1, -4])
    with pytest.raises(ValueError, match=r"`k` must be at most"):
        ready.recommend([0], k=MOVIES + 1)
    with pytest.raises(ValueError, match=r"`item_column` must be one of"):
        ready.recommend([0], k=1, item_column="genre")
    np.testing.assert_array_equal(ready.predict(rows, verbose=0), before)
    # A member that does not read the item column cannot rank items.
    user_only = RatingModel({"user_id": USERS, "genre": 3})
    mixed = RatingEnsemble([model, user_only])
    with pytest.raises(ValueError, match=r"member '.*' reads the columns"):
        mixed.recommend(
            {"user_id": [0], "genre": [1]},
            k=1,
            user_column="user_id",
            item_column="movie_id",
        )


def test_ranking_metrics_take_an_ensemble():
    pytest.importorskip("keras_rs")
    from keras_catembed.evaluation import ranking_metrics

    x, y = ratings(n=60)
    train = {k: v[:45] for k, v in x.items()}
    test = {k: v[45:] for k, v in x.items()}
    ensemble = RatingEnsemble(
        [
            trained_rating_model(train, y[:45]),
            trained_autoencoder(train, y[:45]),
        ]
    )
    metrics = ranking_metrics(
        ensemble, test, y[45:], k=3, exclude=train, relevance_threshold=3
    )
    # The hit rate from the ensemble's own top 3 lists.
    liked = y[45:] >= 3
    users = np.unique(test["user_id"][liked])
    items, _ = ensemble.recommend(users, k=3, exclude=train)
    hits = [
        np.isin(
            items[i], test["movie_id"][liked & (test["user_id"] == u)]
        ).any()
        for i, u in enumerate(users)
    ]
    assert metrics["users"] == users.size
    np.testing.assert_allclose(metrics["hit_rate"], np.mean(hits), rtol=1e-6)


def test_ranking_metrics_take_an_autoencoder():
    pytest.importorskip("keras_rs")
    from keras_catembed.evaluation import ranking_metrics

    x, y = ratings(n=60)
    train = {k: v[:45] for k, v in x.items()}
    test = {k: v[45:] for k, v in x.items()}
    model = trained_autoencoder(train, y[:45])
    metrics = ranking_metrics(
        model, test, y[45:], k=3, exclude=train, relevance_threshold=3
    )
    liked = y[45:] >= 3
    users = np.unique(test["user_id"][liked])
    items, _ = model.recommend(users, k=3, exclude=train)
    hits = [
        np.isin(
            items[i], test["movie_id"][liked & (test["user_id"] == u)]
        ).any()
        for i, u in enumerate(users)
    ]
    np.testing.assert_allclose(metrics["hit_rate"], np.mean(hits), rtol=1e-6)


def test_members_with_no_item_id_in_common_need_candidates():
    from types import SimpleNamespace

    from keras_catembed import _requests

    def member(**table):
        layer = SimpleNamespace(**{"vocabulary": None, **table})
        return SimpleNamespace(embedding_layers={"movie_id": layer})

    both = SimpleNamespace(
        members=[member(input_dim=5), member(vocabulary=[7, 3, 1])]
    )
    # The ids both hold, in the first table's order.
    np.testing.assert_array_equal(
        _requests.check_candidates(both, None, "movie_id"), [1, 3]
    )
    apart = SimpleNamespace(
        members=[member(input_dim=3), member(vocabulary=["a", "b"])]
    )
    with pytest.raises(ValueError, match="no 'movie_id' id in common"):
        _requests.check_candidates(apart, None, "movie_id")
