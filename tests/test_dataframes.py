"""pandas inputs: DataFrames by column name and Series, as dicts/arrays."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_catembed

pd = pytest.importorskip("pandas")

ROOT = pathlib.Path(__file__).resolve().parent.parent
USERS, MOVIES = 10, 7


def frame(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            # Extra columns, in another order than the model's.
            "timestamp": rng.integers(0, 10**9, n),
            "movie_id": rng.integers(0, MOVIES, n),
            "rating": rng.integers(1, 6, n).astype("float32"),
            "user_id": rng.integers(0, USERS, n),
        },
        index=np.arange(1000, 1000 + n),
    )


def as_dict(df):
    return {c: df[c].to_numpy() for c in ("user_id", "movie_id")}


def make_model(**kwargs):
    model = keras_catembed.RatingModel(
        {"user_id": USERS, "movie_id": MOVIES}, hidden_units=[8], **kwargs
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="mse",
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
    )
    model.build()
    return model


def twins(**kwargs):
    a, b = make_model(**kwargs), make_model(**kwargs)
    b.set_weights(a.get_weights())
    return a, b


def weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_predict_takes_the_models_columns_by_name():
    df = frame()
    model = make_model()
    np.testing.assert_array_equal(
        model.predict(df, verbose=0), model.predict(as_dict(df), verbose=0)
    )
    np.testing.assert_array_equal(
        model.predict_on_batch(df), model.predict_on_batch(as_dict(df))
    )


@pytest.mark.parametrize("fast", ["auto", False])
def test_fit_on_a_dataframe_trains_as_on_the_dict(fast):
    df = frame()
    a, b = twins()
    common = dict(epochs=2, batch_size=16, shuffle=False, verbose=0)
    history_a = a.fit(df, df["rating"], fast=fast, **common)
    history_b = b.fit(as_dict(df), df["rating"].to_numpy(), fast=fast, **common)
    for left, right in zip(weights(a), weights(b), strict=True):
        np.testing.assert_allclose(left, right, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        history_a.history["loss"], history_b.history["loss"], rtol=1e-6
    )


def test_validation_data_and_evaluate_take_dataframes():
    df, val = frame(), frame(40, seed=1)
    a, b = twins()
    common = dict(epochs=1, batch_size=16, shuffle=False, verbose=0)
    history_a = a.fit(
        df, df["rating"], validation_data=(val, val["rating"]), **common
    )
    history_b = b.fit(
        as_dict(df),
        df["rating"].to_numpy(),
        validation_data=(as_dict(val), val["rating"].to_numpy()),
        **common,
    )
    assert history_a.history["val_loss"] == pytest.approx(
        history_b.history["val_loss"], rel=1e-6
    )
    # A one-column DataFrame works as `y` too.
    evaluated = a.evaluate(val, val[["rating"]], verbose=0, return_dict=True)
    expected = b.evaluate(
        as_dict(val), val["rating"].to_numpy(), verbose=0, return_dict=True
    )
    assert evaluated == pytest.approx(expected, rel=1e-6)
    assert a.test_on_batch(val, val["rating"]) == pytest.approx(
        b.test_on_batch(as_dict(val), val["rating"].to_numpy()), rel=1e-6
    )


def test_adapt_takes_a_dataframe_and_a_series():
    df = frame()
    a, b = twins(implicit=True, neighborhood=True)
    a.adapt(df, df["rating"])
    b.adapt(as_dict(df), df["rating"].to_numpy())
    np.testing.assert_array_equal(
        a.predict(df, verbose=0), b.predict(as_dict(df), verbose=0)
    )
    # The adapted pairs are the same, not only their effect here.
    for left, right in zip(weights(a), weights(b), strict=True):
        np.testing.assert_array_equal(left, right)


def test_recommend_takes_dataframes_for_users_and_exclude():
    df = frame()
    model = make_model()
    model.fit(df, df["rating"], epochs=1, verbose=0)
    users = pd.DataFrame({"user_id": [3, 1, 4], "note": ["a", "b", "c"]})
    items, scores = model.recommend(users, k=3, exclude=df)
    expected_items, expected_scores = model.recommend(
        np.array([3, 1, 4]), k=3, exclude=as_dict(df)
    )
    np.testing.assert_array_equal(items, expected_items)
    np.testing.assert_array_equal(scores, expected_scores)
    # A Series of users works like its array.
    items, _ = model.recommend(users["user_id"], k=3, exclude=df)
    np.testing.assert_array_equal(items, expected_items)
    rated = set(zip(df["user_id"], df["movie_id"], strict=True))
    for user, row in zip([3, 1, 4], items, strict=True):
        assert not any((user, item) in rated for item in row if item >= 0)


def test_missing_column_is_named_and_nothing_changes():
    df = frame().drop(columns=["movie_id"])
    model = make_model()
    before = weights(model)
    for call in (
        lambda: model.fit(df, df["rating"], verbose=0),
        lambda: model.predict(df, verbose=0),
        lambda: model.evaluate(df, df["rating"], verbose=0),
    ):
        with pytest.raises(
            ValueError, match=r"without the column\(s\) \['movie_id'\]"
        ):
            call()
    with pytest.raises(ValueError, match=r"`users`.*\['movie_id'\]|user_id"):
        model.recommend(pd.DataFrame({"uid": [1]}), k=2)
    with pytest.raises(ValueError, match=r"`exclude`.*\['movie_id'\]"):
        model.recommend([1], k=2, exclude=df)
    for left, right in zip(weights(model), before, strict=True):
        np.testing.assert_array_equal(left, right)


def test_missing_values_and_bad_ids_are_named():
    df = frame()
    df["movie_id"] = df["movie_id"].astype("Int64")
    df.loc[1005, "movie_id"] = pd.NA
    model = make_model()
    with pytest.raises(ValueError, match=r"'movie_id'.*row 5 \(index 1005\)"):
        model.predict(df, verbose=0)
    df = frame()
    df.loc[1002, "user_id"] = USERS + 3
    with pytest.raises(ValueError, match=r"'user_id'.*13"):
        model.fit(df, df["rating"], verbose=0)
    df = frame()
    df.loc[1003, "rating"] = np.nan
    with pytest.raises(ValueError, match="`y`.*row 3"):
        model.fit(df, df["rating"], verbose=0)
    with pytest.raises(ValueError, match=r"`y` must be one column.*'rating'"):
        model.fit(df, df[["rating", "timestamp"]], verbose=0)


def test_nullable_integer_columns_without_missing_values():
    df = frame()
    nullable = df.astype({"user_id": "Int64", "movie_id": "Int32"})
    model = make_model()
    np.testing.assert_array_equal(
        model.predict(nullable, verbose=0),
        model.predict(as_dict(df), verbose=0),
    )


def test_object_columns_are_refused_as_numpy_objects_are():
    # A column of Python objects is not read as integers: fractional or
    # bool ids and digit strings are refused, and so are ratings held as
    # objects (not truncated to whole numbers).
    df = frame()
    model = make_model()
    for values in ([1.5] * len(df), [True] * len(df), ["1"] * len(df)):
        bad = df.assign(user_id=pd.Series(values, index=df.index, dtype=object))
        with pytest.raises(ValueError, match="'user_id'.*dtype object"):
            model.predict(bad, verbose=0)
    ratings = df["rating"].astype(object)
    with pytest.raises(ValueError, match="`y` must hold numeric ratings"):
        model.evaluate(df, ratings, verbose=0)
    # Nullable floats are read as floats, not truncated.
    nullable = df["rating"].astype("Float64")
    np.testing.assert_allclose(
        model.evaluate(df, nullable, verbose=0),
        model.evaluate(df, df["rating"], verbose=0),
    )


def test_the_library_runs_without_pandas():
    # `import pandas` fails in this process: dicts of arrays still work.
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import numpy as np, keras_catembed\n"
        "m = keras_catembed.RatingModel({'u': 3, 'i': 4})\n"
        "m.compile(optimizer='adam', loss='mse')\n"
        "x = {'u': np.array([0, 1, 2]), 'i': np.array([1, 2, 3])}\n"
        "m.fit(x, np.ones(3), verbose=0)\n"
        "print(m.predict(x, verbose=0).shape)\n"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "(3, 1)"
