"""SparseAdam's moving average: row by row in the device loop, as Keras's."""

import keras
import numpy as np
import pytest

from keras_catembed import _sparse_average
from keras_catembed import optimizers
from tests.test_fast_fit import fit_validating_average
from tests.test_fast_fit import make_model
from tests.test_optimizers import EPSILON
from tests.test_optimizers import LR
from tests.test_optimizers import sparse_gradient
from tests.test_sparse_weight_decay import DECAY
from tests.test_sparse_weight_decay import _steps

MOMENTUM = 0.9


def _numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))


def _train(initial, steps, decay, lazy):
    table = keras.Variable(initial)
    optimizer = optimizers.SparseAdam(
        LR,
        epsilon=EPSILON,
        weight_decay=decay,
        use_ema=True,
        ema_momentum=MOMENTUM,
    )
    optimizer.build([table])
    optimizer._lazy_average = lazy
    for rows, grads in steps:
        optimizer.apply([sparse_gradient(rows, grads)], [table])
    return table, optimizer


@pytest.mark.parametrize("decay", [None, DECAY])
def test_row_averages_equal_averaging_every_row_at_every_step(decay):
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(8, 3)).astype(np.float32)
    steps = _steps(rng)
    dense_table, dense = _train(initial, steps, decay, lazy=False)
    table, lazy = _train(initial, steps, decay, lazy=True)
    # The weights do not depend on how the average is kept.
    np.testing.assert_array_equal(_numpy(table), _numpy(dense_table))
    dense_average = _numpy(dense._model_variables_moving_average[0])
    average = _numpy(lazy._model_variables_moving_average[0])
    # Row by row, a step writes the average of its own rows only: row 6,
    # never touched, still has none; row 1, touched in the last step, is
    # up to date.
    np.testing.assert_array_equal(average[6], np.zeros(3, np.float32))
    np.testing.assert_allclose(average[1], dense_average[1], rtol=1e-6)
    np.testing.assert_allclose(dense_average[6], initial[6], rtol=1e-6)
    lazy.settle_moving_average([table])
    np.testing.assert_allclose(
        _numpy(lazy._model_variables_moving_average[0]),
        dense_average,
        rtol=1e-5,
        atol=1e-7,
    )
    # Settling twice changes nothing; the end of training leaves the same
    # weights (the averages) either way.
    lazy.settle_moving_average([table])
    dense.finalize_variable_values([dense_table])
    lazy.finalize_variable_values([table])
    np.testing.assert_allclose(
        _numpy(table), _numpy(dense_table), rtol=1e-5, atol=1e-7
    )


def test_a_row_averaged_again_after_skipped_steps_catches_up():
    # Row 0 is written at the first step only and again at the last: the
    # last step first averages in the value it kept in between.
    rng = np.random.default_rng(1)
    initial = rng.normal(size=(4, 2)).astype(np.float32)
    grads = [rng.normal(size=(1, 2)).astype(np.float32) for _ in range(5)]
    steps = [(np.array([0]), grads[0])]
    steps += [(np.array([1]), g) for g in grads[1:4]]
    steps += [(np.array([0]), grads[4])]
    dense_table, dense = _train(initial, steps, None, lazy=False)
    table, lazy = _train(initial, steps, None, lazy=True)
    dense_average = _numpy(dense._model_variables_moving_average[0])
    average = _numpy(lazy._model_variables_moving_average[0])
    np.testing.assert_allclose(average[0], dense_average[0], rtol=1e-6)
    # Row 1 skipped the last step: its average lags until settled.
    assert not np.allclose(average[1], dense_average[1], rtol=1e-3)
    lazy.settle_moving_average([table])
    np.testing.assert_allclose(
        _numpy(lazy._model_variables_moving_average[0]),
        dense_average,
        rtol=1e-6,
    )


def _averaging_model():
    keras.utils.set_random_seed(0)
    return make_model(
        optimizers.SparseAdam(
            0.05, weight_decay=0.5, use_ema=True, ema_momentum=0.8
        )
    )


def _fit_with_average(monkeypatch, lazy, callbacks=()):
    """A model, fit with SparseAdam's average by rows or Keras's."""
    model = _averaging_model()
    if not lazy:
        monkeypatch.setattr(
            _sparse_average, "averages_rows", lambda optimizer, v: False
        )
    try:
        history = fit_validating_average(
            model, batch_size=8, callbacks=callbacks
        )
    finally:
        monkeypatch.undo()
    return model, history


def test_fit_with_row_averages_trains_as_with_keras_average(monkeypatch):
    dense, dense_history = _fit_with_average(monkeypatch, lazy=False)
    averaged = []
    average_rows = _sparse_average.average_rows

    def spy(optimizer, variable, *args):
        averaged.append(optimizer._get_variable_index(variable))
        return average_rows(optimizer, variable, *args)

    monkeypatch.setattr(_sparse_average, "average_rows", spy)
    model, history = _fit_with_average(monkeypatch, lazy=True)
    # The device loop averaged the two tables row by row.
    variables = model.optimizer._trainable_variables
    tables = {variables[index].path.split("/")[-2] for index in averaged}
    assert {"user_table", "movie_table"} <= tables
    # Validation at each epoch's end sees the settled averages.
    np.testing.assert_allclose(
        history.history["val_rmse"],
        dense_history.history["val_rmse"],
        rtol=1e-5,
    )
    for weight, expected in zip(
        model.get_weights(), dense.get_weights(), strict=True
    ):
        np.testing.assert_allclose(weight, expected, rtol=1e-4, atol=1e-6)
    # Outside the device loop the optimizer averages every row again.
    assert not model.optimizer._lazy_average


class _StopAfterBatches(keras.callbacks.Callback):
    """Raises once `fit` has run `batches` compiled calls."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_train_batch_end(self, batch, logs=None):
        self.batches -= 1
        if self.batches == 0:
            raise RuntimeError("stopped mid-epoch")


def test_a_fit_stopped_by_an_error_settles_the_averages(monkeypatch):
    # Stopped after two compiled calls, before the loop settles the
    # epoch's averages: the call settles them on its way out, so they are
    # Keras's.
    averages = []
    for lazy in (False, True):
        model = _averaging_model()
        if not lazy:
            monkeypatch.setattr(
                _sparse_average, "averages_rows", lambda optimizer, v: False
            )
        with pytest.raises(RuntimeError, match="stopped mid-epoch"):
            fit_validating_average(
                model, batch_size=8, callbacks=[_StopAfterBatches(2)]
            )
        monkeypatch.undo()
        optimizer = model.optimizer
        assert int(keras.ops.convert_to_numpy(optimizer.iterations)) > 0
        assert not optimizer._lazy_average
        averages.append(
            [_numpy(a) for a in optimizer._model_variables_moving_average]
        )
    for average, expected in zip(*reversed(averages), strict=True):
        np.testing.assert_allclose(average, expected, rtol=1e-4, atol=1e-6)


def test_an_optimizer_saved_without_average_marks_loads():
    # Optimizers saved before the averages had marks: every average was
    # up to date, so the marks are set to the last step.
    rng = np.random.default_rng(2)
    initial = rng.normal(size=(8, 3)).astype(np.float32)
    steps = _steps(rng)
    table, trained = _train(initial, steps, DECAY, lazy=False)
    marks = {id(m) for m in trained._average_marks if m is not None}
    store = {
        str(i): _numpy(variable)
        for i, variable in enumerate(
            v for v in trained.variables if id(v) not in marks
        )
    }
    fresh = optimizers.SparseAdam(
        LR, weight_decay=DECAY, use_ema=True, ema_momentum=MOMENTUM
    )
    fresh.build([keras.Variable(initial)])
    fresh.load_own_variables(store)
    for loaded, saved in zip(fresh.variables, trained.variables, strict=True):
        np.testing.assert_array_equal(_numpy(loaded), _numpy(saved))
    np.testing.assert_array_equal(
        _numpy(fresh._average_marks[0]), np.full(8, len(steps))
    )
