"""RatingModel's neighbourhood: ids described by rating-weighted pairs."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_catembed
from keras_catembed import _implicit
from keras_catembed import explore

USERS, MOVIES = 6, 5


@pytest.fixture(autouse=True, params=["dense", "lists"])
def layout(request, monkeypatch):
    """Runs every test with both layouts of the pairs."""
    if request.param == "lists":
        monkeypatch.setattr(_implicit, "DENSE_LIMIT", 0)
    return request.param


def _np(x):
    return ops.convert_to_numpy(x)


def data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, USERS - 1, n).astype("int32"),
        "movie_id": rng.integers(0, MOVIES, n).astype("int32"),
    }
    # The last user never occurs: its neighbourhood vector must be zero.
    y = rng.integers(1, 6, n).astype("float32")
    return x, y


def make_model(neighborhood=True, **kwargs):
    return keras_catembed.RatingModel(
        {"user_id": USERS, "movie_id": MOVIES},
        hidden_units=[8],
        bias_terms=True,
        rating_range=(0.5, 5.5),
        neighborhood=neighborhood,
        **kwargs,
    )


def reference(table, targets, sources, ratings, query_t, query_s):
    """Sum over N(t) of (mean pair rating - mean) / sqrt(|N(t)|) * z[s],
    leaving out the pair (query_t, query_s)."""
    mean = ratings.mean()
    out = np.zeros((len(query_t), table.shape[1]))
    for row, (t, own) in enumerate(zip(query_t, query_s, strict=True)):
        seen = np.unique(sources[targets == t])
        for s in seen:
            if s == own:
                continue
            pair = (targets == t) & (sources == s)
            out[row] += (ratings[pair].mean() - mean) * table[s]
        if seen.size:
            out[row] /= np.sqrt(seen.size)
    return out


def rows(model, column, ids):
    layer = model.embedding_layers[column]
    return _np(layer._rows(ops.convert_to_tensor(ids))[0])


def neighborhood_vectors(model, target, source, x):
    layer = model.neighborhood_layers[target]
    return _np(
        layer(
            ops.convert_to_tensor(rows(model, target, x[target])),
            ops.convert_to_tensor(rows(model, source, x[source])),
        )
    )


def test_vectors_are_the_rating_weighted_sum_without_the_own_pair():
    x, y = data()
    model = make_model()
    model.build()
    model.adapt(x, y)
    # Queries: every (user, movie) combination, seen in `x` or not.
    grid_u, grid_m = np.meshgrid(np.arange(USERS), np.arange(MOVIES))
    query = {
        "user_id": grid_u.reshape(-1).astype("int32"),
        "movie_id": grid_m.reshape(-1).astype("int32"),
    }
    for target, source in (("user_id", "movie_id"), ("movie_id", "user_id")):
        layer = model.neighborhood_layers[target]
        expected = reference(
            _np(layer.embeddings),
            rows(model, target, x[target]),
            rows(model, source, x[source]),
            y.astype("float64"),
            rows(model, target, query[target]),
            rows(model, source, query[source]),
        )
        np.testing.assert_allclose(
            neighborhood_vectors(model, target, source, query),
            expected,
            atol=1e-6,
        )
    never_seen = query["user_id"] == USERS - 1
    assert np.all(
        neighborhood_vectors(model, "user_id", "movie_id", query)[never_seen]
        == 0
    )


def test_a_training_rating_does_not_describe_its_own_row():
    x, y = data()
    model = make_model()
    model.build()
    user, movie = int(x["user_id"][0]), int(x["movie_id"][0])
    own = {"user_id": np.array([user], "int32"), "movie_id": x["movie_id"][:1]}
    # The same user with a movie whose sum does include the changed pair.
    other = {
        "user_id": np.array([user], "int32"),
        "movie_id": np.array([(movie + 1) % MOVIES], "int32"),
    }
    changed = y.copy()
    same_pair = (x["user_id"] == user) & (x["movie_id"] == movie)
    changed[same_pair] += 2.0
    # A row of another user takes the opposite change: the mean stays.
    elsewhere = int(np.flatnonzero(x["user_id"] != user)[0])
    changed[elsewhere] -= 2.0 * same_pair.sum()
    vectors = {}
    for name, ratings in (("before", y), ("after", changed)):
        model.adapt(x, ratings)
        vectors[name] = (
            _np(model.embed(own)["user_id"]),
            _np(model.embed(other)["user_id"]),
        )
    np.testing.assert_allclose(
        vectors["after"][0], vectors["before"][0], atol=1e-6
    )
    assert np.abs(vectors["after"][1] - vectors["before"][1]).max() > 1e-4


def test_embed_appends_the_neighborhood_vector_to_the_column_vector():
    x, y = data()
    model = make_model(neighborhood={"user_id": "movie_id"})
    model.build()
    model.adapt(x, y)
    embedded = model.embed(x)
    own = _np(model.embedding_layers["user_id"](x["user_id"]))
    np.testing.assert_allclose(
        _np(embedded["user_id"]),
        np.concatenate(
            [own, neighborhood_vectors(model, "user_id", "movie_id", x)],
            axis=-1,
        ),
        atol=1e-6,
    )
    assert "movie_id" not in model.neighborhood_layers
    np.testing.assert_allclose(
        _np(embedded["movie_id"]),
        _np(model.embedding_layers["movie_id"](x["movie_id"])),
    )
    # The first hidden layer sees the wider user vector.
    dims = {c: model.embedding_layers[c].output_dim for c in model.columns}
    kernel = model.hidden_layers[0].kernel
    assert kernel.shape[0] == 2 * dims["user_id"] + dims["movie_id"]


def test_fit_predict_save_and_load(tmp_path):
    x, y = data()
    model = make_model(implicit=True)
    model.adapt(x, y)
    model.compile(keras.optimizers.Adam(0.02), "mse")
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < loss[0]
    before = _np(model.neighborhood_layers["movie_id"].embeddings).copy()
    assert np.any(before != 0)
    predictions = model.predict(x, verbose=0)
    assert np.all((predictions > 0.5) & (predictions < 5.5))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.neighborhood == {"user_id": "movie_id", "movie_id": "user_id"}
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), predictions, atol=1e-5
    )


def test_config_round_trip():
    model = make_model(neighborhood={"movie_id": "user_id"})
    config = model.get_config()
    assert config["neighborhood"] == {"movie_id": "user_id"}
    clone = keras_catembed.RatingModel.from_config(config)
    assert clone.neighborhood == {"movie_id": "user_id"}
    assert make_model(neighborhood=None).get_config()["neighborhood"] is None


def test_embedding_matrix_appends_the_whole_neighborhood_sum():
    x, y = data()
    model = make_model()
    model.build()
    model.adapt(x, y)
    layer = model.neighborhood_layers["movie_id"]
    weights, table = _np(layer.pair_weights), _np(layer.embeddings)
    if layer.dense:
        sums = weights @ table
    else:
        sums = np.einsum("ts,tsd->td", weights, table[_np(layer.pair_sources)])
    expected = np.concatenate(
        [_np(model.embedding_layers["movie_id"].embeddings), sums], axis=-1
    )
    matrix = explore.embedding_matrix(model, "movie_id")
    assert matrix.shape == (MOVIES, expected.shape[1])
    np.testing.assert_allclose(matrix, expected[:MOVIES], atol=1e-6)
    assert explore.nearest(model, "movie_id", 0, k=2)[0].shape == (2,)


def test_adapt_needs_the_ratings():
    x, y = data()
    model = make_model()
    with pytest.raises(ValueError, match=r"adapt\(x, y\)"):
        model.adapt(x)
    with pytest.raises(ValueError, match="80 ratings for 79 rows"):
        model.adapt({k: v[:-1] for k, v in x.items()}, y)
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="rating nan at row 3 is not finite"):
        model.adapt(x, bad)
    # Finite, but beyond the float32 range the pair weights are kept in,
    # as `fit` rejects it.
    bad = bad.astype("float64")
    bad[3] = 1e300
    with pytest.raises(
        ValueError, match=r"`y` holds the rating \[1e\+300\] at row 3, beyond"
    ):
        model.adapt(x, bad)
    assert not model.neighborhood_layers["user_id"].adapted


@pytest.mark.parametrize(
    "neighborhood, match",
    [
        ("yes", r"`neighborhood` must be None, True or a dict"),
        ({"user_id": "zip"}, r"`neighborhood` names the column 'zip'"),
        ({"user_id": "user_id"}, r"`neighborhood` must pair two different"),
    ],
)
def test_bad_neighborhood_arguments(neighborhood, match):
    with pytest.raises(ValueError, match=match):
        make_model(neighborhood=neighborhood)


def test_layout_follows_the_size_of_the_pair_matrix(layout):
    model = make_model()
    model.build()
    for layer in model.neighborhood_layers.values():
        assert layer.dense == (layout == "dense")
        if not layer.dense:
            # Exact lists: as wide as the most ids one id can meet.
            assert layer.width == layer.num_sources


def test_constant_ratings_stay_adapted_after_loading(tmp_path):
    # Every centred rating is 0, so every pair weight is 0: the saved
    # pair counts, not the weights, say that the layer was adapted.
    x, _ = data()
    y = np.full(len(x["user_id"]), 4.0, "float32")
    model = make_model()
    model.adapt(x, y)
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "constant.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert all(layer.adapted for layer in loaded.neighborhood_layers.values())
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6
    )


def test_predict_before_adapt_says_to_adapt_with_the_ratings():
    x, _ = data()
    model = make_model()
    with pytest.raises(ValueError, match=r"model.adapt\(x_train, y_train\)"):
        model.predict(x, verbose=0)
