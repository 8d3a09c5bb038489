"""Keras's stock `fit` loop of `RatingModel`: a new order every epoch.

On TensorFlow, Keras shuffles arrays inside a `tf.data` pipeline whose
seed is fixed once `keras.utils.set_random_seed` has run, so each epoch
of a seeded stock `fit` would repeat the first one's order; the model
feeds its arrays through `_epoch_order.ShuffledBatches` there instead.
"""

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import _epoch_order

ROWS, USERS = 12, 12


class OrderProbe(keras_catembed.RatingModel):
    """Records the user ids of every training batch (eager steps)."""

    def train_step(self, *args):
        # `(data)`, or `(state, data)` on JAX.
        data = args[-1]
        users = keras.ops.convert_to_numpy(data[0]["user_id"])
        self.__dict__.setdefault("seen", []).append(np.asarray(users).tolist())
        self.__dict__["target_dtype"] = keras.backend.standardize_dtype(
            data[1].dtype
        )
        return super().train_step(*args)


def _data():
    x = {
        "user_id": np.arange(ROWS, dtype="int64"),
        "movie_id": np.arange(ROWS, dtype="int64") % 3,
    }
    y = np.linspace(1.0, 5.0, ROWS).astype("float32")
    return x, y


def _fitted(seed, batch_size=ROWS, **kwargs):
    keras.utils.set_random_seed(seed)
    model = OrderProbe({"user_id": USERS, "movie_id": 3}, hidden_units=[4])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    x, y = _data()
    history = model.fit(
        x, y, batch_size=batch_size, epochs=3, verbose=0, **kwargs
    )
    return model, history


@pytest.mark.parametrize("fast", [False, "auto"])
def test_a_seeded_stock_fit_draws_a_new_order_every_epoch(fast):
    # `run_eagerly` sends "auto" to the stock loop too.
    model, _ = _fitted(4, fast=fast)
    orders = model.seen
    assert len(orders) == 3
    for order in orders:
        assert sorted(order) == list(range(ROWS))
    assert len({tuple(order) for order in orders}) == 3
    again, _ = _fitted(4, fast=fast)
    assert again.seen == orders


def test_unshuffled_stock_fit_keeps_the_rows_in_order():
    # Keras's own loop, which `fit` leaves unshuffled arrays to.
    model, _ = _fitted(4, batch_size=5, fast=False, shuffle=False)
    expected = [list(range(0, 5)), list(range(5, 10)), [10, 11]] * 3
    assert model.seen == expected


def test_float64_ratings_train_as_floatx():
    keras.utils.set_random_seed(0)
    model = OrderProbe({"user_id": USERS, "movie_id": 3}, hidden_units=[4])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    x, y = _data()
    model.fit(x, y.astype("float64"), batch_size=4, fast=False, verbose=0)
    assert model.target_dtype == keras.config.floatx()
    assert sorted(u for batch in model.seen for u in batch) == list(range(12))


def test_steps_per_epoch_keeps_one_pass_over_the_rows_across_epochs():
    # Passes that span epochs stay with Keras's loop: every row once per
    # pass of three steps, here one pass over two epochs.
    model, _ = _fitted(4, batch_size=4, fast="auto", steps_per_epoch=3)
    assert len(model.seen) == 9
    for start in (0, 3, 6):
        rows = sorted(u for b in model.seen[start : start + 3] for u in b)
        assert rows == list(range(ROWS))


def test_a_split_with_no_rows_on_one_side_is_refused_before_training():
    keras.utils.set_random_seed(0)
    model = OrderProbe({"user_id": USERS, "movie_id": 3}, hidden_units=[4])
    model.build()
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    x, y = _data()
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    with pytest.raises(ValueError, match="not sufficient to split"):
        model.fit(x, y, validation_split=0.99, fast=False, verbose=0)
    assert "seen" not in model.__dict__
    for weight, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), value)


def test_validation_split_and_sample_weight_in_the_stock_loop():
    # Weights of 0 on the last row: a loss that dropped the weights, or
    # took another row's, would not match the weighted evaluation.
    weights = np.ones(ROWS, "float32")
    weights[-1] = 0.0
    weights[9] = 3.0
    model, history = _fitted(
        2,
        batch_size=4,
        fast=False,
        validation_split=0.25,
        sample_weight=weights,
    )
    # The last quarter (rows 9..11) validates and never trains.
    trained = sorted(user for batch in model.seen for user in batch)
    assert trained == sorted(list(range(9)) * 3)
    x, y = _data()
    expected = model.evaluate(
        {k: v[9:] for k, v in x.items()},
        y[9:],
        sample_weight=weights[9:],
        verbose=0,
        return_dict=True,
    )
    assert history.history["val_loss"][-1] == pytest.approx(
        expected["loss"], rel=1e-5
    )


def test_shuffled_batches_cover_every_row_once_and_repeat_with_a_seed():
    arrays = ({"a": np.arange(10)}, np.arange(10) * 2)
    keras.utils.set_random_seed(1)
    batches = _epoch_order.ShuffledBatches(arrays, 4, shuffle=True)
    assert len(batches) == 3
    first = np.concatenate([batches[i][0]["a"] for i in range(3)])
    targets = np.concatenate([batches[i][1] for i in range(3)])
    np.testing.assert_array_equal(targets, first * 2)
    batches.on_epoch_end()
    second = np.concatenate([batches[i][0]["a"] for i in range(3)])
    np.testing.assert_array_equal(np.sort(first), np.arange(10))
    np.testing.assert_array_equal(np.sort(second), np.arange(10))
    assert not np.array_equal(first, second)
    keras.utils.set_random_seed(1)
    again = _epoch_order.ShuffledBatches(arrays, 4, shuffle=True)
    np.testing.assert_array_equal(
        np.concatenate([again[i][0]["a"] for i in range(3)]), first
    )
