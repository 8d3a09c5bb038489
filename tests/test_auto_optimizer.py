"""`RatingModel.compile(optimizer="auto")`."""

import warnings

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import optimizers

SIZES = {"user_id": 30, "movie_id": 20}


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = {c: rng.integers(0, size, n) for c, size in SIZES.items()}
    y = rng.uniform(1, 5, n).astype("float32")
    return x, y


def _twin(model):
    """A model of the same config and weights as `model`."""
    twin = keras_catembed.RatingModel.from_config(model.get_config())
    twin.build()
    twin.set_weights(model.get_weights())
    return twin


def _fit(model, x, y):
    keras.utils.set_random_seed(1)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return np.asarray(model.predict(x, verbose=0))


def _dense_adam(optimizer):
    return isinstance(optimizer, keras.optimizers.Adam) and not isinstance(
        optimizer, optimizers.SparseAdam
    )


def test_auto_is_sparse_adam_at_keras_default_rate_without_a_recipe():
    keras.utils.set_random_seed(0)
    model = keras_catembed.RatingModel(SIZES)
    model.build()
    twin = _twin(model)
    model.compile(optimizer="auto", loss="mse")
    assert isinstance(model.optimizer, optimizers.SparseAdam)
    assert model.optimizer.weight_decay is None
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    twin.compile(optimizer=optimizers.SparseAdam(1e-3), loss="mse")
    x, y = _data()
    np.testing.assert_allclose(_fit(model, x, y), _fit(twin, x, y), atol=1e-5)


def test_auto_takes_a_preset_recipe_rate_decay_and_average():
    keras.utils.set_random_seed(0)
    model = keras_catembed.RatingModel.from_preset("tuned-ml-1m", SIZES)
    model.build()
    recipe = model.recipe
    assert recipe.optimizer == "sparse_adam" and recipe.table_decay == 1.0
    model.compile(optimizer="auto", loss="mse")
    optimizer = model.optimizer
    assert isinstance(optimizer, optimizers.SparseAdam)
    assert optimizer.weight_decay == recipe.table_decay
    assert float(optimizer.learning_rate) == pytest.approx(recipe.learning_rate)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.999
    # The decay reaches the embedding tables only (the id vectors and the
    # implicit-feedback tables), not the biases nor the dense layers.
    tables = {
        layer.embeddings.path
        for group in (model.embedding_layers, model.implicit_layers)
        for layer in group.values()
    }
    others = sorted(
        v.path for v in model.trainable_variables if v.path not in tables
    )
    assert len(tables) == 4 and len(others) > 4
    assert any("bias" in path for path in others)
    assert optimizer.get_config()["exclude_from_weight_decay_paths"] == others
    x, y = _data()
    model.adapt(x)
    before = {v.path: np.asarray(v) for v in model.trainable_variables}
    after = _fit(model, x, y)
    assert np.all(np.isfinite(after))
    assert all(
        not np.array_equal(np.asarray(v), before[v.path])
        for v in model.trainable_variables
    )


def test_auto_keeps_dense_adam_for_a_penalized_table():
    # A preset on the sparse path, given an L2 penalty on its tables.
    model = keras_catembed.RatingModel.from_preset(
        "tuned-ml-100k-demographics",
        {**SIZES, "age": 7, "gender": 2, "occupation": 21},
        embeddings_regularizer="l2",
    )
    assert model.recipe.optimizer == "sparse_adam"
    model.compile(optimizer="auto", loss="mse")
    assert _dense_adam(model.optimizer)
    assert model.optimizer.use_ema
    assert float(model.optimizer.learning_rate) == pytest.approx(
        model.recipe.learning_rate
    )
    plain = keras_catembed.RatingModel(
        {
            "user_id": keras_catembed.EntityEmbedding(
                30, 4, embeddings_regularizer="l2"
            ),
            "movie_id": 20,
        }
    )
    plain.compile(optimizer="auto", loss="mse")
    assert _dense_adam(plain.optimizer)


def test_auto_model_trains_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_catembed.RatingModel.from_preset("mlp", SIZES)
    model.compile(optimizer="auto", loss="mse")
    x, y = _data()
    expected = _fit(model, x, y)
    path = str(tmp_path / "auto.keras")
    model.save(path)
    with warnings.catch_warnings():
        # Keras warns when it cannot restore an optimizer's state.
        warnings.simplefilter("error", UserWarning)
        loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, optimizers.SparseAdam)
    assert loaded.optimizer.weight_decay == 3.0
    # The decay's exclusions (every variable but the tables) came back,
    # and with them the optimizer's state, row marks included.
    assert (
        loaded.optimizer.get_config()["exclude_from_weight_decay_paths"]
        == model.optimizer.get_config()["exclude_from_weight_decay_paths"]
    )
    saved_state = [np.asarray(v) for v in model.optimizer.variables]
    loaded_state = [np.asarray(v) for v in loaded.optimizer.variables]
    assert len(loaded_state) == len(saved_state)
    for saved, restored in zip(saved_state, loaded_state, strict=True):
        np.testing.assert_allclose(restored, saved)
    np.testing.assert_allclose(
        np.asarray(loaded.predict(x, verbose=0)), expected, atol=1e-5
    )
