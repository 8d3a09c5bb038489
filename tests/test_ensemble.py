"""RatingEnsemble: a fixed weighted average of trained rating models."""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import ItemAutoencoder
from keras_catembed import RatingEnsemble
from keras_catembed import RatingModel
from keras_catembed.training import Recipe

USERS, MOVIES, GENRES = 10, 8, 3


def data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, USERS, n).astype("int32"),
        "movie_id": rng.integers(0, MOVIES, n).astype("int32"),
        "genre": rng.integers(0, GENRES, n).astype("int32"),
    }
    y = rng.integers(1, 6, n).astype("float32")
    return x, y


def rating_model(columns=("user_id", "movie_id"), **kwargs):
    sizes = {"user_id": USERS, "movie_id": MOVIES, "genre": GENRES}
    model = RatingModel({c: sizes[c] for c in columns}, **kwargs)
    model.compile(optimizer="adam", loss="mse")
    return model


def autoencoder():
    model = ItemAutoencoder(
        {"user_id": USERS, "movie_id": MOVIES}, hidden_units=4
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def compiled(ensemble):
    ensemble.compile(
        loss="mse", metrics=[keras.metrics.RootMeanSquaredError(name="rmse")]
    )
    return ensemble


def unseen(x_train, test):
    """The rows of `test` whose (user, movie) pair is not in `x_train`."""
    x, y = test
    pairs = (x_train["user_id"].tolist(), x_train["movie_id"].tolist())
    seen = set(zip(*pairs, strict=True))
    keep = np.array(
        [
            (u, m) not in seen
            for u, m in zip(
                x["user_id"].tolist(), x["movie_id"].tolist(), strict=True
            )
        ]
    )
    return {k: v[keep] for k, v in x.items()}, y[keep]


def member_inputs(model, x):
    return {column: x[column] for column in model.columns}


def numpy_weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_it_predicts_the_weighted_average_of_its_members_clipped():
    x, y = data()
    first = rating_model(implicit=True)
    second = rating_model(columns=("user_id", "movie_id", "genre"))
    third = autoencoder()
    ensemble = RatingEnsemble(
        [first, second, third], weights=[2, 1, 1], rating_range=(1, 4.5)
    )
    assert ensemble.columns == ["user_id", "movie_id", "genre"]
    ensemble.fit(x, y, epochs=2, verbose=0)
    each = [m.predict(member_inputs(m, x), verbose=0) for m in ensemble.members]
    expected = np.clip(0.5 * each[0] + 0.25 * each[1] + 0.25 * each[2], 1, 4.5)
    np.testing.assert_allclose(
        ensemble.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5
    )
    assert ensemble.member_weights == [0.5, 0.25, 0.25]


def test_predict_on_arrays_runs_member_by_member_as_keras_loop_does():
    x, y = data()
    members = [rating_model(implicit=True), autoencoder()]
    ensemble = RatingEnsemble(members, weights=[3, 1], rating_range=(1, 3.5))
    ensemble.fit(x, y, epochs=2, verbose=0)
    calls = []
    for member in members:
        own = member.predict

        def spy(inputs, *args, own=own, member=member, **kwargs):
            calls.append((member.name, kwargs.get("batch_size")))
            return own(inputs, *args, **kwargs)

        member.predict = spy
    by_member = ensemble.predict(x, batch_size=16, verbose=0)
    # The autoencoder takes its own large batches, the model the caller's.
    assert calls == [(members[0].name, 16), (members[1].name, 65536)]
    assert by_member.shape == (len(y), 1)
    # Keras's loop, where each batch of 16 rows runs both members (a
    # callback sends `predict` there), predicts the same ratings.
    keras_loop = ensemble.predict(
        x, batch_size=16, verbose=0, callbacks=[keras.callbacks.Callback()]
    )
    assert len(calls) == 2
    np.testing.assert_allclose(by_member, keras_loop, rtol=1e-5, atol=1e-5)
    # Some averages were clipped to the range, in both ways.
    each = [
        m.__class__.predict(m, member_inputs(m, x), verbose=0) for m in members
    ]
    raw = 0.75 * each[0] + 0.25 * each[1]
    assert np.any((raw < 1) | (raw > 3.5))
    np.testing.assert_allclose(
        by_member, np.clip(raw, 1, 3.5), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="batch_size"):
        ensemble.predict(x, batch_size=0, verbose=0)


def test_a_subclass_that_overrides_call_predicts_with_its_call():
    class Shifted(RatingEnsemble):
        def call(self, inputs, training=None):
            return super().call(inputs, training=training) + 1.0

    x, y = data()
    members = [rating_model(), autoencoder()]
    plain = RatingEnsemble(members)
    shifted = Shifted(members)
    plain.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_allclose(
        shifted.predict(x, batch_size=32, verbose=0),
        plain.predict(x, batch_size=32, verbose=0) + 1.0,
        rtol=1e-5,
        atol=1e-5,
    )


def test_equal_weights_by_default_and_evaluate_scores_the_average_alone():
    x, y = data()
    # The autoencoder's loss carries its L2 penalty.
    members = [rating_model(), autoencoder()]
    ensemble = compiled(RatingEnsemble(members))
    ensemble.fit(x, y, epochs=1, verbose=0)
    x_test, y_test = unseen(x, data(n=40, seed=1))
    average = np.mean(
        [m.predict(member_inputs(m, x_test), verbose=0) for m in members],
        axis=0,
    ).reshape(-1)
    scores = ensemble.evaluate(x_test, y_test, verbose=0, return_dict=True)
    mse = float(np.mean((average - y_test) ** 2))
    # The members' penalties are not part of the ensemble's loss.
    assert scores["loss"] == pytest.approx(mse, rel=1e-4)
    assert scores["rmse"] == pytest.approx(np.sqrt(mse), rel=1e-4)


def test_fit_trains_adapts_and_follows_each_members_recipe():
    x, y = data()
    plain = rating_model()
    paired = RatingModel({"user_id": USERS, "movie_id": MOVIES}, implicit=True)
    paired.recipe = Recipe(
        optimizer="adam", learning_rate=0.01, batch_size=30, epochs=3
    )
    ensemble = RatingEnsemble([plain, paired])
    before = plain.predict(member_inputs(plain, x), verbose=0)
    histories = ensemble.fit(x, y, epochs=2, batch_size=45, verbose=0)
    assert len(histories) == 2
    assert len(histories[0].history["loss"]) == 2
    assert int(plain.optimizer.iterations.numpy()) == 2 * 2
    # The recipe's epochs and batch size, and it compiled the member.
    assert len(histories[1].history["loss"]) == 3
    assert int(paired.optimizer.iterations.numpy()) == 3 * 3
    assert paired.implicit_layers["user_id"].adapted
    assert not np.allclose(
        before, plain.predict(member_inputs(plain, x), verbose=0)
    )


def test_fit_refuses_before_any_member_trains():
    x, y = data()
    trained = rating_model()
    uncompiled = RatingModel({"user_id": USERS, "movie_id": MOVIES})
    ensemble = RatingEnsemble([trained, uncompiled])
    before = numpy_weights(trained)
    with pytest.raises(ValueError, match="is not compiled and has no"):
        ensemble.fit(x, y, epochs=1, verbose=0)
    bad = {**x, "movie_id": np.where(np.arange(len(y)) == 4, 99, x["movie_id"])}
    ensemble = RatingEnsemble([trained, autoencoder()])
    with pytest.raises(ValueError, match=r"Column 'movie_id'.*unknown id 99"):
        ensemble.fit(bad, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="needs the ratings"):
        ensemble.fit(x, None, verbose=0)
    with pytest.raises(ValueError, match=r"Missing: \['genre'\]"):
        RatingEnsemble([rating_model(columns=("user_id", "genre"))]).fit(
            {"user_id": x["user_id"]}, y, verbose=0
        )
    zero = np.where(np.arange(len(y)) == 3, 0.0, y)
    with pytest.raises(ValueError, match="rating of 0"):
        ensemble.fit(x, zero, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"`validation_data`: .*rating of 0"):
        ensemble.fit(x, y, epochs=1, verbose=0, validation_data=(x, zero))
    with pytest.raises(ValueError, match=r"\['sample_weight'\].*member"):
        ensemble.fit(x, y, epochs=1, verbose=0, sample_weight=np.ones_like(y))
    with pytest.raises(ValueError, match="rows"):
        ensemble.fit(x, y[:-3], epochs=1, verbose=0)
    for old, new in zip(before, numpy_weights(trained), strict=True):
        np.testing.assert_array_equal(old, new)
    assert int(trained.optimizer.iterations.numpy()) == 0


def test_predict_runs_every_members_checks_first():
    x, y = data()
    first, second = rating_model(), autoencoder()
    ensemble = RatingEnsemble([first, second])
    ensemble.fit(x, y, epochs=1, verbose=0)
    bad = {
        **x,
        "user_id": np.where(np.arange(len(y)) == 2, USERS, x["user_id"]),
    }
    with pytest.raises(ValueError, match=r"Column 'user_id'.*unknown id 10"):
        ensemble.predict(bad, verbose=0)
    with pytest.raises(ValueError, match="expects a dict keyed by column"):
        ensemble.predict(np.zeros((3, 2)), verbose=0)
    unadapted = RatingEnsemble(
        [RatingModel({"user_id": USERS, "movie_id": MOVIES}, implicit=True)]
    )
    with pytest.raises(ValueError, match="holds no pairs yet"):
        unadapted.predict(x, verbose=0)
    unfitted = RatingEnsemble([first, autoencoder()])
    with pytest.raises(ValueError, match="needs the model's ratings"):
        unfitted.predict(x, verbose=0)


def test_it_takes_data_frames_and_lists_like_its_members():
    import pandas as pd

    x, y = data()
    ensemble = compiled(RatingEnsemble([rating_model(), autoencoder()]))
    ensemble.fit(pd.DataFrame(x), y, epochs=1, verbose=0)
    expected = ensemble.predict(x, verbose=0)
    np.testing.assert_allclose(
        ensemble.predict(pd.DataFrame(x), verbose=0), expected, rtol=1e-6
    )
    lists = {k: v.tolist() for k, v in x.items()}
    np.testing.assert_allclose(
        ensemble.predict(lists, verbose=0), expected, rtol=1e-6
    )
    with pytest.raises(ValueError, match="rows"):
        ensemble.evaluate(x, y[:-5], verbose=0)


def test_evaluate_warns_when_rows_trained_a_member():
    x, y = data()
    ensemble = compiled(RatingEnsemble([rating_model(), rating_model()]))
    ensemble.fit(x, y, epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="rows this model was trained on"):
        ensemble.evaluate(x, y, verbose=0)
    x_test, y_test = unseen(x, data(n=40, seed=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ensemble.evaluate(x_test, y_test, verbose=0)
    with pytest.raises(ValueError, match="You must call `compile"):
        RatingEnsemble([rating_model()]).evaluate(x, y, verbose=0)


def test_save_and_load_keep_members_weights_and_pairs(tmp_path):
    x, y = data()
    paired = rating_model(implicit=True)
    paired.recipe = Recipe(optimizer="adam", batch_size=30, epochs=2)
    ensemble = compiled(
        RatingEnsemble(
            [paired, autoencoder()], weights=[0.7, 0.3], rating_range=(1, 5)
        )
    )
    ensemble.fit(x, y, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "ensemble.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ensemble.save(path)
        loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RatingEnsemble)
    assert [type(m) for m in loaded.members] == [RatingModel, ItemAutoencoder]
    assert loaded.member_weights == pytest.approx([0.7, 0.3])
    assert loaded.rating_range == (1.0, 5.0)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), ensemble.predict(x, verbose=0), rtol=1e-6
    )
    assert loaded.compiled
    # The members' recipes come back: a refit trains as the first fit.
    first_recipe = ensemble.members[0].recipe
    assert loaded.members[0].recipe.get_config() == first_recipe.get_config()
    assert getattr(loaded.members[1], "recipe", None) is None
    x_test, y_test = unseen(x, data(n=30, seed=5))
    np.testing.assert_allclose(
        loaded.evaluate(x_test, y_test, verbose=0),
        ensemble.evaluate(x_test, y_test, verbose=0),
        rtol=1e-5,
    )


def test_it_is_public():
    assert keras_catembed.RatingEnsemble is RatingEnsemble
    assert "RatingEnsemble" in keras_catembed.__all__


@pytest.mark.parametrize(
    "members, weights, message",
    [
        ([], None, "non-empty list of Keras models"),
        ("model", None, "non-empty list of Keras models"),
        (["not a model"], None, "non-empty list of Keras models"),
        (None, [1.0], "2 positive finite numbers"),
        (None, [1.0, 0.0], "2 positive finite numbers"),
        (None, [1.0, float("nan")], "2 positive finite numbers"),
        (None, [1.0, True], "2 positive finite numbers"),
    ],
)
def test_bad_arguments_name_the_argument(members, weights, message):
    if members is None:
        members = [rating_model(), rating_model()]
    with pytest.raises(ValueError, match=message):
        RatingEnsemble(members, weights=weights)


def test_one_model_twice_is_refused():
    model = rating_model()
    with pytest.raises(ValueError, match="one model twice"):
        RatingEnsemble([model, model])
