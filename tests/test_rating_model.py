import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from hypothesis import given
from keras import ops

import keras_catembed
from tests import strategies
from tests.custom_models import DotRatingModel
from tests.layer_checks import run_layer_checks

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _np(x):
    return ops.convert_to_numpy(x)


def _low_rank_data(num=3000, num_users=60, num_movies=40, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, num_users, num).astype("int32")
    movies = rng.integers(0, num_movies, num).astype("int32")
    user_factors = rng.normal(size=(num_users, 2))
    movie_factors = rng.normal(size=(num_movies, 2))
    ratings = 3.0 + (user_factors[users] * movie_factors[movies]).sum(1)
    x = {"user": users, "movie": movies}
    return x, ratings.astype("float32")


CARDINALITIES = {"user": 60, "movie": 40}


# Harness -------------------------------------------------------------------


def test_layer_checks_default_configuration():
    x = {
        "user": np.array([0, 5, 59, 3], dtype="int32"),
        "movie": np.array([[1], [39], [0], [7]], dtype="int32"),
    }
    run_layer_checks(
        keras_catembed.RatingModel,
        {"embeddings": CARDINALITIES},
        x,
        expected_output_shape=(4, 1),
        # 2 tables, 3 Dense kernels + 3 biases.
        expected_num_trainable_weights=8,
        mixed_output_dtype="float32",
        own_dtype_layers=("rating",),
    )


def test_layer_checks_biases_range_dropout_and_layers():
    x = {
        "user": np.array([0, 1, 2], dtype="int32"),
        "movie": np.array([10, 20, 99], dtype="int32"),
        "store": np.array([2, 2, 0], dtype="int32"),
    }
    run_layer_checks(
        keras_catembed.RatingModel,
        {
            "embeddings": {
                "user": 3,
                "movie": keras_catembed.EntityEmbedding(
                    vocabulary=[10, 20, 30],
                    output_dim=4,
                    num_oov_indices=1,
                    name="movie_table",
                ),
                "store": keras_catembed.EntityEmbedding(
                    4, 2, dropout=0.1, name="store_table"
                ),
            },
            "hidden_units": [8],
            "dropout": 0.2,
            "bias_terms": True,
            "rating_range": (0.5, 5.5),
        },
        x,
        expected_output_shape=(3, 1),
        # 3 tables, 3 bias tables, 2 Dense kernels + 2 biases.
        expected_num_trainable_weights=10,
        mixed_output_dtype="float32",
        own_dtype_layers=("rating", "movie_table", "store_table"),
    )


# Architecture ---------------------------------------------------------------


def _course_model(num_users, num_movies):
    """The Kaggle "Embeddings" course model, in plain Keras."""
    user_input = keras.Input((1,), name="user", dtype="int32")
    movie_input = keras.Input((1,), name="movie", dtype="int32")
    user_embedded = keras.layers.Embedding(num_users, 8)(user_input)
    movie_embedded = keras.layers.Embedding(num_movies, 8)(movie_input)
    out = keras.layers.Concatenate()([user_embedded, movie_embedded])
    out = keras.layers.Flatten()(out)
    for units in (32, 4):
        out = keras.layers.Dense(units, activation="relu")(out)
    out = keras.layers.Dense(1)(out)
    return keras.Model({"user": user_input, "movie": movie_input}, out)


def test_defaults_are_the_course_architecture():
    model = keras_catembed.RatingModel(
        {
            "user": keras_catembed.EntityEmbedding(60, 8),
            "movie": keras_catembed.EntityEmbedding(40, 8),
        }
    )
    model.build()
    course = _course_model(60, 40)
    ours = [tuple(w.shape) for w in model.weights]
    theirs = [tuple(w.shape) for w in course.weights]
    assert ours == theirs
    model.set_weights(course.get_weights())
    x, _ = _low_rank_data(50)
    x2 = {k: v.reshape(-1, 1) for k, v in x.items()}
    np.testing.assert_allclose(
        _np(model(x)), _np(course(x2)), rtol=1e-5, atol=1e-6
    )
    assert [layer.units for layer in model.hidden_layers] == [32, 4]
    assert model.hidden_layers[0].activation is keras.activations.relu


def test_cardinalities_get_auto_sized_tables():
    model = keras_catembed.RatingModel({"user": 943, "movie": 1682})
    assert model.embedding_layers["user"].output_dim == 74
    assert model.embedding_layers["movie"].output_dim == 102


def test_bias_terms_add_per_id_biases():
    model = keras_catembed.RatingModel(
        {"user": 3, "movie": 2}, hidden_units=[], bias_terms=True
    )
    x = {"user": np.array([0, 1, 2, 2]), "movie": np.array([0, 0, 1, 0])}
    base = _np(model(x))
    model.bias_layers["user"].embeddings.assign([[1.0], [2.0], [3.0]])
    model.bias_layers["movie"].embeddings.assign([[10.0], [20.0]])
    expected = base + np.array([[11.0], [12.0], [23.0], [13.0]])
    np.testing.assert_allclose(_np(model(x)), expected, rtol=1e-6)


def test_rating_range_bounds_the_output():
    model = keras_catembed.RatingModel(
        {"user": keras_catembed.EntityEmbedding(3, 2)},
        hidden_units=[],
        rating_range=(1, 5),
    )
    x = {"user": np.array([0, 1, 2])}
    model(x)
    kernel = model.output_layer.kernel
    kernel.assign(np.full(kernel.shape, 1e4, dtype="float32"))
    model.embedding_layers["user"].embeddings.assign(
        np.array([[-1.0] * 2, [0.0] * 2, [1.0] * 2], dtype="float32")
    )
    out = _np(model(x))[:, 0]
    np.testing.assert_allclose(out, [1.0, 3.0, 5.0], atol=1e-4)
    assert np.all((out >= 1.0) & (out <= 5.0))


def test_subclass_can_override_interact():
    model = DotRatingModel(
        {
            "user": keras_catembed.EntityEmbedding(60, 5),
            "movie": keras_catembed.EntityEmbedding(40, 5),
        },
        hidden_units=[4],
    )
    model.build()
    width = sum(model.embedding_layers[c].output_dim for c in CARDINALITIES)
    assert model.hidden_layers[0].kernel.shape == (width + 1, 4)


def test_embed_returns_vectors_per_column():
    model = keras_catembed.RatingModel(CARDINALITIES)
    x, _ = _low_rank_data(5)
    embedded = model.embed(x)
    assert list(embedded) == ["user", "movie"]
    table = _np(model.embedding_layers["user"].embeddings)
    np.testing.assert_array_equal(_np(embedded["user"]), table[x["user"]])


class DoubledEmbedModel(keras_catembed.RatingModel):
    # The override the docs show: it takes `training` and passes it on.
    def embed(self, inputs, training=None):
        embedded = super().embed(inputs, training=training)
        return {column: 2.0 * vector for column, vector in embedded.items()}


def test_subclass_can_override_embed_and_predict_and_evaluate_use_it():
    x, y = _low_rank_data(64)
    keras.utils.set_random_seed(0)
    model = DoubledEmbedModel(CARDINALITIES, hidden_units=[4])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    plain = keras_catembed.RatingModel.embed(model, x)
    doubled = {c: _np(v) for c, v in model.embed(x).items()}
    for column in CARDINALITIES:
        np.testing.assert_allclose(doubled[column], 2.0 * _np(plain[column]))
    features = np.concatenate([doubled["user"], doubled["movie"]], axis=-1)
    hidden = ops.convert_to_tensor(features)
    for dense in model.hidden_layers:
        hidden = dense(hidden)
    expected = _np(model.output_layer(hidden))
    np.testing.assert_allclose(
        model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5
    )
    # `evaluate` scores the same doubled vectors.
    with pytest.warns(UserWarning, match="this model was trained on"):
        loss = model.evaluate(x, y, batch_size=64, verbose=0)
    mse = np.mean((expected.reshape(-1) - y) ** 2)
    np.testing.assert_allclose(loss, mse, rtol=1e-4)


@pytest.mark.parametrize(
    "method", ["evaluate", "fit", "test_on_batch", "train_on_batch"]
)
def test_loops_of_an_uncompiled_model_say_to_compile(method):
    model = keras_catembed.RatingModel(CARDINALITIES)
    x, y = _low_rank_data(8)
    with pytest.raises(ValueError, match=r"call `compile\(\)`"):
        getattr(model, method)(x, y)
    # The rejected call left the model as it was: not even built.
    assert not model.built
    # Prediction needs no compile, and the model is still usable.
    assert model.predict(x, verbose=0).shape == (8, 1)


@given(strategies.rating_model_cases())
def test_property_output_shape_and_range(case):
    init_kwargs, inputs = case
    model = keras_catembed.RatingModel(**init_kwargs)
    out = _np(model(inputs))
    batch = len(next(iter(inputs.values())))
    assert out.shape == (batch, 1)
    assert np.all(np.isfinite(out))
    if init_kwargs["rating_range"] is not None:
        assert np.all((out >= 0.5) & (out <= 5.5))


# Training -------------------------------------------------------------------


def _train(seed=0, epochs=10):
    keras.utils.set_random_seed(seed)
    x, y = _low_rank_data()
    model = keras_catembed.RatingModel(
        CARDINALITIES, bias_terms=True, rating_range=(-1.0, 7.0)
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    history = model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
    return history.history["loss"]


def test_training_lowers_the_loss_clearly():
    x, y = _low_rank_data()
    losses = _train()
    assert losses[-1] < 0.35 * losses[0]
    assert losses[-1] < 0.5 * float(np.var(y))


def test_set_random_seed_makes_training_repeatable():
    np.testing.assert_array_equal(_train(epochs=2), _train(epochs=2))


# Saving ---------------------------------------------------------------------


SAVED_CLASSES = [keras_catembed.RatingModel, DotRatingModel]


@pytest.fixture(scope="module")
def fresh_process_predictions(tmp_path_factory):
    """Trains, saves and predicts with one model per class in SAVED_CLASSES,
    then loads every file and predicts again in one fresh process.

    Returns {class name: (name the fresh process printed, its predictions,
    the predictions before saving)}.
    """
    folder = tmp_path_factory.mktemp("fresh_process")
    keras.utils.set_random_seed(0)
    x, y = _low_rank_data(500)
    x = {"user": x["user"], "movie": x["movie"] + 100}
    np.savez(folder / "inputs.npz", **x)
    expected, arguments = {}, []
    for cls in SAVED_CLASSES:
        model = cls(
            {
                "user": keras_catembed.EntityEmbedding(
                    60, 3, name="user_table"
                ),
                "movie": keras_catembed.EntityEmbedding(
                    vocabulary=list(range(100, 140)),
                    output_dim=3,
                    num_oov_indices=2,
                ),
            },
            hidden_units=[8, 4],
            bias_terms=True,
            rating_range=(0.5, 5.5),
        )
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=1, verbose=0)
        expected[cls.__name__] = model.predict(x, verbose=0)
        path = folder / f"{cls.__name__}.keras"
        model.save(str(path))
        arguments += [
            str(path),
            str(folder / "inputs.npz"),
            str(folder / f"{cls.__name__}.npy"),
        ]
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "tests._load_and_predict", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = result.stdout.strip().splitlines()[-len(SAVED_CLASSES) :]
    return {
        cls.__name__: (
            printed,
            np.load(folder / f"{cls.__name__}.npy"),
            expected[cls.__name__],
        )
        for cls, printed in zip(SAVED_CLASSES, names, strict=True)
    }


@pytest.mark.parametrize("cls", SAVED_CLASSES)
def test_save_and_load_in_fresh_process(cls, fresh_process_predictions):
    name, actual, expected = fresh_process_predictions[cls.__name__]
    assert name == cls.__name__
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def test_config_round_trip_keeps_layers_and_cardinalities():
    model = keras_catembed.RatingModel(
        {"a": 5, "b": keras_catembed.EntityEmbedding(vocabulary=[4, 2])},
        hidden_units=(3,),
        activation="tanh",
        rating_range=(1, 5),
    )
    config = model.get_config()
    assert config["embeddings"]["a"] == 5
    assert config["embeddings"]["b"]["class_name"] == "EntityEmbedding"
    assert config["rating_range"] == [1.0, 5.0]
    revived = keras_catembed.RatingModel.from_config(config)
    assert revived.get_config() == config
    assert revived.embedding_layers["b"].vocabulary == [4, 2]


# Bad input ------------------------------------------------------------------


@pytest.fixture
def model():
    model = keras_catembed.RatingModel(CARDINALITIES)
    model.compile(optimizer="adam", loss="mse")
    return model


GOOD = {"user": np.array([1, 2, 3]), "movie": np.array([4, 5, 6])}
Y = np.array([1.0, 2.0, 3.0], dtype="float32")

BAD_INPUTS = [
    ({"zip": np.array([1, 2, 3])}, r"expects the columns \['user', 'movie'\]"),
    ({"user": np.array([1, 60, 3])}, r"Column 'user'.*unknown id 60"),
    ({"movie": np.array([0, -1, 3])}, r"Column 'movie'.*unknown id -1"),
    ({"user": np.array([1.0, 3.7, 2.0])}, r"Column 'user'.*non-integer id 3.7"),
    ({"user": np.array([True, False, True])}, r"Column 'user'.*dtype bool"),
    ({"user": np.array(["1", "2", "3"])}, r"Column 'user'.*dtype <U1"),
    ({"user": np.array([[1, 2], [3, 4], [5, 6]])}, r"shape \(batch,\)"),
]


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("update, match", BAD_INPUTS)
def test_bad_inputs_raise_value_error(model, method, update, match):
    x = {**GOOD, **update}
    with pytest.raises(ValueError, match=match):
        if method == "predict":
            model.predict(x, verbose=0)
        else:
            getattr(model, method)(x, Y, verbose=0)


@pytest.mark.parametrize(
    "method", ["train_on_batch", "test_on_batch", "predict_on_batch"]
)
def test_bad_inputs_checked_in_on_batch_methods(model, method):
    x = {**GOOD, "user": np.array([1, 99, 2])}
    args = (x,) if method == "predict_on_batch" else (x, Y)
    with pytest.raises(ValueError, match="unknown id 99"):
        getattr(model, method)(*args)


def test_missing_column_is_named(model):
    with pytest.raises(ValueError, match=r"Missing: \['movie'\]"):
        model.predict({"user": GOOD["user"]}, verbose=0)


def test_eager_call_checks_columns_and_ids(model):
    with pytest.raises(ValueError, match="Missing"):
        model({"user": GOOD["user"]})
    with pytest.raises(ValueError, match="unknown id 40"):
        model({**GOOD, "movie": np.array([1, 40, 2])})
    with pytest.raises(ValueError, match="dict keyed by column name"):
        model(GOOD["user"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_targets_raise_with_row_index(model, bad):
    y = Y.copy()
    y[2] = bad
    with pytest.raises(ValueError, match=r"non-finite target.* at row 2"):
        model.fit(GOOD, y, verbose=0)
    with pytest.raises(ValueError, match="at row 2"):
        model.evaluate(GOOD, y, verbose=0)


def test_validation_data_is_checked(model):
    bad_x = {**GOOD, "user": np.array([0, 0, 70])}
    with pytest.raises(ValueError, match="unknown id 70"):
        model.fit(GOOD, Y, validation_data=(bad_x, Y), verbose=0)
    bad_y = np.array([1.0, np.nan, 1.0], dtype="float32")
    with pytest.raises(ValueError, match="validation_data y.* at row 1"):
        model.fit(GOOD, Y, validation_data=(GOOD, bad_y), verbose=0)


def test_nothing_trains_after_a_rejected_fit(model):
    model.build()
    before = [_np(w) for w in model.weights]
    y = Y.copy()
    y[0] = np.nan
    with pytest.raises(ValueError):
        model.fit(GOOD, y, verbose=0)
    for b, a in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(b, _np(a))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"embeddings": {}}, "non-empty dict"),
        ({"embeddings": [("a", 3)]}, "non-empty dict"),
        ({"embeddings": {"a": 0}}, r"`embeddings\['a'\]`.*Received: 0"),
        ({"embeddings": {"a": "big"}}, r"embeddings\['a'\]"),
        ({"embeddings": {"a/b": 3}}, "without '/'"),
        ({"embeddings": {"a": 3}, "hidden_units": [4, 0]}, "hidden_units"),
        ({"embeddings": {"a": 3}, "dropout": -0.1}, "dropout=-0.1"),
        ({"embeddings": {"a": 3}, "bias_terms": 1}, "bias_terms=1"),
        ({"embeddings": {"a": 3}, "rating_range": (5, 1)}, "low < high"),
        ({"embeddings": {"a": 3}, "rating_range": 5}, "rating_range=5"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_catembed.RatingModel(**kwargs)


# Presets --------------------------------------------------------------------


def test_course_preset_is_the_course_model():
    model = keras_catembed.RatingModel.from_preset(
        "course", {"user": 60, "movie": 40}
    )
    model.build()
    assert [tuple(w.shape) for w in model.weights] == [
        tuple(w.shape) for w in _course_model(60, 40).weights
    ]
    assert model.bias_terms is False and model.rating_range is None


@pytest.mark.parametrize("preset", ["mlp", "recommended"])
def test_preset_overrides_and_serialization(tmp_path, preset):
    model = keras_catembed.RatingModel.from_preset(
        preset, {"user": 6, "movie": 4}, hidden_units=[3]
    )
    assert model.hidden_units == [3]
    x = {"user": np.array([0, 5]), "movie": np.array([3, 1])}
    if preset == "recommended":
        assert model.implicit == {"user": "movie", "movie": "user"}
        model.adapt(x)
    expected = _np(model(x))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(_np(loaded(x)), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("nope", {"a": 3}), {}, r"Unknown preset 'nope'.*'course'"),
        (("course", {"a": 3}), {"width": 3}, r"Unknown overrides \['width'\]"),
        (
            ("course", {"a": keras_catembed.EntityEmbedding(3)}),
            {},
            "pass cardinalities",
        ),
    ],
)
def test_from_preset_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_catembed.RatingModel.from_preset(*args, **kwargs)


def test_preset_embedding_dim_per_column(monkeypatch):
    from keras_catembed import presets

    preset = presets.get("mlp")
    preset["model"]["embedding_dim"] = {"user": 3, "movie": 5}
    monkeypatch.setitem(presets.PRESETS, "per-column", preset)
    model = keras_catembed.RatingModel.from_preset(
        "per-column", {"user": 6, "movie": 4}
    )
    assert model.embedding_layers["user"].output_dim == 3
    assert model.embedding_layers["movie"].output_dim == 5
    with pytest.raises(ValueError, match=r"not for \['genre'\]"):
        keras_catembed.RatingModel.from_preset(
            "per-column", {"user": 6, "movie": 4, "genre": 3}
        )
    model = keras_catembed.RatingModel.from_preset(
        "per-column", {"user": 6, "genre": 3}, embedding_dim=2
    )
    assert model.embedding_layers["genre"].output_dim == 2


def test_auto_embedding_dim_keeps_the_preset_regularization():
    model = keras_catembed.RatingModel.from_preset(
        "recommended",
        {"user": 943, "movie": 40},
        embedding_dim="auto",
        embeddings_regularizer="l2",
    )
    layer = model.embedding_layers["user"]
    assert layer.output_dim == 74
    assert isinstance(layer.embeddings_regularizer, keras.regularizers.L2)
    assert isinstance(
        layer.embeddings_initializer, keras.initializers.RandomNormal
    )
    assert layer.dropout == 0.1


def test_ids_of_shape_n_and_n_1_mix_on_one_model():
    # Keras's TensorFlow predict and evaluate relax their trace to an
    # unknown rank once both shapes were seen.
    x = {"user_id": np.array([0, 1, 2, 3]), "movie_id": np.array([1, 0, 2, 1])}
    column = {k: v[:, None] for k, v in x.items()}
    y = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    model = keras_catembed.RatingModel({"user_id": 4, "movie_id": 3})
    model.compile(optimizer="adam", loss="mse")
    expected = model.predict(x, verbose=0)
    for inputs in (column, x, column):
        np.testing.assert_allclose(
            model.predict(inputs, verbose=0), expected, rtol=1e-6
        )
    losses = [model.evaluate(inputs, y, verbose=0) for inputs in (x, column)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_unsigned_ids_in_every_loop(dtype):
    # torch has no uint32 or uint64 tensors: checked ids are passed on as
    # int64, in the one-batch calls too.
    x = {
        "user_id": np.array([0, 1, 2, 3], dtype),
        "movie_id": np.array([1, 0, 2, 1], dtype),
    }
    signed = {k: v.astype("int64") for k, v in x.items()}
    y = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    model = keras_catembed.RatingModel({"user_id": 4, "movie_id": 3})
    model.compile(optimizer="adam", loss="mse")
    expected = model.predict(signed, verbose=0)
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(
        model.test_on_batch(x, y), model.test_on_batch(signed, y), rtol=1e-6
    )
    assert np.isfinite(model.train_on_batch(x, y))
