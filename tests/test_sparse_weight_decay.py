"""SparseAdam's weight decay: lazy for skipped rows, equal to dense decay."""

import keras
import numpy as np
import pytest

from keras_catembed import RatingModel
from keras_catembed import optimizers
from tests.test_optimizers import EPSILON
from tests.test_optimizers import LR
from tests.test_optimizers import lazy_adam_reference
from tests.test_optimizers import sparse_gradient

DECAY = 0.5


def _steps(rng):
    # Row 0 only in the first step, row 1 only in the last, row 6 never.
    return [
        (np.array([0, 5, 5, 2]), rng.normal(size=(4, 3)).astype(np.float32)),
        (np.array([2, 7]), rng.normal(size=(2, 3)).astype(np.float32)),
        (np.array([3]), rng.normal(size=(1, 3)).astype(np.float32)),
        (np.array([5, 2, 1]), rng.normal(size=(3, 3)).astype(np.float32)),
    ]


def test_lazy_decay_equals_decaying_every_row_at_every_step():
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(8, 3)).astype(np.float32)
    steps = _steps(rng)
    table = keras.Variable(initial)
    optimizer = optimizers.SparseAdam(LR, epsilon=EPSILON, weight_decay=DECAY)
    optimizer.build([table])
    values = []
    for rows, grads in steps:
        optimizer.apply([sparse_gradient(rows, grads)], [table])
        values.append(np.array(keras.ops.convert_to_numpy(table)))
    # A step writes only its own rows: row 0 and row 6 keep their values
    # until they are touched again or training ends.
    np.testing.assert_array_equal(values[-1][[0, 6]], values[0][[0, 6]])
    np.testing.assert_array_equal(values[-1][6], initial[6])
    # A touched row first takes the decay of the steps it missed: row 1,
    # touched only in the last step, is already exact.
    reference = lazy_adam_reference(initial, steps, DECAY)
    np.testing.assert_allclose(values[-1][1], reference[1], rtol=1e-5)
    optimizer.finalize_variable_values([table])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(table), reference, rtol=1e-5, atol=1e-6
    )
    # A row never touched is decayed by every step's factor.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(table)[6],
        initial[6] * (1 - LR * DECAY) ** len(steps),
        rtol=1e-5,
    )


def test_dense_gradients_get_adamw_updates():
    rng = np.random.default_rng(1)
    initial = rng.normal(size=(5, 2)).astype(np.float32)
    grads = [rng.normal(size=(5, 2)).astype(np.float32) for _ in range(3)]
    tables = [keras.Variable(initial), keras.Variable(initial)]
    sparse = optimizers.SparseAdam(LR, epsilon=EPSILON, weight_decay=DECAY)
    dense = keras.optimizers.AdamW(LR, epsilon=EPSILON, weight_decay=DECAY)
    for gradient in grads:
        sparse.apply([keras.ops.convert_to_tensor(gradient)], [tables[0]])
        dense.apply([keras.ops.convert_to_tensor(gradient)], [tables[1]])
    sparse.finalize_variable_values([tables[0]])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(tables[0]),
        keras.ops.convert_to_numpy(tables[1]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_excluded_variables_are_not_decayed():
    rng = np.random.default_rng(2)
    initial = rng.normal(size=(8, 3)).astype(np.float32)
    steps = _steps(rng)
    kept = keras.Variable(initial, name="kept_table")
    decayed = keras.Variable(initial, name="decayed_table")
    optimizer = optimizers.SparseAdam(LR, epsilon=EPSILON, weight_decay=DECAY)
    optimizer.exclude_from_weight_decay(var_names=["kept"])
    optimizer.build([kept, decayed])
    for rows, grads in steps:
        gradient = sparse_gradient(rows, grads)
        optimizer.apply(
            [gradient, sparse_gradient(rows, grads)], [kept, decayed]
        )
    optimizer.finalize_variable_values([kept, decayed])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(kept)[6], initial[6]
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(decayed)[6],
        initial[6] * (1 - LR * DECAY) ** len(steps),
        rtol=1e-5,
    )


@pytest.mark.parametrize("fast", ["auto", False])
def test_ids_never_trained_on_decay_under_fit(fast):
    # User 5 never occurs: its row gets every step's factor, exactly as
    # AdamW would give it, on both training paths.
    rng = np.random.default_rng(3)
    x = {
        "user_id": rng.integers(0, 5, 32).astype("int32"),
        "movie_id": rng.integers(0, 4, 32).astype("int32"),
    }
    y = rng.uniform(1, 5, 32).astype("float32")
    keras.utils.set_random_seed(0)
    model = RatingModel({"user_id": 6, "movie_id": 4}, bias_terms=True)
    model.build()
    table = model.embedding_layers["user_id"].embeddings
    initial = np.array(keras.ops.convert_to_numpy(table))
    rate, decay = 0.01, 2.0
    model.compile(
        optimizer=optimizers.SparseAdam(rate, weight_decay=decay), loss="mse"
    )
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, fast=fast)
    steps = 2 * 4
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(table)[5],
        initial[5] * (1 - rate * decay) ** steps,
        rtol=1e-5,
    )
    # The trained rows moved by more than the decay.
    assert not np.allclose(
        keras.ops.convert_to_numpy(table)[:5],
        initial[:5] * (1 - rate * decay) ** steps,
    )


def test_weight_decay_round_trips_through_the_config():
    optimizer = optimizers.SparseAdam(2e-3, weight_decay=0.25)
    config = optimizer.get_config()
    assert config["weight_decay"] == 0.25
    restored = optimizers.SparseAdam.from_config(config)
    assert restored.weight_decay == 0.25


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "0.1"])
def test_weight_decay_must_be_a_finite_non_negative_number(value):
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.SparseAdam(1e-3, weight_decay=value)


def test_validation_sees_the_owed_decay():
    # Validation rows of a user never trained on: its row is decayed at
    # the end of each epoch, so the last epoch's validation loss is what
    # `evaluate` gives after `fit`.
    rng = np.random.default_rng(4)
    x = {
        "user_id": rng.integers(0, 5, 64).astype("int32"),
        "movie_id": rng.integers(0, 4, 64).astype("int32"),
    }
    y = rng.uniform(1, 5, 64).astype("float32")
    x_val = {
        "user_id": np.full(8, 5, "int32"),
        "movie_id": np.arange(8, dtype="int32") % 4,
    }
    y_val = rng.uniform(1, 5, 8).astype("float32")
    keras.utils.set_random_seed(0)
    model = RatingModel({"user_id": 6, "movie_id": 4})
    model.compile(
        optimizer=optimizers.SparseAdam(0.05, weight_decay=5.0), loss="mse"
    )
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        validation_data=(x_val, y_val),
        verbose=0,
        fast=True,
    )
    after = model.evaluate(x_val, y_val, verbose=0)
    np.testing.assert_allclose(
        history.history["val_loss"][-1], after, rtol=1e-5
    )


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="TensorFlow's loop passes tf.IndexedSlices, not RowGradient",
)
@pytest.mark.parametrize("decay", [None, DECAY])
def test_rows_given_with_the_gradient_give_the_same_update(decay):
    # The device loops pass the rows they read with the gradient, so the
    # optimizer decays and updates them in one write: the same values as
    # reading them itself.
    rng = np.random.default_rng(3)
    initial = rng.normal(size=(8, 3)).astype(np.float32)
    steps = _steps(rng)
    tables = []
    for given in (False, True):
        table = keras.Variable(initial)
        optimizer = optimizers.SparseAdam(
            LR, epsilon=EPSILON, weight_decay=decay
        )
        optimizer.build([table])
        for rows, grads in steps:
            unique, inverse = np.unique(rows, return_inverse=True)
            summed = np.zeros((len(unique), grads.shape[1]), np.float32)
            np.add.at(summed, inverse, grads)
            current = np.array(keras.ops.convert_to_numpy(table))[unique]
            gradient = optimizers.RowGradient(
                keras.ops.convert_to_tensor(unique.astype(np.int32)),
                keras.ops.convert_to_tensor(summed),
                keras.ops.convert_to_tensor(current) if given else None,
            )
            optimizer.apply([gradient], [table])
        optimizer.finalize_variable_values([table])
        tables.append(np.array(keras.ops.convert_to_numpy(table)))
    np.testing.assert_allclose(tables[1], tables[0], rtol=1e-6, atol=1e-7)
    reference = lazy_adam_reference(initial, steps, decay or 0.0)
    np.testing.assert_allclose(tables[1], reference, rtol=1e-5, atol=1e-6)
    # Row 6 is never touched: only the decay moves it.
    expected = initial[6] * (1 - LR * (decay or 0.0)) ** len(steps)
    np.testing.assert_allclose(tables[1][6], expected, rtol=1e-5)
