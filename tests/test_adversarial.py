"""Inputs that try to slip past the checks, on every backend.

Each test asserts what happens (the error and its message, or the values
returned) and that a rejected call leaves the model as it was.
"""

import functools
import os

import keras
import numpy as np
import pytest
from keras import ops

import keras_catembed

BACKEND = keras.backend.backend()
COLUMNS = {"user_id": 5, "movie_id": 4}


def _x(users=(0, 1, 2, 3, 4, 0), movies=(0, 1, 2, 3, 0, 1)):
    return {
        "user_id": np.array(users, dtype="int64"),
        "movie_id": np.array(movies, dtype="int64"),
    }


Y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], dtype="float32")


def _trained():
    model = keras_catembed.RatingModel(COLUMNS)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(_x(), Y, epochs=1, batch_size=4, verbose=0)
    return model


def _weights(model):
    return [np.array(w, copy=True) for w in model.get_weights()]


def _optimizer_state(model):
    variables = model.optimizer.variables
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def _assert_unchanged(model, weights, optimizer_state=None):
    after = model.get_weights()
    assert len(after) == len(weights)
    for before, now in zip(weights, after, strict=True):
        np.testing.assert_array_equal(now, before)
    if optimizer_state is not None:
        for before, now in zip(
            optimizer_state, _optimizer_state(model), strict=True
        ):
            np.testing.assert_array_equal(now, before)


def _assert_usable(model, tmp_path, weights):
    """Predict, evaluate, save and load all work and agree."""
    x = _x()
    expected = model.predict(x, verbose=0)
    assert expected.shape == (6, 1)
    assert np.all(np.isfinite(expected))
    logs = model.evaluate(x, Y, verbose=0, return_dict=True)
    mse = float(np.mean((expected[:, 0] - Y) ** 2))
    np.testing.assert_allclose(logs["loss"], mse, rtol=1e-5)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for before, now in zip(weights, loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(now, before)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6
    )


class _BadIds(keras.utils.PyDataset):
    """Two good batches, then one with an unknown movie id."""

    def __init__(self, with_y=False):
        super().__init__()
        self.with_y = with_y

    def __len__(self):
        return 3

    def __getitem__(self, index):
        x = _x((0, 1), (1, 9 if index == 2 else 2))
        x = {k: v.astype("int32") for k, v in x.items()}
        if self.with_y:
            return x, np.array([3.0, 4.0], dtype="float32")
        return (x,)


def _bad_generator(with_y=False):
    for index in range(3):
        x = _x((0, 1), (1, 9 if index == 2 else 2))
        x = {k: v.astype("int32") for k, v in x.items()}
        yield (x, np.array([3.0, 4.0], "float32")) if with_y else (x,)


# A failed step leaves the model as it was ---------------------------------


def test_none_column_is_a_clear_error_and_changes_nothing(tmp_path):
    model = _trained()
    weights = _weights(model)
    with pytest.raises(ValueError, match=r"Column 'movie_id' is None"):
        model.predict({"user_id": np.array([1]), "movie_id": None}, verbose=0)
    with pytest.raises(ValueError, match=r"Column 'user_id' is None"):
        model.evaluate({"user_id": None, "movie_id": np.array([1])}, [3.0])
    _assert_unchanged(model, weights)
    _assert_usable(model, tmp_path, weights)


@pytest.mark.parametrize("method", ["predict", "evaluate", "fit"])
def test_empty_input_is_a_clear_error_and_changes_nothing(method, tmp_path):
    model = _trained()
    weights = _weights(model)
    empty = {
        "user_id": np.array([], "int32"),
        "movie_id": np.array([], "int32"),
    }
    args = (empty,) if method == "predict" else (empty, np.array([], "float32"))
    with pytest.raises(
        ValueError,
        match=rf"`{method}` received no samples: column 'user_id' has 0 rows",
    ):
        getattr(model, method)(*args, verbose=0)
    _assert_unchanged(model, weights)
    _assert_usable(model, tmp_path, weights)


@pytest.mark.parametrize(
    "method, args, message",
    [
        (
            "predict",
            ({"user_id": np.array([0, 1, 2]), "movie_id": np.array([0, 1])},),
            "Column 'movie_id' has 2 rows but column 'user_id' has 3",
        ),
        (
            "evaluate",
            (_x(), Y[:5]),
            "`y` has 5 rows but column 'user_id' has 6",
        ),
        (
            "evaluate",
            (_x(), Y, None, 0, np.ones(4, "float32")),
            "`sample_weight` has 4 rows but column 'user_id' has 6",
        ),
        ("fit", (_x(), Y[:4]), "`y` has 4 rows|has 6 rows but `y` has 4"),
        ("train_on_batch", (_x(), Y[:3]), "`y` has 3 rows"),
        (
            "predict_on_batch",
            ({"user_id": np.array([0]), "movie_id": np.array([0, 1])},),
            "Column 'movie_id' has 2 rows but column 'user_id' has 1",
        ),
    ],
)
def test_inputs_of_other_lengths_are_named_and_change_nothing(
    method, args, message, tmp_path
):
    model = _trained()
    weights = _weights(model)
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(*args)
    _assert_unchanged(model, weights)
    _assert_usable(model, tmp_path, weights)


@pytest.mark.parametrize(
    "method", ["fit", "evaluate", "train_on_batch", "test_on_batch"]
)
def test_arrays_without_ratings_are_named_and_change_nothing(method, tmp_path):
    # On JAX the call failed inside Keras's loop and left the model unusable.
    model = _trained()
    weights = _weights(model)
    with pytest.raises(ValueError, match=rf"`{method}` needs the ratings `y`"):
        getattr(model, method)(_x())
    _assert_unchanged(model, weights)
    _assert_usable(model, tmp_path, weights)


@pytest.mark.parametrize("fast", [True, False])
def test_sample_weights_of_two_columns_are_named(fast, tmp_path):
    model = _trained()
    weights = _weights(model)
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, 1\).*\(6, 2\)"):
        model.fit(_x(), Y, sample_weight=np.ones((6, 2)), fast=fast, verbose=0)
    _assert_unchanged(model, weights)
    _assert_usable(model, tmp_path, weights)


def test_lists_are_columns_as_arrays_are():
    model = _trained()
    x = {"user_id": [0, 1, 2], "movie_id": [1, 2, 3]}
    arrays = {column: np.array(ids) for column, ids in x.items()}
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), model.predict(arrays, verbose=0)
    )
    assert x == {"user_id": [0, 1, 2], "movie_id": [1, 2, 3]}


def _in_graph_error():
    """What a failed in-graph id check raises on this backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.errors.InvalidArgumentError
    if BACKEND == "jax":
        import jax

        return jax.errors.JaxRuntimeError
    return ValueError


@pytest.mark.parametrize("source", ["generator", "pydataset"])
@pytest.mark.parametrize("method", ["predict", "evaluate", "fit"])
def test_bad_id_in_a_stream_fails_and_leaves_the_model_usable(
    method, source, tmp_path
):
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    with_y = method != "predict"
    data = _bad_generator(with_y) if source == "generator" else _BadIds(with_y)
    with pytest.raises(_in_graph_error(), match="unknown id"):
        getattr(model, method)(data, verbose=0)
    _assert_unchanged(model, weights, optimizer_state)
    _assert_usable(model, tmp_path, weights)
    # The checked step still works on a good stream afterwards.
    good = model.predict(
        ({k: v[:2].astype("int32") for k, v in _x().items()},) for _ in range(1)
    )
    np.testing.assert_allclose(
        good, model.predict(_x(), verbose=0)[:2], rtol=1e-6, atol=1e-6
    )


def _stream_with(bad, source):
    """Three batches of `_x()`'s first rows; the 3rd: a NaN target or an
    infinite sample weight (`bad`)."""
    x = {k: v[:4].astype("int32") for k, v in _x().items()}
    batches = []
    for index in range(3):
        y = Y[:4].copy()
        weight = np.ones(4, dtype="float32")
        if index == 2:
            if bad == "y":
                y[1] = np.nan
            else:
                weight[3] = np.inf
        batches.append((x, y, weight))
    return _as_stream(batches, source)


def _as_stream(batches, source):
    """Tuples of batches (a dict of ids first) as a generator, a tf.data
    dataset or a `PyDataset`."""
    if source == "generator":
        return (batch for batch in batches)
    if source == "tf.data":
        tf = pytest.importorskip("tensorflow")
        return tf.data.Dataset.from_tensor_slices(
            tuple(
                {k: np.stack([b[0][k] for b in batches]) for k in batches[0][0]}
                if i == 0
                else np.stack([b[i] for b in batches])
                for i in range(len(batches[0]))
            )
        )

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, index):
            return batches[index]

    return Batches()


@pytest.mark.parametrize("source", ["generator", "pydataset", "tf.data"])
@pytest.mark.parametrize(
    "bad, message",
    [
        ("y", "A batch of `y` holds .*non-finite target"),
        ("sample_weight", "`sample_weight` holds .*non-finite weight"),
    ],
)
@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_a_non_finite_target_in_a_stream_fails_and_trains_nothing(
    method, bad, message, source, tmp_path
):
    # Arrays are checked whole before a loop; a stream's batches as they
    # run. One NaN target would turn every weight into NaN.
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    with pytest.raises(_in_graph_error(), match=message):
        getattr(model, method)(_stream_with(bad, source), verbose=0)
    _assert_unchanged(model, weights, optimizer_state)
    _assert_usable(model, tmp_path, weights)


def _stream_beyond_int32(source, with_y):
    """Three int64 batches; the 3rd holds the user id 2**32 + 1, which
    32-bit integers would read as 1."""
    x = _x()
    bad = {k: v.copy() for k, v in x.items()}
    bad["user_id"][1] = 2**32 + 1
    batches = [(xs, Y) if with_y else (xs,) for xs in (x, x, bad)]
    return _as_stream(batches, source)


def _beyond_int32_error(source):
    """The error a streamed id beyond int32 raises on this backend."""
    if BACKEND == "jax" and source != "tf.data":
        # Checked on the host, before JAX reads the batch as int32.
        return ValueError
    if BACKEND == "torch":
        return ValueError
    import tensorflow as tf

    # In TensorFlow's graph, or in the tf.data pipeline on JAX.
    return tf.errors.InvalidArgumentError


@pytest.mark.parametrize("source", ["generator", "pydataset", "tf.data"])
@pytest.mark.parametrize("method", ["predict", "evaluate", "fit", "validation"])
def test_a_streamed_id_beyond_int32_fails_on_every_backend(
    method, source, tmp_path
):
    # JAX reads each batch of a stream as int32: 2**32 + 1 would become
    # user 1, a valid row and a wrong rating, unless checked before.
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    stream = _stream_beyond_int32(source, with_y=method != "predict")
    if method == "validation":
        call = functools.partial(
            model.fit, _x(), Y, validation_data=stream, batch_size=6
        )
    else:
        call = functools.partial(getattr(model, method), stream)
    with pytest.raises(
        _beyond_int32_error(source),
        match=r"(?s)Column \\?'user_id\\?'.*4294967297",
    ):
        call(verbose=0)
    _assert_unchanged(model, weights, optimizer_state)
    _assert_usable(model, tmp_path, weights)


@pytest.mark.parametrize("source", ["generator", "pydataset"])
def test_a_stream_of_unsigned_ids_predicts_as_its_arrays(source):
    # Compared with unsigned ids, the check's negative bound once wrapped
    # and rejected every id inside the graph.
    model = _trained()
    x = {k: v.astype("uint32") for k, v in _x().items()}
    expected = model.predict(_x(), verbose=0)
    np.testing.assert_allclose(
        model.predict(_as_stream([(x,)], source), verbose=0),
        expected,
        rtol=1e-6,
        atol=1e-6,
    )


def test_a_finite_stream_trains_as_its_arrays():
    # The checks change no value: a stream of finite batches trains the
    # same weights as the same batches given as arrays.
    x = {k: v[:4].astype("int32") for k, v in _x().items()}
    trained = []
    for stream in (True, False):
        keras.utils.set_random_seed(0)
        model = keras_catembed.RatingModel(COLUMNS)
        model.compile(optimizer="adam", loss="mse")
        if stream:
            batches = ((x, Y[:4]) for _ in range(3))
            model.fit(batches, epochs=1, verbose=0)
        else:
            for _ in range(3):
                model.train_on_batch(x, Y[:4])
        trained.append(model.get_weights())
    for left, right in zip(*trained, strict=True):
        np.testing.assert_allclose(left, right, rtol=1e-5, atol=1e-6)


class _GoodValidation(keras.utils.PyDataset):
    """The rows of `_x()` and `Y` in batches of 4 and 2."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        rows = slice(0, 4) if index == 0 else slice(4, 6)
        return {k: v[rows] for k, v in _x().items()}, Y[rows]


@pytest.mark.parametrize("fast", [True, False])
def test_a_stream_of_validation_batches_validates_each_epoch(fast):
    model = _trained()
    history = model.fit(
        _x(), Y, epochs=2, validation_data=_GoodValidation(), fast=fast
    )
    assert len(history.history["val_loss"]) == 2
    # The last epoch's validation scored the weights training left.
    np.testing.assert_allclose(
        history.history["val_loss"][-1],
        model.evaluate(_x(), Y, verbose=0)[0],
        rtol=1e-5,
    )


@pytest.mark.parametrize("fast", [True, False])
def test_a_bad_id_in_validation_batches_trains_nothing(fast, tmp_path):
    # The stream is checked as it runs, after an epoch of training: the
    # call fails and the model is as it was before it.
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    with pytest.raises(_in_graph_error(), match="unknown id"):
        model.fit(_x(), Y, epochs=2, validation_data=_BadIds(True), fast=fast)
    _assert_unchanged(model, weights, optimizer_state)
    _assert_usable(model, tmp_path, weights)


@pytest.mark.parametrize("split", [-0.1, 1.0, 1.5, True])
def test_validation_split_outside_0_1_is_named(split):
    model = _trained()
    weights = _weights(model)
    with pytest.raises(ValueError, match=r"`validation_split` must be a float"):
        model.fit(_x(), Y, validation_split=split, verbose=0)
    _assert_unchanged(model, weights)


def test_exception_in_a_callback_leaves_the_model_usable(tmp_path):
    class Stop(keras.callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            raise RuntimeError("stop here")

    model = _trained()
    weights = _weights(model)
    with pytest.raises(RuntimeError, match="stop here"):
        model.predict(_x(), verbose=0, callbacks=[Stop()])
    _assert_unchanged(model, weights)
    _assert_usable(model, tmp_path, weights)


@pytest.mark.skipif(BACKEND != "jax", reason="JAX donates the state")
@pytest.mark.parametrize("fast", [True, False])
def test_an_error_inside_a_compiled_step_keeps_the_trained_model(
    tmp_path, fast
):
    # A loss that raises on the host at its third run, inside the compiled
    # step: the step has been given (and deletes) the variables' buffers.
    import jax

    runs = {"armed": False, "count": 0}

    def count(value):
        if runs["armed"]:
            runs["count"] += 1
            if runs["count"] == 3:
                raise RuntimeError("the loss gave up")

    class Loss(keras.losses.MeanSquaredError):
        def call(self, y_true, y_pred):
            errors = super().call(y_true, y_pred)
            jax.debug.callback(count, ops.mean(errors))
            return errors

    model = keras_catembed.RatingModel(COLUMNS)
    model.compile(optimizer="adam", loss=Loss())
    x = {k: np.tile(v, 4) for k, v in _x().items()}
    y = np.tile(Y, 4)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, fast=fast)
    weights = _weights(model)
    state = _optimizer_state(model)
    runs["armed"] = True
    with pytest.raises(Exception, match="the loss gave up"):
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, fast=fast)
    _assert_unchanged(model, weights, state)
    runs["armed"] = False
    model.compile(optimizer="adam", loss="mse")
    _assert_usable(model, tmp_path, weights)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_first_call_that_fails_in_a_stream_leaves_the_model_usable(
    tmp_path, compiled
):
    # The model is built by the failing call itself.
    model = keras_catembed.RatingModel(COLUMNS)
    if compiled:
        model.compile(optimizer="adam", loss="mse")
    with pytest.raises(_in_graph_error(), match="unknown id"):
        model.predict(_BadIds(), verbose=0)
    weights = _weights(model)
    x = _x()
    first = model.predict(x, verbose=0)
    assert np.all(np.isfinite(first))
    if not compiled:
        model.compile(optimizer="adam", loss="mse")
    _assert_usable(model, tmp_path, weights)


# Ids outside int32 --------------------------------------------------------


@pytest.mark.parametrize("big", [2**32 + 3, 2**40, -(2**31) - 1])
def test_eager_layer_rejects_ids_outside_int32(big):
    layer = keras_catembed.EntityEmbedding(10, 4)
    with pytest.raises(ValueError, match=rf"unknown id {big} at position 1"):
        layer(np.array([1, big]))
    with pytest.raises(ValueError, match=rf"unknown id {big} at position 1"):
        layer([1, big])


def test_eager_layer_with_oov_rows_rejects_ids_outside_int32():
    layer = keras_catembed.EntityEmbedding(10, 4, num_oov_indices=2)
    with pytest.raises(
        ValueError, match=r"unknown id 4294967299 .*ids in the int32 range"
    ):
        layer(np.array([2**32 + 3]))


def test_uint64_id_is_reported_as_its_unsigned_value():
    layer = keras_catembed.EntityEmbedding(10, 4)
    with pytest.raises(ValueError, match=r"unknown id 9223372036854775808 "):
        layer.check_ids(np.array([1, 2**63], dtype="uint64"))
    with pytest.raises(ValueError, match=r"unknown id 18446744073709551615 "):
        layer(np.array([2**64 - 1], dtype="uint64"))
    oov = keras_catembed.EntityEmbedding(10, 4, num_oov_indices=1)
    with pytest.raises(ValueError, match=r"unknown id 9223372036854775808 "):
        oov.check_ids(np.array([2**63], dtype="uint64"))


@pytest.mark.parametrize("big", [2**32 + 3, 2**40])
def test_rating_model_call_and_predict_reject_ids_outside_int32(big):
    model = _trained()
    weights = _weights(model)
    x = _x((1, big), (0, 1))
    with pytest.raises(
        ValueError, match=rf"'user_id'.*unknown id {big} at position 1"
    ):
        model(x)
    with pytest.raises(
        ValueError, match=rf"'user_id'.*unknown id {big} at position 1"
    ):
        model.predict(x, verbose=0)
    _assert_unchanged(model, weights)


def test_ids_inside_int32_still_work_eagerly():
    layer = keras_catembed.EntityEmbedding(10, 4)
    out = ops.convert_to_numpy(layer(np.array([3, 9], dtype="int64")))
    table = ops.convert_to_numpy(layer.embeddings)
    np.testing.assert_array_equal(out, table[[3, 9]])


# Targets and sample weights that overflow -----------------------------------


@pytest.mark.parametrize("value", [1e39, -1e39, np.inf, np.nan])
def test_targets_that_overflow_float32_are_rejected(value):
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    y = Y.astype("float64")
    y[4] = value
    for method in ("fit", "evaluate"):
        with pytest.raises(ValueError, match=r"`y` holds the .*at row 4"):
            getattr(model, method)(_x(), y, verbose=0)
    with pytest.raises(ValueError, match=r"`y` holds the .*at row 4"):
        model.train_on_batch(_x(), y)
    with pytest.raises(ValueError, match=r"validation_data y.*at row 4"):
        model.fit(_x(), Y, validation_data=(_x(), y), verbose=0)
    _assert_unchanged(model, weights, optimizer_state)


def test_overflowing_target_message_names_the_value():
    model = _trained()
    y = Y.astype("float64")
    y[2] = 1e39
    with pytest.raises(ValueError, match=r"target \[1e\+39\] at row 2"):
        model.fit(_x(), y, verbose=0)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])
def test_bad_sample_weights_are_rejected(value):
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    sample_weight = np.ones(6)
    sample_weight[3] = value
    pattern = r"`sample_weight` holds the .* at row 3"
    with pytest.raises(ValueError, match=pattern):
        model.fit(_x(), Y, sample_weight=sample_weight, verbose=0)
    with pytest.raises(ValueError, match=pattern):
        model.evaluate(_x(), Y, sample_weight=sample_weight, verbose=0)
    with pytest.raises(ValueError, match=pattern):
        model.evaluate(_x(), Y, None, 0, sample_weight)
    with pytest.raises(ValueError, match=pattern):
        model.train_on_batch(_x(), Y, sample_weight=sample_weight)
    with pytest.raises(ValueError, match=pattern):
        model.test_on_batch(_x(), Y, sample_weight=sample_weight)
    with pytest.raises(ValueError, match="validation_data sample_weight"):
        model.fit(_x(), Y, validation_data=(_x(), Y, sample_weight), verbose=0)
    _assert_unchanged(model, weights, optimizer_state)


def test_finite_sample_weights_still_train():
    model = _trained()
    weights = _weights(model)
    model.fit(_x(), Y, sample_weight=np.full(6, 2.0), verbose=0)
    after = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(
        not np.array_equal(a, b) for a, b in zip(weights, after, strict=True)
    )


# fit arguments ---------------------------------------------------------------


@pytest.mark.parametrize("fast", ["auto", False])
@pytest.mark.parametrize(
    "validation_data", [(_x(),), [_x()], (_x(), None), (_x(), Y, None, None)]
)
def test_bad_validation_data_is_rejected_before_training(validation_data, fast):
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    with pytest.raises(ValueError, match=r"`validation_data` must be"):
        model.fit(
            _x(), Y, validation_data=validation_data, fast=fast, verbose=0
        )
    _assert_unchanged(model, weights, optimizer_state)


@pytest.mark.parametrize("fast", ["auto", False])
@pytest.mark.parametrize("batch_size", [0, -1, -32, 2.5, True])
def test_bad_batch_size_is_rejected(batch_size, fast):
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive"):
        model.fit(_x(), Y, batch_size=batch_size, fast=fast, verbose=0)
    with pytest.raises(
        ValueError, match=r"`validation_batch_size` must be a positive"
    ):
        model.fit(
            _x(),
            Y,
            validation_data=(_x(), Y),
            validation_batch_size=batch_size,
            fast=fast,
            verbose=0,
        )
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive"):
        model.evaluate(_x(), Y, batch_size=batch_size, verbose=0)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive"):
        model.predict(_x(), batch_size=batch_size, verbose=0)
    _assert_unchanged(model, weights, optimizer_state)


@pytest.mark.parametrize("fast", ["auto", False])
@pytest.mark.parametrize("shape", [(6, 2), (6, 1, 1), (1, 6), ()])
def test_targets_of_another_shape_are_rejected(shape, fast):
    model = _trained()
    weights = _weights(model)
    optimizer_state = _optimizer_state(model)
    y = np.ones(shape, dtype="float32")
    match = r"`y` must have shape \(n,\) or \(n, 1\)"
    with pytest.raises(ValueError, match=match):
        model.fit(_x(), y, fast=fast, verbose=0)
    with pytest.raises(ValueError, match=match):
        model.evaluate(_x(), y, verbose=0)
    with pytest.raises(ValueError, match=r"validation_data y` must have"):
        model.fit(_x(), Y, validation_data=(_x(), y), fast=fast, verbose=0)
    _assert_unchanged(model, weights, optimizer_state)


def test_targets_of_shape_n_and_n_by_1_train_alike():
    histories = []
    for y in (Y, Y.reshape(6, 1)):
        keras.utils.set_random_seed(0)
        model = keras_catembed.RatingModel(COLUMNS)
        model.compile(optimizer="adam", loss="mse")
        history = model.fit(_x(), y, epochs=2, shuffle=False, verbose=0)
        histories.append(history.history["loss"])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-6)


# A user's own XLA-compiled function --------------------------------------


def _xla_call(fn, *args):
    """Runs `fn` compiled by XLA, as a user's own code would."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)(*args)
    pytest.skip("The case is TensorFlow's `tf.function(jit_compile=True)`.")


@pytest.mark.parametrize("ids", [[1, 10], [1, -1], [1, 2**31 - 1]])
def test_unknown_ids_under_xla_give_nan_rows(ids):
    layer = keras_catembed.EntityEmbedding(10, 4)
    layer.build()
    table = ops.convert_to_numpy(layer.embeddings)
    out = ops.convert_to_numpy(
        _xla_call(layer, ops.convert_to_tensor(np.array(ids, "int32")))
    )
    np.testing.assert_array_equal(out[0], table[1])
    assert np.all(np.isnan(out[1]))


def test_int64_ids_outside_int32_under_xla_give_nan_rows():
    layer = keras_catembed.EntityEmbedding(10, 4)
    layer.build()
    table = ops.convert_to_numpy(layer.embeddings)
    ids = ops.convert_to_tensor(np.array([2, 2**32 + 3], "int64"))
    out = ops.convert_to_numpy(_xla_call(layer, ids))
    np.testing.assert_array_equal(out[0], table[2])
    assert np.all(np.isnan(out[1]))


def test_fractional_ids_under_xla_give_nan_rows():
    layer = keras_catembed.EntityEmbedding(10, 4)
    layer.build()
    table = ops.convert_to_numpy(layer.embeddings)
    ids = ops.convert_to_tensor(np.array([2.0, 3.7], "float32"))
    out = ops.convert_to_numpy(_xla_call(layer, ids))
    np.testing.assert_array_equal(out[0], table[2])
    assert np.all(np.isnan(out[1]))


def test_rating_model_under_xla_gives_nan_for_unknown_ids():
    model = _trained()
    x = {
        "user_id": ops.convert_to_tensor(np.array([1, 7], "int32")),
        "movie_id": ops.convert_to_tensor(np.array([2, 2], "int32")),
    }
    out = ops.convert_to_numpy(_xla_call(lambda x: model(x), x))
    expected = model.predict(_x((1,), (2,)), verbose=0)
    np.testing.assert_allclose(out[0], expected[0], rtol=1e-5)
    assert np.isnan(out[1, 0])


def test_oov_rows_under_xla_are_kept():
    layer = keras_catembed.EntityEmbedding(
        vocabulary=[10, 20], output_dim=3, num_oov_indices=1
    )
    layer.build()
    table = ops.convert_to_numpy(layer.embeddings)
    ids = ops.convert_to_tensor(np.array([20, 99], "int32"))
    out = ops.convert_to_numpy(_xla_call(layer, ids))
    np.testing.assert_array_equal(out, table[[1, 2]])
