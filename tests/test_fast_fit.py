"""RatingModel.fit's device loop: same training as stock fit, faster."""

import os
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_catembed
from keras_catembed import _call_lengths
from keras_catembed import _fast_fit
from keras_catembed import _host_orders
from keras_catembed import _provenance
from keras_catembed import optimizers

USERS, MOVIES = 12, 9


def data(n=96, seed=0, users=USERS, movies=MOVIES):
    rng = np.random.default_rng(seed)
    x = {
        "user_id": rng.integers(0, users, n).astype("int32"),
        "movie_id": rng.integers(0, movies, n).astype("int32"),
    }
    y = (1 + 4 * rng.random(n)).astype("float32")
    return x, y


def make_model(optimizer="adam", l2=0.0, **kwargs):
    def table(n, name):
        return keras_catembed.EntityEmbedding(
            n,
            4,
            embeddings_regularizer=keras.regularizers.L2(l2) if l2 else None,
            name=name,
        )

    model = keras_catembed.RatingModel(
        {
            "user_id": table(USERS, "user_table"),
            "movie_id": table(MOVIES, "movie_table"),
        },
        hidden_units=[8],
        bias_terms=True,
        rating_range=(0.5, 5.5),
    )
    model.build()
    if optimizer == "adam":
        optimizer = keras.optimizers.Adam(0.01)
    elif optimizer == "sparse":
        optimizer = optimizers.SparseAdam(0.01)
    model.compile(
        optimizer=optimizer,
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        **kwargs,
    )
    return model


def twin_models(first="adam", second="adam", **kwargs):
    a, b = make_model(first, **kwargs), make_model(second, **kwargs)
    b.set_weights(a.get_weights())
    return a, b


def weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def assert_same_weights(a, b, **tolerance):
    for left, right in zip(weights(a), weights(b), strict=True):
        np.testing.assert_allclose(left, right, **tolerance)


def test_device_loop_trains_like_stock_fit():
    x, y = data()
    stock, fast = twin_models()
    start = weights(stock)
    args = dict(batch_size=20, epochs=3, shuffle=False, verbose=0)
    h_stock = stock.fit(x, y, fast=False, validation_data=(x, y), **args)
    h_fast = fast.fit(x, y, fast=True, validation_data=(x, y), **args)
    assert_same_weights(stock, fast, rtol=1e-4, atol=1e-5)
    assert (
        max(
            np.abs(w - s).max()
            for w, s in zip(weights(fast), start, strict=True)
        )
        > 1e-2
    )
    assert h_fast.history.keys() == h_stock.history.keys()
    for key in h_stock.history:
        np.testing.assert_allclose(
            h_fast.history[key], h_stock.history[key], rtol=1e-4
        )
    assert len(h_fast.history["val_rmse"]) == 3


def test_weights_a_callback_sets_between_calls_are_trained_on():
    # As in `keras.Model.fit`: a callback may set weights between calls
    # (within an epoch too), and the next steps start from them.
    x, y = data(n=80)
    torch = keras.backend.backend() == "torch"
    # Torch's device loop runs an epoch per call: set the weights at the
    # start of the second epoch there, at the third step elsewhere.
    when = (1, 0) if torch else (0, 2)

    class SetTable(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if (self.epoch, batch) == when:
                table = self.model.embedding_layers["user_id"].embeddings
                table.assign(keras.ops.ones(table.shape))

    stock, fast = twin_models(steps_per_execution=1 if torch else 2)
    args = dict(batch_size=16, epochs=2, shuffle=False, verbose=0)
    stock.fit(x, y, fast=False, callbacks=[SetTable()], **args)
    fast.fit(x, y, fast=True, callbacks=[SetTable()], **args)
    assert_same_weights(stock, fast, rtol=1e-4, atol=1e-5)
    # The table was trained on from the ones.
    table = keras.ops.convert_to_numpy(
        fast.embedding_layers["user_id"].embeddings
    )
    assert np.abs(table - 1).max() < 0.1


def test_sparse_adam_equals_adam_when_every_row_is_in_every_batch():
    # Each batch holds every id of both columns exactly once: lazy and dense
    # Adam then agree, so this checks the sparse steps' gathering,
    # gradients and scatters. (With repeated ids in a batch, Keras's Adam
    # on TensorFlow squares each occurrence's gradient rather than their
    # sum; SparseAdam, like Adam on JAX and torch, squares the sum.)
    rng = np.random.default_rng(3)
    n = MOVIES
    users = np.concatenate([rng.permutation(n) for _ in range(4)])
    movies = np.concatenate([rng.permutation(n) for _ in range(4)])
    x = {"user_id": users.astype("int32"), "movie_id": movies.astype("int32")}
    y = (1 + (users * movies) % 5).astype("float32")
    adam, sparse = twin_models("adam", "sparse")
    args = dict(batch_size=n, epochs=3, shuffle=False, verbose=0, fast=True)
    adam.fit(x, y, **args)
    sparse.fit(x, y, **args)
    assert_same_weights(adam, sparse, rtol=1e-4, atol=1e-6)


class ZeroTargets(keras_catembed.RatingModel):
    """Trains towards 0 whatever the targets: its own `train_step`."""

    def train_step(self, *args):
        # JAX passes the state first.
        *state, data = args
        x, y = data[:2]
        return super().train_step(*state, (x, y * 0.0, *data[2:]))


@pytest.mark.parametrize("optimizer", ["adam", "sparse"])
def test_a_subclass_train_step_runs_in_the_device_loop(optimizer):
    # The sparse steps of JAX and torch stand in for Keras's train_step;
    # a subclass's own must run instead, with any optimizer.
    rng = np.random.default_rng(0)
    x = {
        "user_id": rng.integers(0, 8, 256).astype("int32"),
        "movie_id": rng.integers(0, 6, 256).astype("int32"),
    }
    y = np.full(256, 4.0, "float32")
    keras.utils.set_random_seed(0)
    model = ZeroTargets({"user_id": 8, "movie_id": 6}, bias_terms=True)
    model.compile(
        optimizer=optimizers.SparseAdam(0.05)
        if optimizer == "sparse"
        else keras.optimizers.Adam(0.05),
        loss="mse",
    )
    model.fit(x, y, batch_size=64, epochs=20, verbose=0, fast=True)
    predictions = model.predict(x, verbose=0)
    assert np.abs(predictions).max() < 0.5


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="XLA is optional on TF"
)
@pytest.mark.parametrize("jit_compile", ["auto", False])
def test_the_loop_runs_without_xla_when_told_or_when_xla_cannot(
    jit_compile, monkeypatch
):
    import tensorflow as tf

    def loss(y_true, y_pred):
        # A host function: XLA cannot compile it.
        error = tf.reshape(y_true, [-1]) - tf.reshape(y_pred, [-1])
        squared = tf.py_function(tf.square, [error], tf.float32)
        return tf.reshape(squared, tf.shape(error))

    monkeypatch.setattr(_fast_fit, "XLA_MIN_STEPS", 4)
    monkeypatch.setattr(_fast_fit, "XLA_MIN_BATCH", 1)
    rng = np.random.default_rng(0)
    x = {
        "user_id": rng.integers(0, 8, 64).astype("int32"),
        "movie_id": rng.integers(0, 6, 64).astype("int32"),
    }
    y = rng.uniform(1, 5, 64).astype("float32")
    losses = []
    for fast in (True, False):
        keras.utils.set_random_seed(0)
        model = keras_catembed.RatingModel({"user_id": 8, "movie_id": 6})
        model.compile(optimizer="adam", loss=loss, jit_compile=jit_compile)
        history = model.fit(
            x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, fast=fast
        )
        losses.append(history.history["loss"])
        if fast:
            (runner,) = model.__dict__["_fast_fit_runners"].values()
            assert not runner._jit
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="XLA is optional on TF"
)
def test_a_loaded_model_keeps_the_loops_xla_rule(tmp_path):
    # Keras saves `jit_compile` as resolved (False for a RatingModel on
    # TensorFlow): a loaded model is not taken as having refused XLA.
    model = keras_catembed.RatingModel({"user_id": 4, "movie_id": 3})
    model.compile(optimizer="adam", loss="mse")
    model.build()
    assert _fast_fit._use_xla(model, _fast_fit.XLA_MIN_STEPS)
    # Small batches stay graphs, however long the call.
    assert not _fast_fit._use_xla(model, 10**6, _fast_fit.XLA_MIN_BATCH // 2)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert _fast_fit._use_xla(loaded, _fast_fit.XLA_MIN_STEPS)
    loaded.compile(optimizer="adam", loss="mse", jit_compile=False)
    assert not _fast_fit._use_xla(loaded, _fast_fit.XLA_MIN_STEPS)


def test_targets_of_another_rank_in_a_later_fit():
    # (n,) then (n, 1): the compiled loop of the first call does not bind
    # the second's targets.
    x = {"user_id": np.arange(10) % 4, "movie_id": np.arange(10) % 3}
    y = np.linspace(1, 5, 10).astype("float32")
    model = keras_catembed.RatingModel({"user_id": 4, "movie_id": 3})
    model.compile(optimizer="adam", loss="mse")
    first = model.fit(x, y, batch_size=4, verbose=0, fast=True)
    second = model.fit(x, y[:, None], batch_size=4, verbose=0, fast=True)
    assert np.isfinite(first.history["loss"][0])
    assert np.isfinite(second.history["loss"][0])


class RowCount(keras.metrics.Metric):
    """Counts the rows it sees, whatever their sample weights."""

    def __init__(self, name="rows", **kwargs):
        super().__init__(name=name, **kwargs)
        self.rows = self.add_variable(shape=(), initializer="zeros", name="n")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.rows.assign_add(keras.ops.cast(keras.ops.size(y_true), "float32"))

    def result(self):
        return keras.ops.convert_to_tensor(self.rows)


@pytest.mark.parametrize("optimizer", ["adam", "sparse"])
def test_a_metric_of_the_users_sees_only_real_rows(optimizer):
    # An epoch's short last batch is not padded for a metric that might
    # count padding rows: 100 rows in batches of 32 are 100 rows.
    x = {"user_id": np.arange(100) % 7, "movie_id": np.arange(100) % 5}
    y = np.full(100, 3.0, "float32")
    model = keras_catembed.RatingModel({"user_id": 7, "movie_id": 5})
    model.compile(
        optimizer=optimizers.SparseAdam(0.01)
        if optimizer == "sparse"
        else keras.optimizers.Adam(0.01),
        loss="mse",
        metrics=[RowCount()],
    )
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, fast=True)
    assert history.history["rows"] == [100.0, 100.0]


def test_sparse_adam_leaves_rows_outside_the_batch_untouched():
    model = make_model("sparse")
    x, y = data(n=40, users=USERS - 3)  # users 9..11 never appear
    before = keras.ops.convert_to_numpy(
        model.embedding_layers["user_id"].embeddings
    )
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, fast=True)
    after = keras.ops.convert_to_numpy(
        model.embedding_layers["user_id"].embeddings
    )
    np.testing.assert_array_equal(after[USERS - 3 :], before[USERS - 3 :])
    assert np.abs(after[: USERS - 3] - before[: USERS - 3]).max() > 1e-3


def test_sparse_adam_regularizes_looked_up_rows():
    model = make_model("sparse", l2=0.01)
    tables = [
        model.embedding_layers[c].embeddings for c in ("user_id", "movie_id")
    ]
    # The table-wide regularizer is off; looked-up rows are regularized.
    assert all(table.regularizer is None for table in tables)
    x, y = data(n=5)
    assert model.losses == []
    model(x, training=True)
    expected = sum(
        0.01
        * np.sum(
            keras.ops.convert_to_numpy(model.embedding_layers[c].embeddings)[
                x[c]
            ]
            ** 2
        )
        for c in ("user_id", "movie_id")
    )
    total = sum(float(keras.ops.convert_to_numpy(v)) for v in model.losses)
    assert total == pytest.approx(expected, rel=1e-5)
    model(x, training=False)
    assert model.losses == []
    # Compiling again with a dense optimizer restores the table regularizer.
    model.compile(optimizer="adam", loss="mse")
    assert all(table.regularizer is not None for table in tables)


def test_callbacks_history_and_early_stopping():
    x, y = data(n=100)
    # Keras on torch allows only steps_per_execution=1; the device loop
    # then runs a whole epoch per call.
    torch = keras.backend.backend() == "torch"
    model = make_model(steps_per_execution=1 if torch else 2)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(("batch", batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("epoch", epoch, sorted(logs)))

    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0)
    stop_at = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(
            model, "stop_training", epoch == 1
        )
    )
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=5,
        verbose=0,
        callbacks=[Record(), stop, stop_at],
        validation_split=0.2,
        fast=True,
    )
    # 80 training rows, batches of 16: 5 steps, 2 per call: ends 1, 3, 4.
    batches = [entry[1] for entry in seen if entry[0] == "batch"]
    assert batches[:3] == ([4, 4] if torch else [1, 3, 4])[:3]
    epochs = [entry for entry in seen if entry[0] == "epoch"]
    assert [entry[1] for entry in epochs] == [0, 1]
    assert epochs[0][2] == ["loss", "rmse", "val_loss", "val_rmse"]
    assert len(history.history["loss"]) == 2
    assert history.epoch == [0, 1]
    assert model.history is history


class _Interrupt(keras.callbacks.Callback):
    """Raises at the end of epoch `epoch`, as a crash would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("fast", [True, False])
def test_backup_and_restore_resumes_at_the_saved_epoch(tmp_path, fast):
    x, y = data(n=64)
    args = dict(batch_size=16, shuffle=False, verbose=0, fast=fast)
    whole = make_model()
    start = whole.get_weights()
    whole.fit(x, y, epochs=4, **args)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    first = make_model()
    first.set_weights(start)
    with pytest.raises(RuntimeError, match="interrupted"):
        first.fit(x, y, epochs=4, callbacks=[backup, _Interrupt(1)], **args)
    resumed = make_model()
    resumed.set_weights(start)
    history = resumed.fit(x, y, epochs=4, callbacks=[backup], **args)
    # Epochs 0 and 1 ran before the interruption; 2 and 3 now.
    assert history.epoch == [2, 3]
    assert int(resumed.optimizer.iterations) == 4 * 4
    assert_same_weights(resumed, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fast", [True, False])
def test_a_resume_before_the_given_initial_epoch_runs_every_epoch(
    tmp_path, fast
):
    # As in Keras, the saved epoch wins over `initial_epoch`: the shuffled
    # loop draws an order for each of the epochs it then runs.
    x, y = data(n=64)
    args = dict(batch_size=16, verbose=0, fast=fast)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    model = make_model()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, epochs=4, callbacks=[backup, _Interrupt(1)], **args)
    history = model.fit(
        x, y, epochs=4, initial_epoch=3, callbacks=[backup], **args
    )
    assert history.epoch == [2, 3]
    assert np.all(np.isfinite(history.history["loss"]))
    assert int(model.optimizer.iterations) == 4 * 4


@pytest.mark.parametrize("fast", [True, False])
def test_no_epoch_leaves_an_averaging_optimizers_weights_alone(fast):
    x, y = data()
    model = make_model(keras.optimizers.Adam(0.01, use_ema=True))
    before = weights(model)
    model.fit(x, y, epochs=0, verbose=0, fast=fast)
    assert int(model.optimizer.iterations) == 0
    for now, then in zip(weights(model), before, strict=True):
        np.testing.assert_array_equal(now, then)


def test_validation_split_holds_out_the_last_rows():
    x, y = data(n=50)
    model = make_model()
    history = model.fit(
        x, y, batch_size=10, epochs=1, validation_split=0.2, verbose=0
    )
    expected = model.evaluate(
        {k: v[40:] for k, v in x.items()}, y[40:], verbose=0, return_dict=True
    )
    assert history.history["val_loss"][0] == pytest.approx(
        expected["loss"], rel=1e-5
    )


def test_progress_bar_counts_steps(capsys):
    x, y = data(n=64)
    make_model().fit(x, y, batch_size=16, epochs=1, verbose=1, fast=True)
    assert "4/4" in capsys.readouterr().out


def _batch_ends(model, x, y, epochs=1, callbacks=(), **kwargs):
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append([])

        def on_train_batch_end(self, batch, logs=None):
            loss = float(keras.ops.convert_to_numpy(logs["loss"]))
            seen[-1].append((batch, loss))

    model.fit(
        x,
        y,
        epochs=epochs,
        verbose=0,
        callbacks=[*callbacks, Record()],
        **kwargs,
    )
    return seen


@pytest.mark.parametrize(
    "seconds, per_call",
    [(1e-9, 8), (1e9, 200)],
    ids=["long-epoch", "short-epoch"],
)
def test_batch_callbacks_move_within_each_epoch(monkeypatch, seconds, per_call):
    # The aimed seconds per call decide whether an epoch counts as long
    # (over that: at least two calls, each at least 8 steps) or short.
    monkeypatch.setattr(_call_lengths, "SECONDS_PER_EXECUTION", seconds)
    # However slow the machine, the first epoch's calls count as short,
    # and a longer call pays off at once, compiled or not.
    monkeypatch.setattr(
        _call_lengths, "SECONDS_TO_KEEP_EXECUTION", float("inf")
    )
    monkeypatch.setattr(_call_lengths, "CALL_SECONDS", float("inf"))
    # 3,210 rows in batches of 16: 200 full steps and one of 10 rows.
    x, y = data(n=3210)
    model = make_model()
    epochs = _batch_ends(model, x, y, epochs=2, batch_size=16, fast=True)
    assert len(epochs) == 2
    assert _call_lengths.steps_per_call(model, 200, 16) == 10
    # The first epoch runs one call per 10 steps (a twentieth of the
    # epoch), then the short last batch: 9, 19, ..., 199, 200.
    first = [batch for batch, _ in epochs[0]]
    assert first == [*range(9, 200, 10), 200]
    # The next ones run calls of the length the first epoch's timing
    # chose.
    timed = model.__dict__["_fast_fit_runners"]
    (runner,) = timed.values()
    assert runner.block_steps[(16, 200)] == per_call
    second = [batch for batch, _ in epochs[1]]
    calls = [
        min(start + per_call, 200) - 1 for start in range(0, 200, per_call)
    ]
    assert second == [*calls, 200]
    for ends in epochs:
        assert all(np.isfinite(loss) for _, loss in ends)


def test_calls_long_enough_keep_their_length(monkeypatch):
    # First-epoch calls that already take long enough are not retimed, so
    # no other block length is compiled.
    monkeypatch.setattr(_call_lengths, "SECONDS_TO_KEEP_EXECUTION", 0.0)
    monkeypatch.setattr(_call_lengths, "SECONDS_PER_EXECUTION", 1e9)
    x, y = data(n=3210)
    model = make_model()
    epochs = _batch_ends(model, x, y, epochs=2, batch_size=16, fast=True)
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    assert runner.block_steps[(16, 200)] == 10
    assert [b for b, _ in epochs[1]] == [*range(9, 200, 10), 200]


def test_block_plan_switches_once_the_spared_calls_cost_the_compilation():
    plan = _call_lengths.BlockPlan(
        steps=64, saved_seconds=0.04, compile_seconds=0.1
    )
    assert [plan.pay() for _ in range(3)] == [False, False, True]
    assert plan.lost_seconds == pytest.approx(0.12)
    # Nothing to compile: the first epoch pays it off.
    free = _call_lengths.BlockPlan(
        steps=64, saved_seconds=0.0, compile_seconds=0.0
    )
    assert free.pay()


def _compiles_new_lengths():
    # JAX compiles each block length; a TensorFlow graph (no XLA for so
    # few steps) takes any length, and torch runs eagerly.
    return keras.backend.backend() == "jax"


def _short_calls_timed(monkeypatch):
    """A model whose first epoch of 200 steps (batch 16) times calls of
    10 steps and finds a whole epoch's call better; its data."""
    monkeypatch.setattr(
        _call_lengths, "SECONDS_TO_KEEP_EXECUTION", float("inf")
    )
    monkeypatch.setattr(_call_lengths, "SECONDS_PER_EXECUTION", 1e9)
    x, y = data(n=3210)
    return make_model(), x, y


def test_longer_calls_wait_until_they_repay_their_compilation(monkeypatch):
    # The first epoch times calls of 10 steps and finds a whole epoch's
    # call (200 steps) better. Where that length must be compiled, the
    # calls of 10 go on until the calls spared would have cost the
    # compilation: here, with the spared calls free, never, over epochs
    # and `fit` calls. Elsewhere the longer call is taken at once.
    model, x, y = _short_calls_timed(monkeypatch)
    monkeypatch.setattr(_call_lengths, "CALL_SECONDS", 0.0)
    first = _batch_ends(model, x, y, epochs=3, batch_size=16, fast=True)
    later = _batch_ends(model, x, y, epochs=2, batch_size=16, fast=True)
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    short = [*range(9, 200, 10), 200]
    if _compiles_new_lengths():
        assert runner.block_steps[(16, 200)] == 10
        plan = runner.block_plans[(16, 200)]
        assert plan.steps == 200
        assert plan.compile_seconds > 0
        assert plan.lost_seconds == 0
        expected = [short] * 5
    else:
        assert runner.block_steps[(16, 200)] == 200
        assert runner.block_plans == {}
        expected = [short] + [[199, 200]] * 4
    assert [[b for b, _ in epoch] for epoch in first + later] == expected


def test_the_compilation_is_measured_where_it_happens(monkeypatch):
    # A `fit` stopped before it could time its calls has compiled them: the
    # next one, whose calls compile nothing, prices a longer call with
    # that first compilation. An epoch cut short does not count.
    if not _compiles_new_lengths():
        pytest.skip("only JAX compiles each block length here")
    model, x, y = _short_calls_timed(monkeypatch)

    class StopAt(keras.callbacks.Callback):
        def __init__(self, batch):
            super().__init__()
            self.stop = batch

        def on_train_batch_end(self, batch, logs=None):
            if batch >= self.stop:
                self.model.stop_training = True

    args = dict(batch_size=16, fast=True, verbose=0)
    model.fit(x, y, epochs=1, callbacks=[StopAt(19)], **args)
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    assert runner.block_plans == {}
    compiling = runner.compiling_calls[(16, 200)]
    assert compiling > 0
    model.fit(x, y, epochs=1, **args)
    plan = runner.block_plans[(16, 200)]
    assert plan.steps == 200
    assert 0 < plan.compile_seconds < compiling
    # Spared calls of 2 ms each do not repay it in one epoch.
    assert plan.saved_seconds == pytest.approx(19 * 0.002)
    assert plan.lost_seconds == pytest.approx(plan.saved_seconds)
    model.fit(x, y, epochs=1, callbacks=[StopAt(99)], **args)
    assert plan.lost_seconds == pytest.approx(plan.saved_seconds)
    assert runner.block_steps[(16, 200)] == 10


def test_longer_calls_are_adopted_once_they_have_paid_off(monkeypatch):
    # The spared calls' cost adds up epoch after epoch (the timing epoch
    # included): with a compilation worth 2.5 epochs of it, the calls of
    # 10 steps run three epochs and the whole-epoch call the fourth.
    if not _compiles_new_lengths():
        pytest.skip("only JAX compiles each block length here")
    model, x, y = _short_calls_timed(monkeypatch)

    class Price(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            (runner,) = model.__dict__["_fast_fit_runners"].values()
            plan = runner.block_plans.get((16, 200))
            if epoch == 0:
                # 21 calls an epoch become 2: 19 spared, 2 ms each.
                assert plan.saved_seconds == pytest.approx(19 * 0.002)
                assert plan.lost_seconds == pytest.approx(plan.saved_seconds)
                plan.compile_seconds = 2.5 * plan.saved_seconds

    seen = _batch_ends(
        model, x, y, epochs=4, batch_size=16, fast=True, callbacks=[Price()]
    )
    short = [*range(9, 200, 10), 200]
    assert [[b for b, _ in epoch] for epoch in seen] == [
        short,
        short,
        short,
        [199, 200],
    ]
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    assert runner.block_steps[(16, 200)] == 200
    assert runner.block_plans == {}


@pytest.mark.parametrize("optimizer", ["adam", "sparse"])
def test_compiled_loop_pads_short_blocks_instead_of_compiling_them(
    optimizer, monkeypatch
):
    # 11 full steps of 16 and one of 6 rows: blocks of 4, 4 and 3 steps
    # (the 3 padded to 4 and skipped), then the short batch. On JAX, and
    # on TensorFlow under XLA (dense Adam), which compile each shape anew.
    if keras.backend.backend() not in ("jax", "tensorflow"):
        pytest.skip("torch runs its loop eagerly")
    if keras.backend.backend() == "tensorflow" and optimizer == "sparse":
        pytest.skip("SparseAdam's TensorFlow loop runs without XLA")
    # TensorFlow compiles these short calls with XLA too.
    monkeypatch.setattr(_fast_fit, "XLA_MIN_STEPS", 1)
    monkeypatch.setattr(_fast_fit, "XLA_MIN_BATCH", 1)
    x, y = data(n=182)
    padded, exact = twin_models(optimizer, optimizer, steps_per_execution=4)
    # The reference runs the 11 full steps as one block: nothing padded.
    exact.compile(
        optimizer=exact.optimizer.__class__.from_config(
            exact.optimizer.get_config()
        ),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        steps_per_execution=11,
    )
    kwargs = dict(batch_size=16, epochs=2, shuffle=False, verbose=0)
    history = padded.fit(x, y, fast=True, **kwargs)
    reference = exact.fit(x, y, fast=True, **kwargs)
    for a, b in zip(padded.get_weights(), exact.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(
        history.history["loss"], reference.history["loss"], rtol=1e-5
    )
    (runner,) = padded.__dict__["_fast_fit_runners"].values()
    if keras.backend.backend() == "jax":
        # The short batch runs padded to 16 rows in the same program.
        assert runner._lengths == {16: 4}
        assert len(runner._programs) == 1
        return
    # One compiled length per batch size: 4 steps of 16, 1 step of 6.
    assert runner._lengths == {16: 4, 6: 1}


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="counts JAX's compilations"
)
@pytest.mark.parametrize(
    "optimizer, rows, batch_size", [("adam", 157, 14), ("sparse", 146, 13)]
)
def test_fit_compiles_its_loop_and_nothing_else(optimizer, rows, batch_size):
    # The ids, the targets and the blocks of batch indices reach the
    # device without a staging program per shape, and a short block is
    # padded on the host: after another model has trained on rows of
    # other shapes (so that Keras's own small programs exist), a new
    # model's `fit` compiles one program, its loop, though its calls run
    # blocks of 4, 3 (padded) and 1 (the last batch) steps. (Shapes that
    # no other test uses, whose staging programs would be cached.)
    import jax

    first = make_model(optimizer, steps_per_execution=4)
    x, y = data(n=300, seed=1)
    first.fit(x, y, batch_size=64, epochs=1, fast=True, verbose=0)
    model = make_model(optimizer, steps_per_execution=4)
    x, y = data(n=rows)
    compiled = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        history = model.fit(
            x, y, batch_size=batch_size, epochs=2, fast=True, verbose=0
        )
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert len(compiled) == 1
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    assert runner._lengths == {batch_size: 4}
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="JAX's sparse loop pads the last batch",
)
def test_row_regularized_tables_run_the_short_last_batch_alone(monkeypatch):
    # Under SparseAdam the tables' L2 is a loss of the rows each step
    # reads. 250 rows in batches of 32 leave a last batch of 26: padded
    # with copies of its first row, that loss would regularize the copies
    # too. The loop runs the 26 rows in a program of their own instead,
    # as a loop that never pads does.
    from keras_catembed import _step

    x, y = data(n=250)
    model, exact = twin_models("sparse", "sparse", l2=0.05)
    kwargs = dict(batch_size=32, epochs=2, shuffle=False, verbose=0)
    history = model.fit(x, y, fast=True, **kwargs).history
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    assert not runner.pads_remainder
    assert runner._lengths[26] == 1
    monkeypatch.setattr(_step, "padding_weights", lambda model: None)
    reference = exact.fit(x, y, fast=True, **kwargs).history
    assert_same_weights(model, exact, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(history["loss"], reference["loss"], rtol=1e-6)


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="JAX's sparse loop pads the last batch",
)
@pytest.mark.parametrize(
    "optimizer, reduction",
    [
        ("sparse", "sum_over_batch_size"),
        ("sparse", "sum"),
        ("adam", "sum_over_batch_size"),
    ],
)
def test_padded_last_batch_trains_as_the_short_batch(
    optimizer, reduction, monkeypatch
):
    # 11 full steps of 16 rows and one of 6: the 6 rows run padded to 16
    # with zero-weight copies of their first row, in the program of the
    # full batches. Weights, loss and metrics equal a loop that compiles a
    # program for the 6 rows alone (with dense Adam: Keras's own step).
    from keras_catembed import _step

    x, y = data(n=182)
    padded, exact = twin_models(optimizer, optimizer)
    for model in (padded, exact):
        model.compile(
            optimizer=(
                optimizers.SparseAdam(0.01)
                if optimizer == "sparse"
                else keras.optimizers.Adam(0.01)
            ),
            loss=keras.losses.MeanSquaredError(reduction=reduction),
            metrics=[
                keras.metrics.RootMeanSquaredError(name="rmse"),
                keras.metrics.MeanAbsoluteError(name="mae"),
            ],
        )
    kwargs = dict(batch_size=16, epochs=3, shuffle=False, verbose=0)
    history = padded.fit(x, y, fast=True, **kwargs).history
    (runner,) = padded.__dict__["_fast_fit_runners"].values()
    assert runner.pads_remainder
    assert 6 not in runner._lengths
    monkeypatch.setattr(_step, "padding_weights", lambda model: None)
    reference = exact.fit(x, y, fast=True, **kwargs).history
    (runner,) = exact.__dict__["_fast_fit_runners"].values()
    assert not runner.pads_remainder
    assert runner._lengths[6] == 1
    if optimizer == "adam":
        assert len(runner._programs) == 2
    assert_same_weights(padded, exact, rtol=2e-5, atol=2e-6)
    for key in ("loss", "rmse", "mae"):
        np.testing.assert_allclose(history[key], reference[key], rtol=1e-5)
    # The epoch's loss is the mean over its 182 rows, not over 192.
    predictions = keras.ops.convert_to_numpy(
        padded.predict(x, batch_size=64, verbose=0)
    ).reshape(-1)
    np.testing.assert_allclose(
        padded.evaluate(x, y, batch_size=182, verbose=0, return_dict=True)[
            "rmse"
        ],
        np.sqrt(np.mean((predictions - y) ** 2)),
        rtol=1e-5,
    )


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="JAX's loop pads the last batch",
)
def test_a_model_with_its_own_train_step_keeps_it():
    calls = []

    class OwnStep(keras_catembed.RatingModel):
        def train_step(self, *args):
            calls.append(1)
            return super().train_step(*args)

    model = OwnStep({"user_id": USERS, "movie_id": MOVIES})
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = data(n=182)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, fast=True)
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    assert not runner.pads_remainder
    assert calls  # traced for the full batches and the short one


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="JAX's loop pads the last batch",
)
@pytest.mark.parametrize("optimizer", ["adam", "sparse"])
def test_a_forward_pass_of_its_own_is_not_padded(optimizer):
    # Its layers might mix the rows of a batch (batch normalization, say),
    # so padding rows could change what the real rows compute.
    class OwnInteract(keras_catembed.RatingModel):
        def interact(self, *args, **kwargs):
            return super().interact(*args, **kwargs)

    model = OwnInteract({"user_id": USERS, "movie_id": MOVIES})
    model.compile(
        optimizer=(
            optimizers.SparseAdam(0.01)
            if optimizer == "sparse"
            else keras.optimizers.Adam(0.01)
        ),
        loss="mse",
    )
    x, y = data(n=182)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, fast=True)
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    assert not runner.pads_remainder
    assert 6 in runner._lengths  # the short batch has its own program


def test_losses_of_unknown_reduction_are_not_padded():
    from keras_catembed import _step

    model = make_model("sparse")
    assert _step.padding_weights(model) == "scaled"
    model.compile(optimizer=optimizers.SparseAdam(0.01), loss="mae")
    assert _step.padding_weights(model) == "scaled"
    for reduction, weights in [
        ("sum", "one"),
        ("mean_with_sample_weight", "one"),
        (None, None),
    ]:
        model.compile(
            optimizer=optimizers.SparseAdam(0.01),
            loss=keras.losses.MeanSquaredError(reduction=reduction),
        )
        assert _step.padding_weights(model) == weights

    class OwnLoss(keras_catembed.RatingModel):
        def compute_loss(self, *args, **kwargs):
            return super().compute_loss(*args, **kwargs)

    own = OwnLoss({"user_id": USERS, "movie_id": MOVIES})
    own.compile(optimizer=optimizers.SparseAdam(0.01), loss="mse")
    assert _step.padding_weights(own) is None


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs on the TensorFlow backend",
)
@pytest.mark.parametrize("optimizer", ["adam", "sparse"])
def test_tensorflow_traces_one_loop_for_every_block_and_batch(optimizer):
    # Blocks of 4, 4 and 3 steps of 16 rows, then one step of 6 rows, in
    # two fit calls on data of two sizes: a trace costs seconds, so
    # one loop serves every shape.
    x, y = data(n=182)
    model, _ = twin_models(optimizer, optimizer, steps_per_execution=4)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, fast=True)
    short = {column: values[:100] for column, values in x.items()}
    model.fit(short, y[:100], batch_size=16, epochs=1, verbose=0, fast=True)
    (runner,) = model.__dict__["_fast_fit_runners"].values()
    (function,) = runner._runs.values()
    assert function.experimental_get_tracing_count() == 1


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="XLA is optional on the TensorFlow backend only",
)
def test_tensorflow_loop_compiles_with_xla_only_for_long_calls(monkeypatch):
    monkeypatch.setattr(_fast_fit, "XLA_MIN_STEPS", 24)
    monkeypatch.setattr(_fast_fit, "XLA_MIN_BATCH", 16)
    x, y = data(n=160)  # 10 steps of 16 per epoch
    dense, sparse = twin_models("adam", "sparse")
    kwargs = dict(batch_size=16, verbose=0, fast=True)
    dense.fit(x, y, epochs=2, **kwargs)  # 20 steps: a graph
    dense.fit(x, y, epochs=3, **kwargs)  # 30 steps: XLA
    dense.fit(x, y, epochs=5, initial_epoch=3, **kwargs)  # 20: the graph
    runners = dense.__dict__["_fast_fit_runners"]
    assert sorted(runners) == [(False, False), (False, True)]
    # Smaller batches stay graphs, however many steps.
    small = twin_models("adam", "adam")[0]
    small.fit(x, y, epochs=4, batch_size=8, verbose=0, fast=True)  # 80
    assert list(small.__dict__["_fast_fit_runners"]) == [(False, False)]
    for (_, jit), runner in runners.items():
        assert runner._jit == jit
        (function,) = runner._runs.values()
        assert function.experimental_get_tracing_count() == 1
    # SparseAdam's loop never runs under XLA.
    sparse.fit(x, y, epochs=3, **kwargs)
    assert list(sparse.__dict__["_fast_fit_runners"]) == [(True, False)]


def test_progress_bar_advances_within_the_epoch(monkeypatch):
    updates = []
    update = keras.utils.Progbar.update

    def record(self, current, *args, **kwargs):
        updates.append((self.target, current))
        return update(self, current, *args, **kwargs)

    monkeypatch.setattr(keras.utils.Progbar, "update", record)
    x, y = data(n=3200)
    make_model().fit(x, y, batch_size=32, epochs=1, verbose=1, fast=True)
    # 100 steps, 8 per call (the least a call runs): the bar moves 13
    # times, to 8, 16, ..., 96 and then 100. (Keras may run the bar's
    # batch callbacks on a thread on JAX, so updates can arrive out of
    # order.)
    seen = [current for target, current in updates if target == 100]
    assert sorted(set(seen)) == [*range(8, 100, 8), 100]


def test_block_size_is_bounded_and_respects_steps_per_execution():
    model = make_model()
    steps = _call_lengths.steps_per_call
    assert steps(model, 3, 32) == 3
    assert steps(model, 100, 32) == 8
    assert steps(model, 20_000, 1024) == 1000
    assert steps(model, 200_000, 64) == 1024
    assert steps(model, 200_000, 4096) == 256
    if keras.backend.backend() != "torch":
        assert steps(make_model(steps_per_execution=7), 100, 32) == 7
    # Once timed: a power of two of steps of about a second, at
    # least 8 and at most 2**20 samples; at most half of an epoch that
    # takes over a second, the whole of a shorter one.
    timed = _call_lengths.timed_steps_per_call
    assert timed(1e-3, 10_000, 256) == 512
    assert timed(1e-6, 10_000, 256) == 4096
    assert timed(1e-6, 100, 32) == 100
    assert timed(1e-3, 5, 32) == 5
    assert timed(1e-3, 1000, 32) == 1000
    assert timed(2e-3, 1000, 32) == 256
    assert timed(1e-7, 2 * 10**6, 1) == 2**20
    assert timed(10.0, 1000, 32) == 8


def test_fast_true_explains_what_blocks_it():
    x, y = data()
    model = make_model()
    with pytest.raises(ValueError, match="`sample_weight` is set"):
        model.fit(x, y, sample_weight=np.ones(len(y)), fast=True, verbose=0)
    with pytest.raises(ValueError, match='`fast` must be "auto".*fast=1'):
        model.fit(x, y, fast=1, verbose=0)


def test_auto_falls_back_to_stock_fit_for_datasets_and_weights():
    x, y = data(n=32)
    model = make_model()
    history = model.fit(
        x, y, sample_weight=np.ones(32), batch_size=8, epochs=2, verbose=0
    )
    assert len(history.history["loss"]) == 2
    dataset = [(x, y)]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        history = model.fit(dataset, epochs=1, verbose=0)
        assert len(history.history["loss"]) == 1


def test_bad_ids_are_rejected_before_the_device_loop():
    x, y = data(n=16)
    x["movie_id"][5] = MOVIES
    model = make_model("sparse")
    before = weights(model)
    with pytest.raises(ValueError, match=f"Column 'movie_id'.*{MOVIES}"):
        model.fit(x, y, fast=True, verbose=0)
    for left, right in zip(weights(model), before, strict=True):
        np.testing.assert_array_equal(left, right)


def test_recompiling_uses_the_new_optimizer():
    x, y = data(n=32)
    model = make_model()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, fast=True)
    model.compile(optimizer=optimizers.SparseAdam(0.01), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, fast=True)
    assert isinstance(model.optimizer, optimizers.SparseAdam)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4


def test_saved_model_after_device_loop(tmp_path):
    x, y = data(n=32)
    model = make_model("sparse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, fast=True)
    loaded = _save_and_reload(model, x, tmp_path)
    assert isinstance(loaded.optimizer, optimizers.SparseAdam)


def _save_and_reload(model, x, tmp_path):
    """Saves `model`, loads it back and checks its predictions on `x`."""
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)),
        keras.ops.convert_to_numpy(model.predict(x, verbose=0)),
        rtol=1e-5,
    )
    return loaded


def test_validation_runs_the_callbacks_test_hooks():
    x, y = data(n=64)
    model = make_model()
    seen = []
    hooks = keras.callbacks.LambdaCallback(
        on_test_begin=lambda logs: seen.append("test_begin"),
        on_test_end=lambda logs: seen.append("test_end"),
        on_epoch_end=lambda epoch, logs: seen.append("epoch_end"),
    )
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[hooks],
        validation_split=0.25,
        fast=True,
    )
    assert seen == ["test_begin", "test_end", "epoch_end"] * 2


def fit_validating_average(model, batch_size=16, fast=True, callbacks=()):
    """Fits `model` on `data(n=64)` for 3 epochs, validating its average.

    `keras.callbacks.SwapEMAWeights` swaps the moving average of the
    weights in for each validation (on `data(n=32, seed=1)`).
    """
    x, y = data(n=64)
    return model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=3,
        verbose=0,
        validation_data=data(n=32, seed=1),
        callbacks=[keras.callbacks.SwapEMAWeights(), *callbacks],
        fast=fast,
    )


@pytest.mark.parametrize("fast", [True, False])
def test_weight_average_is_validated_kept_and_saved(fast, tmp_path):
    x, _ = data(n=64)
    model = make_model(keras.optimizers.Adam(0.05, use_ema=True))
    history = fit_validating_average(model, fast=fast)
    # `keras.callbacks.SwapEMAWeights` validates the average, which `fit`
    # leaves in the model.
    rmse = model.evaluate(*data(n=32, seed=1), verbose=0)[1]
    assert history.history["val_rmse"][-1] == pytest.approx(rmse, rel=1e-5)
    # The optimizer's averages survive later compiled calls (on JAX they
    # must not share the weights' donated arrays), so the optimizer saves.
    loaded = _save_and_reload(model, x, tmp_path)
    for saved, variable in zip(
        loaded.optimizer.variables, model.optimizer.variables, strict=True
    ):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(saved),
            keras.ops.convert_to_numpy(variable),
            rtol=1e-6,
        )


class _OneBatch(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.x, self.y


@pytest.mark.parametrize("kind", ["predict", "evaluate", "fit"])
def test_checked_arrays_do_not_switch_off_checks_for_datasets(kind):
    # Arrays run a function traced without per-step checks; a dataset,
    # which cannot be checked up front, must get the checked one.
    x, y = data(n=16)
    model = make_model()
    calls = {
        "predict": lambda x, y: model.predict(x, verbose=0),
        "evaluate": lambda x, y: model.evaluate(x, y, verbose=0),
        "fit": lambda x, y: model.fit(x, y, fast=False, verbose=0),
    }
    calls[kind](x, y)
    bad = dict(x, movie_id=x["movie_id"].copy())
    bad["movie_id"][3] = MOVIES + 7
    with pytest.raises(ValueError, match=f"unknown id {MOVIES + 7}"):
        calls[kind](bad, y)
    # Last: on JAX, a step that failed inside a compiled call leaves the
    # model unusable for the next call (a Keras limitation).
    with pytest.raises(Exception, match=f"unknown id|{MOVIES + 7}"):
        calls[kind](_OneBatch(bad, y), None)


def test_validation_freq_as_int_and_list():
    x, y = data(n=32)
    model = make_model()
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append("val_loss" in logs)
    )
    args = dict(batch_size=8, epochs=4, verbose=0, callbacks=[record])
    model.fit(x, y, validation_data=(x, y), validation_freq=2, **args)
    model.fit(x, y, validation_data=(x, y), validation_freq=[1, 4], **args)
    assert seen == [False, True, False, True, True, False, False, True]


class CountsTwoRowCalls(keras_catembed.RatingModel):
    """Counts forward passes on two rows: the loop's build of its state."""

    two_row_calls = 0

    def call(self, inputs, training=None):
        if inputs["user_id"].shape[0] == 2:
            self.two_row_calls += 1
        return super().call(inputs, training=training)


def test_later_fit_calls_skip_building_the_compiled_state():
    model = CountsTwoRowCalls(
        {
            "user_id": keras_catembed.EntityEmbedding(USERS, 4),
            "movie_id": keras_catembed.EntityEmbedding(MOVIES, 4),
        },
        hidden_units=[8],
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = data(n=32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.two_row_calls == 1
    # The loss, metrics and optimizer are built: nothing to build again.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.two_row_calls == 1
    # Compiling again brings a new loss and new metrics, built anew.
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"]
    )
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.two_row_calls == 2
    prediction = model.predict(x, batch_size=32, verbose=0).reshape(-1)
    assert np.isfinite(history.history["mae"][0])
    # The metric counted this fit's batches only, not the build's rows.
    assert history.history["mae"][0] == pytest.approx(
        np.mean(np.abs(prediction - y)), abs=0.5
    )


def test_building_the_compiled_state_changes_no_variable():
    model = make_model()
    x, y = data(n=32)
    before = [np.array(v) for v in model.variables]
    _fast_fit._build_compiled_state(model, x, y)
    assert model._compile_loss.built
    assert model._compile_metrics.built
    assert model.optimizer.built
    for variable, value in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(np.array(variable), value)
    for metric in model.metrics:
        for variable in metric.variables:
            np.testing.assert_array_equal(np.array(variable), 0.0)


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="JAX compiles eager ops"
)
def test_jax_builds_the_compiled_state_without_compiling(caplog):
    import logging

    import jax

    model = make_model()
    # The optimizer's slots are zeros made eagerly (by Keras, not the
    # build under test): built beforehand, they are not counted.
    model.optimizer.build(model.trainable_variables)
    x, y = data(n=32)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        _fast_fit._build_compiled_state(model, x, y)
    compiled = [r for r in caplog.records if "XLA compilation" in r.message]
    assert compiled == []
    assert model._compile_metrics.built


@pytest.mark.parametrize("num_samples", [1, 2, 97, 100_003])
def test_host_orders_are_the_generators_permutations_in_epoch_order(
    num_samples,
):
    # Drawn one epoch ahead in a thread, each order is still the one
    # `rng.permutation` gives at that point of the generator's stream.
    orders = _host_orders.HostOrders(np.random.default_rng(5), num_samples, 3)
    reference = np.random.default_rng(5)
    for _ in range(3):
        order = orders.take()
        assert order.dtype == np.int32
        np.testing.assert_array_equal(order, reference.permutation(num_samples))
    # Past the epochs it was sized for, it goes on drawing on demand.
    np.testing.assert_array_equal(
        orders.take().astype(np.int64), reference.permutation(num_samples)
    )


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # The rows are hashed once the first order is drawn, before the
        # steps: the thread drawing it had the spare core to itself.
        (dict(epochs=2), ["order", "hash", "order"]),
        # No order to draw: hashed before the first epoch's steps.
        (dict(epochs=2, shuffle=False), ["hash"]),
        # No epoch to run: hashed after the loop, recorded all the same.
        (dict(epochs=1, initial_epoch=1), ["hash"]),
    ],
)
def test_fit_hashes_its_rows_once_the_first_order_is_drawn(
    monkeypatch, kwargs, expected
):
    events = []
    take, start = _host_orders.HostOrders.take, _provenance.start

    def logged(event, function):
        def call(*args, **kwargs):
            events.append(event)
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(_host_orders.HostOrders, "take", logged("order", take))
    monkeypatch.setattr(_provenance, "start", logged("hash", start))
    x, y = data(n=100)
    model = make_model("sparse")
    model.fit(x, y, batch_size=32, verbose=0, **kwargs)
    assert events == expected
    fingerprint = model.training_fingerprint
    assert fingerprint["rows"] == 100
    assert model.training_overlap(x, y) == 1.0


def test_seeded_fit_repeats_with_orders_drawn_ahead():
    # Three epochs, then one more call: the same seed, the same weights.
    x, y = data(n=300)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        model = make_model("sparse")
        model.fit(x, y, batch_size=32, epochs=3, verbose=0)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        runs.append(model)
    assert_same_weights(*runs, rtol=0, atol=0)


def _mapped_blocks(mode):
    """Blocks glibc maps for a 15 MiB tensor in a fresh torch process."""
    probe = os.path.join(os.path.dirname(__file__), "_allocator_probe.py")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, probe, mode],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(probe)),
        timeout=300,
        check=True,
    )
    return int(result.stdout.split("MAPPED")[-1])


@pytest.mark.skipif(
    keras.backend.backend() != "torch"
    or not sys.platform.startswith("linux")
    or platform.libc_ver()[0] != "glibc",
    reason="torch steps on glibc's malloc",
)
def test_torch_loop_raises_the_allocators_thresholds_once():
    # After a device-loop `fit`, a table-sized block comes from the heap:
    # steps no longer map and fault in their gradients' pages anew.
    if _mapped_blocks("none") != 1:
        pytest.skip("this process's allocator maps no such block at start")
    assert _mapped_blocks("fit") == 0
    # Without the settling block the same `fit` leaves it mapped.
    assert _mapped_blocks("skip") == 1
