"""ColumnEncoder: one id column's table, bias and pair terms as a layer."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_catembed
from keras_catembed import ColumnEncoder
from keras_catembed import EntityEmbedding

USERS, MOVIES = 9, 6


def data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, USERS, n).astype("int32"),
        "movie_id": rng.integers(0, MOVIES, n).astype("int32"),
    }
    y = (1 + 4 * rng.random(n)).astype("float32")
    return x, y


def encoders(max_pairs_per_id=None):
    movies = ColumnEncoder(MOVIES, column="movie_id")
    users = ColumnEncoder(
        EntityEmbedding(USERS, 4, name="user_table"),
        column="user_id",
        bias=True,
        implicit=movies,
        neighborhood=movies,
        max_pairs_per_id=max_pairs_per_id,
    )
    return users, movies


def functional(users, movies):
    inputs = {
        column: keras.Input((), dtype="int32", name=column)
        for column in ("user_id", "movie_id")
    }
    u, bias = users(inputs)
    m = movies(inputs)
    features = keras.layers.Concatenate()([u, m])
    rating = keras.layers.Dense(1)(features)
    rating = keras.layers.Add()([rating, bias])
    return keras.Model(inputs, rating)


def np_(x):
    return ops.convert_to_numpy(x)


def test_model_encoders_compute_embed_and_share_its_layers():
    x, y = data()
    model = keras_catembed.RatingModel(
        {"user_id": USERS, "movie_id": MOVIES},
        hidden_units=[4],
        bias_terms=True,
        implicit={"user_id": "movie_id"},
        neighborhood={"movie_id": "user_id"},
        max_pairs_per_id=5,
    )
    model.adapt(x, y)
    model.build()
    encoders = model.encoders
    assert list(encoders) == ["user_id", "movie_id"]
    users, movies = encoders["user_id"], encoders["movie_id"]
    assert users.embedding is model.embedding_layers["user_id"]
    assert users.bias_layer is model.bias_layers["user_id"]
    assert users.implicit_layer is model.implicit_layers["user_id"]
    assert movies.neighborhood_layer is model.neighborhood_layers["movie_id"]
    assert users.source_columns == {"implicit": "movie_id"}
    assert users.max_pairs_per_id == 5
    assert movies.output_dim == 2 * movies.embedding.output_dim
    embedded = model.embed(
        {column: ops.convert_to_tensor(v) for column, v in x.items()}
    )
    vector, bias = users(x)
    np.testing.assert_allclose(
        np_(vector), np_(embedded["user_id"]), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        np_(bias), np_(model.bias_layers["user_id"](x["user_id"])), rtol=1e-6
    )
    np.testing.assert_allclose(
        np_(movies(x)[0]), np_(embedded["movie_id"]), rtol=1e-6, atol=1e-7
    )
    with pytest.raises(TypeError):
        encoders["user_id"] = users
    # The encoders are views: the saved layout and the weights are the
    # model's own.
    assert len(model.weights) == len({id(w) for w in model.weights})


def test_encoder_adapts_as_the_model_does():
    x, y = data()
    users, movies = encoders()
    users.adapt(x, y)
    model = keras_catembed.RatingModel(
        {"user_id": USERS, "movie_id": MOVIES},
        implicit={"user_id": "movie_id"},
        neighborhood={"user_id": "movie_id"},
    )
    model.adapt(x, y)
    for kind in ("implicit", "neighborhood"):
        mine = getattr(users, f"{kind}_layer")
        theirs = getattr(model, f"{kind}_layers")["user_id"]
        np.testing.assert_allclose(
            np_(mine.pair_weights), np_(theirs.pair_weights), rtol=1e-6
        )
        np.testing.assert_array_equal(
            np_(mine.pair_counts), np_(theirs.pair_counts)
        )


def test_neighborhood_leaves_the_rows_own_rating_out():
    # One user rated two movies: its neighbourhood sum for the pair
    # (user, movie a) holds only movie b's vector, with b's weight.
    x = {
        "user_id": np.array([0, 0], "int32"),
        "movie_id": np.array([0, 1], "int32"),
    }
    y = np.array([5.0, 1.0], "float32")
    movies = ColumnEncoder(2, column="movie_id")
    users = ColumnEncoder(1, column="user_id", neighborhood=movies)
    users.adapt(x, y)
    out = np_(users(x))
    assert out.shape == (2, 2 * users.embedding.output_dim)
    dim = users.embedding.output_dim
    table = np_(users.neighborhood_layer.embeddings)
    own = np_(users.embedding.embeddings)[0]
    # Ratings centred on their mean 3, weights / sqrt(2 pairs).
    w = np.array([2.0, -2.0]) / np.sqrt(2.0)
    np.testing.assert_allclose(out[0, :dim], own, rtol=1e-5)
    np.testing.assert_allclose(out[0, dim:], w[1] * table[1], rtol=1e-5)
    np.testing.assert_allclose(out[1, dim:], w[0] * table[0], rtol=1e-5)


def test_functional_model_trains_saves_and_loads(tmp_path):
    x, y = data(400)
    users, movies = encoders(max_pairs_per_id=3)
    users.adapt(x, y)
    model = functional(users, movies)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < before
    path = tmp_path / "encoders.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5
    )
    encoder = next(
        layer
        for layer in loaded.layers
        if getattr(layer, "column", "") == "user_id"
    )
    assert encoder.implicit_layer.adapted
    assert encoder.implicit_layer.max_pairs_per_id == 3


def test_config_round_trip():
    users, _ = encoders(max_pairs_per_id=2)
    config = users.get_config()
    clone = ColumnEncoder.from_config(config)
    assert clone.column == "user_id"
    assert clone.bias and clone.bias_layer is not None
    assert clone.source_columns == {
        "implicit": "movie_id",
        "neighborhood": "movie_id",
    }
    assert clone.output_dim == 8
    assert clone.max_pairs_per_id == 2
    assert clone.get_config() == config


def test_unknown_id_names_the_column():
    x, y = data()
    users, _ = encoders()
    users.adapt(x, y)
    bad = dict(x, movie_id=x["movie_id"].copy())
    bad["user_id"] = bad["user_id"].copy()
    bad["user_id"][3] = USERS + 4
    with pytest.raises(ValueError, match="user_id"):
        users(bad)


@pytest.mark.parametrize("bad", [MOVIES, 1000, -1, 2.5])
def test_a_neighbourhood_checks_its_source_columns_ids(bad):
    # The movie column is read by the users' neighbourhood only: no other
    # layer checks its ids, so the encoder does, eagerly and compiled.
    x, y = data()
    movies = ColumnEncoder(MOVIES, column="movie_id")
    users = ColumnEncoder(USERS, column="user_id", neighborhood=movies)
    users.adapt(x, y)
    good = {"user_id": np.array([1, 2]), "movie_id": np.array([3, 4])}
    expected = ops.convert_to_numpy(users(good))
    ids = np.array([3, bad], dtype="float32" if bad == 2.5 else "int64")
    with pytest.raises(ValueError, match="movie_id"):
        users({"user_id": np.array([1, 2]), "movie_id": ids})
    inputs = {
        "user_id": keras.Input((), dtype="int32", name="user_id"),
        "movie_id": keras.Input((), dtype=ids.dtype.name, name="movie_id"),
    }
    np.testing.assert_allclose(
        ops.convert_to_numpy(users(good)), expected, rtol=1e-6
    )
    model = keras.Model(inputs, users(inputs))
    with pytest.raises(Exception, match="movie_id"):
        model.predict({"user_id": np.array([1, 2]), "movie_id": ids}, verbose=0)


def test_a_restored_neighbourhood_names_its_source_column(tmp_path):
    # The source's lookup table is rebuilt from the config: its errors
    # name the column as the original's do, after `from_config` and load.
    x, y = data()
    movies = ColumnEncoder(MOVIES, column="movie_id")
    users = ColumnEncoder(USERS, column="user_id", neighborhood=movies)
    users.adapt(x, y)
    inputs = {
        column: keras.Input((), dtype="int32", name=column)
        for column in ("user_id", "movie_id")
    }
    path = tmp_path / "neighbourhood.keras"
    keras.Model(inputs, users(inputs)).save(path)
    loaded = next(
        layer
        for layer in keras.saving.load_model(path).layers
        if isinstance(layer, ColumnEncoder)
    )
    clone = ColumnEncoder.from_config(users.get_config())
    clone.adapt(x, y)
    bad = {"user_id": np.array([1, 2]), "movie_id": np.array([3, MOVIES])}
    message = (
        rf"Column 'movie_id' \(EntityEmbedding 'movie_id_embedding'\) "
        rf"received the unknown id {MOVIES}"
    )
    for encoder in (users, clone, loaded):
        with pytest.raises(ValueError, match=message):
            encoder(bad)
    with pytest.raises(ValueError, match=message):
        clone.adapt(dict(x, movie_id=np.full_like(x["movie_id"], MOVIES)), y)


def test_missing_column_and_wrong_inputs():
    x, y = data()
    users, _ = encoders()
    users.adapt(x, y)
    with pytest.raises(ValueError, match=r"Missing: \['movie_id'\]"):
        users({"user_id": x["user_id"]})
    with pytest.raises(ValueError, match="dict of id tensors"):
        users(x["user_id"])
    with pytest.raises(ValueError, match="`column`"):
        ColumnEncoder(3, column="")


def test_rejected_adapt_leaves_the_pairs_unchanged():
    x, y = data()
    users, _ = encoders()
    users.adapt(x, y)
    before = {
        kind: np_(getattr(users, f"{kind}_layer").pair_weights)
        for kind in ("implicit", "neighborhood")
    }
    other, y_other = data(seed=1)
    with pytest.raises(ValueError, match="ratings"):
        users.adapt(other)
    bad = y_other.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="rating nan at row 5"):
        users.adapt(other, bad)
    with pytest.raises(ValueError, match="movie_id"):
        users.adapt(dict(other, movie_id=other["movie_id"] + MOVIES), y_other)
    with pytest.raises(ValueError, match="one length"):
        users.adapt(dict(other, user_id=other["user_id"][:-1]), y_other)
    for kind, weights in before.items():
        np.testing.assert_array_equal(
            np_(getattr(users, f"{kind}_layer").pair_weights), weights
        )


def test_adapt_without_pair_terms_is_an_error():
    movies = ColumnEncoder(MOVIES, column="movie_id")
    with pytest.raises(ValueError, match="has none"):
        movies.adapt(data()[0])
    with pytest.raises(ValueError, match="`implicit` expects"):
        ColumnEncoder(USERS, column="user_id", implicit="movie_id")
