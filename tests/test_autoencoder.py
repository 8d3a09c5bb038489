"""ItemAutoencoder: I-AutoRec trained on items, predicting (user, item) rows."""

import os

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import ItemAutoencoder
from keras_catembed._item_batches import masked_squared_error
from keras_catembed.autoencoder import MATRIX_LIMIT
from keras_catembed.training import Recipe

USERS, ITEMS = 12, 9
COLUMNS = {"user_id": USERS, "movie_id": ITEMS}


def data(n=80, seed=0, users=USERS, items=ITEMS):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, users, n).astype("int32"),
        "movie_id": rng.integers(0, items, n).astype("int32"),
    }
    y = rng.integers(1, 6, n).astype("float32")
    return x, y


def unseen(x_train, test):
    """The rows of `test` whose (user, movie) pair is not in `x_train`."""
    x, y = test
    pairs = (x_train["user_id"].tolist(), x_train["movie_id"].tolist())
    seen = set(zip(*pairs, strict=True))
    keep = np.array(
        [
            pair not in seen
            for pair in zip(
                x["user_id"].tolist(), x["movie_id"].tolist(), strict=True
            )
        ]
    )
    return {k: v[keep] for k, v in x.items()}, y[keep]


def compiled(**kwargs):
    model = ItemAutoencoder(COLUMNS, hidden_units=6, **kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return model


def numpy_weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def hand_prediction(model, users, items):
    """sigmoid(r[i] @ W + b) . v[u] + c[u], or the mean where unknown."""
    matrix = keras.ops.convert_to_numpy(model.item_ratings.embeddings)
    kernel = keras.ops.convert_to_numpy(model.encoder.kernel)
    bias = keras.ops.convert_to_numpy(model.encoder.bias)
    vectors = keras.ops.convert_to_numpy(model.user_vectors.embeddings)
    user_bias = keras.ops.convert_to_numpy(model.user_bias.embeddings)
    code = 1.0 / (1.0 + np.exp(-(matrix[items] @ kernel + bias)))
    rating = np.sum(code * vectors[users], axis=-1) + user_bias[users, 0]
    known = (matrix.sum(axis=1)[items] > 0) & (matrix.sum(axis=0)[users] > 0)
    return np.where(known, rating, float(model.mean_rating.numpy()))


def test_adapt_stores_the_ratings_by_item_and_marks_known_ids():
    model = ItemAutoencoder(COLUMNS, hidden_units=4)
    x = {"user_id": np.array([0, 3, 3, 5]), "movie_id": np.array([2, 2, 7, 2])}
    y = np.array([4.0, 1.0, 5.0, 2.0], "float32")
    model.adapt(x, y)
    matrix = keras.ops.convert_to_numpy(model.item_ratings.embeddings)
    assert matrix.shape == (ITEMS, USERS)
    expected = np.zeros((ITEMS, USERS), "float32")
    expected[[2, 2, 7, 2], [0, 3, 3, 5]] = y
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.known_users),
        np.isin(np.arange(USERS), [0, 3, 5]).astype("float32"),
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.known_items),
        np.isin(np.arange(ITEMS), [2, 7]).astype("float32"),
    )
    assert float(model.mean_rating.numpy()) == pytest.approx(3.0)
    assert model.adapted


def fitted_without_some_ids():
    """A model fitted without users 10, 11 and item 8; every pair.

    Returns the model, the fitted ratings and the users and items of
    every (user, item) pair.
    """
    model = compiled()
    x, y = data()
    keep = (x["user_id"] < 10) & (x["movie_id"] < 8)
    model.fit({k: v[keep] for k, v in x.items()}, y[keep], epochs=2, verbose=0)
    users = np.repeat(np.arange(USERS), ITEMS)
    items = np.tile(np.arange(ITEMS), USERS)
    return model, y[keep], users, items


def test_predictions_match_a_hand_computation_and_unknown_ids_get_the_mean():
    model, fitted, users, items = fitted_without_some_ids()
    predicted = model.predict(
        {"user_id": users, "movie_id": items}, verbose=0
    ).reshape(-1)
    expected = hand_prediction(model, users, items)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)
    unknown = (users >= 10) | (items == 8)
    np.testing.assert_allclose(predicted[unknown], np.mean(fitted), rtol=1e-6)


def test_rating_range_clips_the_predictions():
    model = compiled(rating_range=(2.5, 3.0))
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    predicted = model.predict(x, verbose=0)
    assert predicted.min() >= 2.5 and predicted.max() <= 3.0
    raw = hand_prediction(model, x["user_id"], x["movie_id"])
    np.testing.assert_allclose(
        predicted.reshape(-1), np.clip(raw, 2.5, 3.0), rtol=1e-5, atol=1e-5
    )


def test_the_item_batches_fit_trains_are_the_rows_the_model_predicts():
    model = compiled()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    matrix = keras.ops.convert_to_numpy(model.item_ratings.embeddings)
    items = model._item_batch_model()
    every_user = keras.ops.convert_to_numpy(items(matrix))
    rated = np.flatnonzero(matrix.sum(axis=1))
    for item in rated:
        rows = {
            "user_id": np.flatnonzero(matrix.sum(axis=0)),
        }
        rows["movie_id"] = np.full_like(rows["user_id"], item)
        np.testing.assert_allclose(
            model.predict(rows, verbose=0).reshape(-1),
            every_user[item, rows["user_id"]],
            rtol=1e-5,
            atol=1e-5,
        )


def test_fit_minimizes_the_masked_error_and_its_penalty():
    model = compiled(l2=0.0)
    x, y = data(n=200)
    history = model.fit(x, y, epochs=40, batch_size=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    # Without a penalty the loss is the mean over items of the squared
    # error summed over each item's rated entries.
    matrix = keras.ops.convert_to_numpy(model.item_ratings.embeddings)
    rated = matrix[np.flatnonzero(matrix.sum(axis=1))]
    reconstruction = keras.ops.convert_to_numpy(
        model._item_batch_model()(rated)
    )
    expected = keras.ops.convert_to_numpy(
        masked_squared_error(rated, reconstruction)
    )
    rated_mask = rated != 0
    hand = ((rated - reconstruction) ** 2 * rated_mask).sum(axis=1)
    np.testing.assert_allclose(expected, hand, rtol=1e-5)


def test_the_penalty_is_l2_over_two_per_item_on_both_kernels():
    model = compiled(l2=6.0)
    items = model._item_batch_model()
    penalty = sum(float(keras.ops.convert_to_numpy(v)) for v in items.losses)
    kernel = keras.ops.convert_to_numpy(model.encoder.kernel)
    vectors = keras.ops.convert_to_numpy(model.user_vectors.embeddings)
    expected = 6.0 / (2 * ITEMS) * ((kernel**2).sum() + (vectors**2).sum())
    assert penalty == pytest.approx(expected, rel=1e-5)
    # The loss fit minimizes: the masked error, a mean over items, plus
    # the penalty (whatever loss `compile` was given).
    x, y = data()
    model.adapt(x, y)
    matrix = keras.ops.convert_to_numpy(model.item_ratings.embeddings)
    rated = matrix[np.flatnonzero(matrix.sum(axis=1))]
    reconstruction = keras.ops.convert_to_numpy(items(rated))
    masked = (((rated - reconstruction) ** 2) * (rated != 0)).sum(axis=1)
    loss = items.evaluate(rated, rated, batch_size=len(rated), verbose=0)
    assert loss == pytest.approx(masked.mean() + expected, rel=1e-4)
    # Row scores leave the penalty out, and warn on stored ratings.
    with pytest.warns(UserWarning, match="% of the evaluated rows"):
        scores = model.evaluate(x, y, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(scores["rmse"] ** 2, rel=1e-4)


def test_validation_data_reports_row_metrics_each_epoch_for_early_stopping():
    model = compiled()
    x, y = data(n=120)
    x_val, y_val = unseen(x, data(n=30, seed=1))
    stop = keras.callbacks.EarlyStopping(
        monitor="val_rmse", mode="min", patience=1, min_delta=0.05
    )
    history = model.fit(
        x,
        y,
        epochs=200,
        verbose=0,
        validation_data=(x_val, y_val),
        callbacks=[stop],
    )
    scores = history.history["val_rmse"]
    assert len(scores) < 200
    # The last epoch's score is the model's own.
    final = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    assert scores[-1] == pytest.approx(final["rmse"], rel=1e-5)


def test_validation_scores_the_rows_in_large_batches(monkeypatch):
    model = compiled()
    x, y = data(n=120)
    x_val, y_val = unseen(x, data(n=30, seed=1))
    sizes, evaluate = [], model.evaluate

    def spy(*args, **kwargs):
        sizes.append(kwargs.get("batch_size"))
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(model, "evaluate", spy)
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x_val, y_val))
    # Each batch encodes every item once: few large batches.
    assert sizes == [65536, 65536]


def test_adapt_after_fit_changes_what_an_item_is_described_by():
    model = compiled()
    x, y = data()
    model.fit(x, y, epochs=3, verbose=0)
    rows = {"user_id": np.array([0]), "movie_id": np.array([1])}
    before = model.predict(rows, verbose=0)
    matrix = keras.ops.convert_to_numpy(model.item_ratings.embeddings)
    # User 3 rates item 1 anew (the later rating of a pair is kept).
    x2 = {
        "user_id": np.append(x["user_id"], 3),
        "movie_id": np.append(x["movie_id"], 1),
    }
    y2 = np.append(y, 1.0 if matrix[1, 3] == 5 else 5.0).astype("float32")
    weights = numpy_weights(model)
    model.adapt(x2, y2)
    # Only the stored ratings changed, and so the prediction.
    assert not np.allclose(model.predict(rows, verbose=0), before)
    for old, new, variable in zip(
        weights, numpy_weights(model), model.weights, strict=True
    ):
        if variable.trainable:
            np.testing.assert_array_equal(old, new)


def test_save_and_load_keep_ratings_weights_and_settings(tmp_path):
    model = compiled(rating_range=(1, 5), l2=3.0)
    x, y = data()
    model.fit(x, y, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "autoencoder.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ItemAutoencoder)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
    assert loaded.rating_range == (1.0, 5.0)
    x_test, y_test = unseen(x, data(n=30, seed=4))
    np.testing.assert_allclose(
        loaded.evaluate(x_test, y_test, verbose=0),
        model.evaluate(x_test, y_test, verbose=0),
        rtol=1e-5,
    )
    # Training goes on from the loaded state, as from the original's.
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, verbose=0, shuffle=False)
    assert int(loaded.optimizer.iterations.numpy()) == int(
        model.optimizer.iterations.numpy()
    )
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4
    )


def test_recipe_trains_it_in_batches_of_items():
    model = ItemAutoencoder(COLUMNS, hidden_units=4)
    x, y = data()
    recipe = Recipe(
        optimizer="adam",
        learning_rate=0.01,
        schedule="constant",
        batch_size=3,
        epochs=2,
    )
    history = recipe.fit(model, x, y, verbose=0)
    assert len(history.history["loss"]) == 2
    # 9 rated items in batches of 3: three steps per epoch.
    assert int(model.optimizer.iterations.numpy()) == 2 * 3


def test_a_cosine_recipe_spans_the_item_steps():
    model = ItemAutoencoder(COLUMNS, hidden_units=4)
    x, y = data()
    assert model.fit_rows(x) == 9
    recipe = Recipe(0.01, schedule="cosine", batch_size=3, epochs=2)
    recipe.fit(model, x, y, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2 * 3
    # The schedule ends with the last step: its rate has decayed to 0.
    rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert rate == pytest.approx(0.0, abs=1e-6)


def test_it_is_public():
    assert keras_catembed.ItemAutoencoder is ItemAutoencoder
    assert "ItemAutoencoder" in keras_catembed.__all__


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"embeddings": {"user_id": 3}}, "two columns"),
        ({"embeddings": {"a": 2, "b": 2, "c": 2}}, "two columns"),
        (
            {"embeddings": {"user_id": 0, "movie_id": 4}},
            r"embeddings\['user_id'\]` must be a positive integer",
        ),
        ({"hidden_units": 0}, "hidden_units"),
        ({"l2": -1.0}, "`l2` must be a finite number >= 0"),
        ({"rating_range": (5, 1)}, "rating_range"),
        (
            {"embeddings": {"user_id": MATRIX_LIMIT // 2 + 1, "movie_id": 2}},
            "at most",
        ),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    kwargs = {"embeddings": COLUMNS, **kwargs}
    with pytest.raises(ValueError, match=message):
        ItemAutoencoder(**kwargs)


def test_bad_calls_raise_before_anything_changes():
    model = compiled()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    weights = numpy_weights(model)
    iterations = int(model.optimizer.iterations.numpy())
    bad = np.arange(len(y)) == 5
    bad_id = {**x, "movie_id": np.where(bad, ITEMS, x["movie_id"])}
    with pytest.raises(ValueError, match=r"Column 'movie_id'.*unknown id 9"):
        model.fit(bad_id, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="rating of 0"):
        model.fit(x, np.where(np.arange(len(y)) == 3, 0.0, y), verbose=0)
    with pytest.raises(ValueError, match="one rating per row"):
        model.fit(x, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="needs the ratings"):
        model.fit(x, None, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, verbose=0, validation_data=(bad_id, y))
    with pytest.raises(ValueError, match=r"Column 'user_id'.*unknown id 12"):
        model.predict({"user_id": np.array([USERS]), "movie_id": np.array([0])})
    with pytest.raises(ValueError, match=r"Targets"):
        model.adapt(x, np.where(np.arange(len(y)) == 2, np.nan, y))
    for old, new in zip(weights, numpy_weights(model), strict=True):
        np.testing.assert_array_equal(old, new)
    assert int(model.optimizer.iterations.numpy()) == iterations
    # Still usable.
    model.fit(x, y, epochs=1, verbose=0)


def test_a_rejected_fit_keeps_the_stored_ratings():
    model = compiled()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    stored = keras.ops.convert_to_numpy(model.item_ratings.embeddings)
    x2, y2 = data(seed=9)
    with pytest.raises(ValueError, match="`epochs` must be a positive"):
        model.fit(x2, y2, epochs="2", verbose=0)
    with pytest.raises(ValueError, match="`callbacks` expects Keras"):
        model.fit(x2, y2, callbacks=[object()], verbose=0)

    class Fails(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        model.fit(x2, y2, callbacks=[Fails()], verbose=0)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.item_ratings.embeddings), stored
    )


def test_evaluate_checks_the_ratings_and_predictions_are_float32():
    model = compiled()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="non-finite"):
        model.evaluate(x, np.where(np.arange(len(y)) == 2, np.nan, y))
    with pytest.raises(ValueError, match="rows"):
        model.evaluate(x, y[:-5], verbose=0)
    with pytest.raises(ValueError, match="numeric ratings"):
        model.fit(x, np.array(["a"] * len(y)), verbose=0)
    policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        mixed = ItemAutoencoder(COLUMNS, hidden_units=4)
        mixed.adapt(x, y)
        assert (
            keras.backend.standardize_dtype(mixed.predict(x, verbose=0).dtype)
            == "float32"
        )
    finally:
        keras.config.set_dtype_policy(policy)


def test_a_checkpoint_callback_saves_the_autoencoder(tmp_path):
    model = compiled()
    x, y = data()
    path = os.path.join(tmp_path, "best.keras")
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[keras.callbacks.ModelCheckpoint(path)],
    )
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ItemAutoencoder)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def test_predict_before_fit_and_fit_before_compile_say_what_to_do():
    model = ItemAutoencoder(COLUMNS, hidden_units=4)
    x, y = data()
    with pytest.raises(ValueError, match=r"call `fit\(x, y\)` or `adapt"):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match="You must call `compile"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="You must call `compile"):
        model.evaluate(x, y, verbose=0)


def test_each_epoch_draws_a_new_order_of_items_and_seeds_repeat_it():
    from keras_catembed._item_batches import ItemBatches

    ratings = np.arange(20, dtype="float32").reshape(10, 2)
    keras.utils.set_random_seed(3)
    batches = ItemBatches(ratings, 4, shuffle=True)
    assert len(batches) == 3
    first = np.concatenate([batches[i][0][:, 0] for i in range(3)])
    batches.on_epoch_end()
    second = np.concatenate([batches[i][0][:, 0] for i in range(3)])
    # Every item once per epoch, in a new order (Keras's own shuffle of
    # arrays on TensorFlow repeats one order once a seed is set).
    np.testing.assert_array_equal(np.sort(first), ratings[:, 0])
    np.testing.assert_array_equal(np.sort(second), ratings[:, 0])
    assert not np.array_equal(first, second)
    keras.utils.set_random_seed(3)
    again = ItemBatches(ratings, 4, shuffle=True)
    np.testing.assert_array_equal(
        np.concatenate([again[i][0][:, 0] for i in range(3)]), first
    )
    in_order = ItemBatches(ratings, 4, shuffle=False)
    np.testing.assert_array_equal(in_order[2][0], ratings[8:])


def test_seeded_fits_repeat_exactly():
    x, y = data()
    predictions = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        model = compiled()
        model.fit(x, y, epochs=3, batch_size=2, verbose=0)
        predictions.append(model.predict(x, verbose=0))
    np.testing.assert_allclose(predictions[0], predictions[1], rtol=1e-6)


class BatchCount(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_predict_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_test_batch_end(self, batch, logs=None):
        self.batches += 1


def test_small_and_large_batches_predict_the_same_ratings():
    # A batch of at least half as many rows as items encodes every item
    # once; a smaller one encodes each row's item: the same ratings.
    model, _, users, items = fitted_without_some_ids()
    rows = {"user_id": users, "movie_id": items}
    expected = hand_prediction(model, users, items)
    for batch_size in (1, 4, 5, None):
        predicted = model.predict(rows, batch_size=batch_size, verbose=0)
        np.testing.assert_allclose(
            predicted.reshape(-1), expected, rtol=1e-5, atol=1e-5
        )
    for size in (2, 60):
        direct = keras.ops.convert_to_numpy(
            model({k: v[:size] for k, v in rows.items()})
        )
        np.testing.assert_allclose(
            direct.reshape(-1), expected[:size], rtol=1e-5, atol=1e-5
        )


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="a batch size known only when the graph runs is TensorFlow's",
)
def test_a_graph_with_an_unknown_batch_size_takes_either_way():
    import tensorflow as tf

    model = compiled()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    spec = tf.TensorSpec((None,), tf.int32)
    call = tf.function(
        lambda users, items: model({"user_id": users, "movie_id": items}),
        input_signature=[spec, spec],
    )
    for size in (2, 40):
        users, items = x["user_id"][:size], x["movie_id"][:size]
        np.testing.assert_allclose(
            call(users, items).numpy().reshape(-1),
            hand_prediction(model, users, items),
            rtol=1e-5,
            atol=1e-5,
        )
    bad = np.full(40, ITEMS, "int32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="movie_id"):
        call(x["user_id"][:40], bad)


def test_predict_and_evaluate_take_large_batches_of_rows_by_default():
    model = compiled()
    x, y = data(n=200)
    model.fit(x, y, epochs=1, verbose=0)
    count = BatchCount()
    model.predict(x, verbose=0, callbacks=[count])
    model.evaluate(x, y, verbose=0, callbacks=[count])
    # Keras's own default, 32 rows, would take 7 batches each.
    assert count.batches == 2
    model.predict(x, batch_size=50, verbose=0, callbacks=[count])
    assert count.batches == 2 + 4


def test_a_large_batch_with_an_unknown_item_names_the_column():
    model = compiled()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    bad = {
        **x,
        "movie_id": np.where(np.arange(len(y)) == 7, ITEMS, x["movie_id"]),
    }
    with pytest.raises(ValueError, match=r"Column 'movie_id'.*unknown id 9"):
        model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match=r"Column 'movie_id'.*unknown id 9"):
        model(bad)
