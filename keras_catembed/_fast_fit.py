"""The device loop behind `RatingModel.fit` for in-memory arrays.

Stock `fit` feeds every step through a data adapter (tf.data or a Python
iterator) and, on JAX and torch, dispatches one compiled step per batch.
For ids and ratings that fit in memory this loop instead:

- checks the arrays once (the caller does), then runs steps without the
  per-step id checks;
- keeps the arrays on the device, draws each epoch's permutation there and
  gathers each batch there;
- runs many steps per compiled call (`lax.fori_loop` on JAX, a `tf.while_loop`
  on TensorFlow; torch runs eagerly), about a second of steps, so that
  the progress bar and batch callbacks move within an epoch (the
  lengths are chosen in `_call_lengths`);
- on JAX, runs an epoch's last, shorter batch padded to the batch size
  (its padding rows weigh nothing in the loss and the metrics) in the
  program of the full batches, so that it compiles nothing of its own;
- with `SparseAdam`, on JAX and torch, differentiates with respect to the
  batch's unique table rows rather than the whole table, so a step costs
  time proportional to the batch (TensorFlow's gather gradient is already
  a `tf.IndexedSlices`).

Callbacks, the `History`, the progress bar, validation and
`stop_training` behave as in `keras.Model.fit` with `steps_per_execution`
set to the number of steps per compiled call.
"""

import collections.abc
import contextlib
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import _call_lengths
from keras_catembed import _forward
from keras_catembed import _host_orders
from keras_catembed import _sparse_rows
from keras_catembed import _step
from keras_catembed import backend
from keras_catembed import optimizers
from keras_catembed.backend import generic

# The TensorFlow loop compiles with XLA for `fit` calls of at least
# `XLA_MIN_STEPS` steps (all epochs together) of at least `XLA_MIN_BATCH`
# rows. XLA compiles the loop for seconds per batch size. At batches of
# 16384 it then runs steps about twice as fast as a graph, and repaid its
# compilation after about 300 steps on one 2-core CPU and 750 on another;
# at 1024 rows its steps were faster on the older CPU but slower on the
# newer one (AVX-512), so small batches stay graphs
# (`benchmarks/tensorflow_xla.py`).
XLA_MIN_STEPS = 750
XLA_MIN_BATCH = 16384


def blocker(
    model: Any, x: Any, y: Any, kwargs: Mapping[str, Any]
) -> str | None:
    """Why the device loop cannot run this `fit` call, or None if it can."""
    if not isinstance(x, collections.abc.Mapping):
        return "`x` is not a dict of arrays"
    if any(not _is_array(value) for value in x.values()):
        return "`x` holds something other than arrays"
    if y is None or not _is_array(y):
        return "`y` is not an array"
    for key in ("sample_weight", "class_weight", "steps_per_epoch"):
        if kwargs.get(key) is not None:
            return f"`{key}` is set"
    if kwargs.get("validation_steps") is not None:
        return "`validation_steps` is set"
    if not getattr(model, "compiled", False) or model.optimizer is None:
        return "the model is not compiled"
    if model.run_eagerly:
        return "the model runs eagerly (`run_eagerly=True`)"
    if backend.current.Runner is None:
        return f"the {backend.NAME} backend has no device loop"
    return backend.current.loop_blocker(model)


def _is_array(value: Any) -> bool:
    if isinstance(value, (np.ndarray, list, tuple)):
        return True
    return (
        hasattr(value, "shape")
        and hasattr(value, "dtype")
        and not hasattr(value, "element_spec")
    )


def fit(
    model: Any,
    x: Mapping[str, Any],
    y: Any,
    *,
    batch_size: int | None = None,
    epochs: int = 1,
    verbose: Any = "auto",
    callbacks: Any = None,
    validation_split: float = 0.0,
    validation_data: Any = None,
    shuffle: bool = True,
    initial_epoch: int = 0,
    validation_batch_size: int | None = None,
    validation_freq: Any = 1,
    on_order_drawn: Callable[[], None] | None = None,
) -> Any:
    """Trains `model` on checked in-memory arrays; returns its History.

    `on_order_drawn` is called once, when the first epoch's order is
    ready, before the first steps run.
    """
    columns = model.columns
    x = {column: np.asarray(ops.convert_to_numpy(x[column])) for column in x}
    y = np.asarray(ops.convert_to_numpy(y))
    num_samples = len(y)
    for column in columns:
        if len(x[column]) != num_samples:
            raise ValueError(
                f"Column '{column}' has {len(x[column])} rows but `y` has "
                f"{num_samples}. All inputs must have the same length."
            )
    if validation_split and validation_data is None:
        split = int(num_samples * (1.0 - validation_split))
        validation_data = (
            {column: x[column][split:] for column in columns},
            y[split:],
        )
        x = {column: x[column][:split] for column in columns}
        y = y[:split]
        num_samples = split
    if num_samples == 0:
        raise ValueError("`fit` received no training samples.")
    batch_size = int(batch_size or 32)
    batch_size = min(batch_size, num_samples)

    if not model.built:
        model.build()
    _build_compiled_state(model, x, y)
    direct = _forward.calls_layers_directly(model)

    targets = backend.current.to_device(y.astype(keras.config.floatx()))
    # Shuffle where it is fast: on an accelerator, on the device; on a
    # CPU, with NumPy (XLA's CPU sort-based permutation is far slower).
    on_device = backend.current.on_accelerator(targets)
    # Seeded from NumPy's global generator, which
    # `keras.utils.set_random_seed` seeds, so runs repeat.
    rng = np.random.default_rng(np.random.randint(2**31))  # noqa: NPY002
    # The first order is drawn while the ids are copied and the loop set up.
    host_orders = (
        _host_orders.HostOrders(rng, num_samples, epochs - initial_epoch)
        if shuffle and not on_device
        else None
    )
    ids = {
        column: backend.current.to_device(
            x[column].reshape(num_samples).astype(np.int32)
        )
        for column in columns
    }

    full_steps, remainder = divmod(num_samples, batch_size)
    steps_per_epoch = full_steps + (remainder > 0)

    # The compiled steps are kept until the model is compiled again.
    cache = model.__dict__.setdefault("_fast_fit_runners", {})
    # The JAX and torch sparse steps stand in for Keras's `train_step`:
    # a subclass's own `train_step` runs as it is, with dense gradients.
    sparse = (
        isinstance(model.optimizer, optimizers.SparseAdam)
        and _sparse_rows.own_methods(model, ("call", "embed"))
        and type(model).train_step is keras.Model.train_step
    )
    jit = _use_xla(
        model, (epochs - initial_epoch) * steps_per_epoch, batch_size
    )
    if (sparse, jit) not in cache:
        cache[sparse, jit] = _runner(model, sparse, jit)
    runner = cache[sparse, jit]
    runner.ids, runner.targets = ids, targets
    calls = _call_lengths.CallLengths(
        model, runner, full_steps, remainder, batch_size
    )
    if verbose == "auto":
        verbose = 1
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
            model=model,
        )
    seed = keras.random.SeedGenerator() if on_device else None
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    with _rows_averaged(optimizer, model.trainable_weights):
        model.stop_training = False
        callbacks.on_train_begin()
        # As in `keras.Model.fit`: `keras.callbacks.BackupAndRestore` sets
        # the epoch to resume from.
        initial_epoch = model._initial_epoch or initial_epoch
        training_logs = None
        logs = {}
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            callbacks.on_epoch_begin(epoch)
            if shuffle and on_device:
                order = keras.random.shuffle(
                    ops.arange(num_samples, dtype="int32"), seed=seed
                )
            elif host_orders is not None:
                # Kept in NumPy: each call's block is sliced there and copied
                # once (slicing a device array costs two dispatches a call).
                order = host_orders.take()
            elif on_device:
                order = ops.arange(num_samples, dtype="int32")
            else:
                order = np.arange(num_samples, dtype=np.int32)
            if on_order_drawn is not None:
                on_order_drawn()
                on_order_drawn = None
            runner.begin_epoch()
            for start, steps, size in calls.executions:
                callbacks.on_train_batch_begin(start)
                rows = order[
                    start * batch_size : start * batch_size + steps * size
                ]
                real = None
                if size < batch_size and runner.pads_remainder:
                    # The last batch, filled up with its first row (the padding
                    # weighs nothing) to run in the full batches' program.
                    rows, real, size = (
                        _padded(rows, batch_size),
                        size,
                        batch_size,
                    )
                if isinstance(rows, np.ndarray):
                    block = runner.from_host(rows.reshape(steps, size))
                else:
                    block = ops.reshape(rows, (steps, size))
                with _step.direct_calls(model, direct):
                    logs = calls.run(block, start + steps, real)
                callbacks.on_train_batch_end(start + steps - 1, logs)
                if model.stop_training:
                    break
            runner.end_epoch()
            calls.end_epoch(stopped=model.stop_training)
            epoch_logs = dict(_pythonify(logs))
            # Rows that skipped steps take the decay they owe, so validation
            # and the epoch-end callbacks see the weights as they are.
            owed = getattr(optimizer, "apply_owed_decay", None)
            if owed is not None:
                owed(model.trainable_weights)
            if validation_data is not None and _should_validate(
                epoch, validation_freq
            ):
                # As in `keras.Model.fit`: the callbacks see the validation
                # (`keras.callbacks.SwapEMAWeights` swaps weights for it).
                val_logs = model.evaluate(
                    **_evaluation_data(
                        validation_data, validation_batch_size or batch_size
                    ),
                    verbose=0,
                    callbacks=callbacks,
                    return_dict=True,
                )
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if model.stop_training:
                break
        if epochs > 0:
            # As in `keras.Model.fit`: before any step, an EMA optimizer's
            # averages are zeros.
            model.optimizer.finalize_variable_values(model.trainable_weights)
        callbacks.on_train_end(logs=training_logs)
    return model.history


def _evaluation_data(validation_data: Any, batch_size: int) -> dict[str, Any]:
    """`model.evaluate`'s data arguments for `fit`'s `validation_data`.

    A tuple `(x, y[, sample_weight])` is batched with `batch_size`; a
    dataset or generator brings its own batches.
    """
    if not isinstance(validation_data, (tuple, list)):
        return {"x": validation_data}
    x_val, y_val, *rest = validation_data
    return {
        "x": x_val,
        "y": y_val,
        "sample_weight": rest[0] if rest else None,
        "batch_size": batch_size,
    }


@contextlib.contextmanager
def _rows_averaged(optimizer: Any, variables: list[Any]) -> Iterator[None]:
    """While the loop runs, SparseAdam averages tables by the rows written.

    The loop settles the averages at each epoch's end and the call's; a
    call stopped by an error settles them here.
    """
    if not isinstance(optimizer, optimizers.SparseAdam):
        yield
        return
    optimizer._lazy_average = True
    try:
        yield
    except BaseException:
        optimizer.settle_moving_average(variables)
        raise
    finally:
        optimizer._lazy_average = False


def _padded(rows: Any, size: int) -> Any:
    """`rows` (one batch's indices) and copies of its first, `size` in all."""
    if isinstance(rows, np.ndarray):
        return np.concatenate([rows, np.repeat(rows[:1], size - len(rows))])
    fill = ops.repeat(rows[:1], size - rows.shape[0])
    return ops.concatenate([rows, fill])


def _should_validate(epoch: int, validation_freq: Any) -> bool:
    """Keras's rule: every `validation_freq` epochs, or those listed."""
    if isinstance(validation_freq, int):
        return (epoch + 1) % validation_freq == 0
    return epoch + 1 in validation_freq


def _pythonify(logs: Mapping[str, Any]) -> dict[str, float]:
    return {
        key: float(np.asarray(ops.convert_to_numpy(value)))
        for key, value in logs.items()
    }


def _build_compiled_state(
    model: Any, x: Mapping[str, np.ndarray], y: np.ndarray
) -> None:
    """Builds the optimizer, compiled loss and metrics on two samples.

    On JAX they are traced, not run (see `Backend.build_state`).

    Once all three are built (a later `fit` call of the same compiled
    model), nothing runs.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    loss = getattr(model, "_compile_loss", None)
    metrics = getattr(model, "_compile_metrics", None)
    if getattr(loss, "built", False) and getattr(metrics, "built", True):
        return
    sample = {column: x[column][:2].reshape(-1) for column in model.columns}
    sample_y = y[:2].astype(keras.config.floatx())

    def run(sample: dict[str, Any], sample_y: Any) -> None:
        with _step.checked_ids(model):
            y_pred = model(sample, training=False)
        model.compute_loss(x=sample, y=sample_y, y_pred=y_pred, training=False)
        model.compute_metrics(sample, sample_y, y_pred, None)

    backend.current.build_state(run, sample, sample_y)
    model.reset_metrics()


def _use_xla(model: Any, steps: int, batch_size: int = XLA_MIN_BATCH) -> bool:
    """Whether a call of `steps` steps of `batch_size` runs under XLA.

    Only where XLA is optional (TensorFlow), and not after
    `compile(jit_compile=False)`: when the forward pass and the step are
    all RatingModel's and Keras's own (a subclass's code may use ops XLA
    lacks; a loss XLA cannot compile makes the loop a graph), not with
    SparseAdam (whose row updates XLA made 2-9x slower on a CPU), and only
    for calls of at least `XLA_MIN_STEPS` steps of at least
    `XLA_MIN_BATCH` rows, which repay the seconds XLA takes to compile the
    loop (once per batch size).
    """
    return (
        backend.current.OPTIONAL_JIT
        and steps >= XLA_MIN_STEPS
        and batch_size >= XLA_MIN_BATCH
        and model.__dict__.get("_xla_allowed", True)
        and not isinstance(model.optimizer, optimizers.SparseAdam)
        and _sparse_rows.own_methods(model, ("call", "embed", "interact"))
        and type(model).train_step is keras.Model.train_step
    )


def _runner(model: Any, sparse: bool, jit: bool) -> generic.Runner:
    """The backend's device loop for `model`.

    With `sparse` (SparseAdam and the model's own lookups), the JAX and
    torch steps differentiate with respect to the rows a batch reads.
    With `jit` (see `_use_xla`) the TensorFlow loop runs under XLA.
    """
    tables = _sparse_rows.SparseTables(model) if sparse else None
    runner = backend.current.Runner
    assert runner is not None  # `blocker` has said the loop can run.
    # A padded last batch trains as its real rows alone when no layer
    # mixes rows (a subclass's forward pass might: batch normalization)
    # and no loss counts the padding rows (row regularization).
    pad = _sparse_rows.own_methods(
        model, ("call", "embed", "interact")
    ) and not _sparse_rows.regularizes_rows(model)
    return runner(model, tables=tables, jit=jit, pad=pad)
