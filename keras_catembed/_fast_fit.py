"""The device loop behind `RatingModel.fit` for in-memory arrays.

Stock `fit` feeds every step through a data adapter (tf.data or a Python
iterator) and, on JAX and torch, dispatches one compiled step per batch.
For ids and ratings that fit in memory this loop instead:

- checks the arrays once (the caller does), then runs steps without the
  per-step id checks;
- keeps the arrays on the device, draws each epoch's permutation there and
  gathers each batch there;
- runs many steps per compiled call (`lax.scan` on JAX, a `tf.while_loop`
  on TensorFlow; torch runs eagerly), about a second of steps, so that
  the progress bar and batch callbacks move within an epoch;
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
import time

import keras
import numpy as np
from keras import ops

from keras_catembed import optimizers
from keras_catembed.entity_embedding import EntityEmbedding

# Steps per compiled call when the model's `steps_per_execution` is 1.
# The first epoch of a shape runs calls of 1/BLOCKS_PER_EPOCH of the epoch
# (MIN_STEPS_PER_EXECUTION to MAX_STEPS_PER_EXECUTION steps) and times
# them; later epochs run calls of about SECONDS_PER_EXECUTION (a power of
# two of steps, at most half the epoch and about 2**20 samples). So the
# progress bar and the batch callbacks move within every epoch, and a
# call is long enough for its fixed cost not to slow the steady state.
SAMPLES_PER_EXECUTION = 2**20
BLOCKS_PER_EPOCH = 20
MIN_STEPS_PER_EXECUTION = 8
MAX_STEPS_PER_EXECUTION = 1024
SECONDS_PER_EXECUTION = 1.0


def steps_per_call(model, full_steps, batch_size):
    """Steps per compiled call in an epoch not yet timed.

    The model's own `steps_per_execution` wins when it is set above 1.
    """
    per_call = model.steps_per_execution
    if per_call <= 1:
        per_call = -(-full_steps // BLOCKS_PER_EPOCH)
        per_call = max(per_call, MIN_STEPS_PER_EXECUTION)
        per_call = min(
            per_call,
            MAX_STEPS_PER_EXECUTION,
            max(1, SAMPLES_PER_EXECUTION // batch_size),
        )
    return max(1, min(per_call, full_steps))


def timed_steps_per_call(seconds_per_step, full_steps, batch_size):
    """Steps per call once a step is timed: about SECONDS_PER_EXECUTION.

    A power of two (few distinct compiled lengths), at least
    MIN_STEPS_PER_EXECUTION and at most about 2**20 samples. An epoch
    longer than SECONDS_PER_EXECUTION takes at least two calls, so the bar
    moves within it (a power of two of steps each); a shorter one runs as
    one call (each call costs a dispatch, and the bar has nothing to show
    within a second).
    """
    wanted = SECONDS_PER_EXECUTION / max(seconds_per_step, 1e-9)
    steps = 2 ** int(np.floor(np.log2(max(wanted, 1.0))))
    ceiling = max(1, SAMPLES_PER_EXECUTION // batch_size)
    if full_steps * seconds_per_step > SECONDS_PER_EXECUTION:
        ceiling = min(ceiling, -(-full_steps // 2))
    else:
        steps = full_steps
    steps = min(max(steps, MIN_STEPS_PER_EXECUTION), ceiling)
    return max(1, min(steps, full_steps))


def _executions(per_call, full_steps, remainder, batch_size):
    """(first step, number of steps, batch size) of each compiled call."""
    executions = [
        (start, min(per_call, full_steps - start), batch_size)
        for start in range(0, full_steps, per_call)
    ]
    if remainder:
        executions.append((full_steps, 1, remainder))
    return executions


def blocker(model, x, y, kwargs):
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
    if keras.distribution.distribution() is not None:
        return "a keras.distribution distribution is set"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.distribute.has_strategy() or getattr(
            model, "_distribute_strategy", None
        ):
            return "the model uses a tf.distribute strategy"
    elif keras.backend.backend() not in ("jax", "torch"):
        return f"the {keras.backend.backend()} backend has no device loop"
    return None


def _is_array(value):
    if isinstance(value, (np.ndarray, list, tuple)):
        return True
    return (
        hasattr(value, "shape")
        and hasattr(value, "dtype")
        and not hasattr(value, "element_spec")
    )


def table_layers(model):
    """The EntityEmbedding layers of `model`, embeddings then biases."""
    layers = list(model.embedding_layers.values())
    layers += list(model.bias_layers.values())
    return [layer for layer in layers if isinstance(layer, EntityEmbedding)]


def sparse_steps(model):
    """Whether the sparse-row steps apply (JAX and torch).

    They replace each table lookup by a lookup in the batch's gathered
    rows, which holds when every EntityEmbedding is called once, on its
    column, as `RatingModel.call` and `embed` do.
    """
    from keras_catembed.rating_model import RatingModel

    return (
        isinstance(model.optimizer, optimizers.SparseAdam)
        and type(model).call is RatingModel.call
        and type(model).embed is RatingModel.embed
    )


def own_code(model):
    """Whether the forward pass is all RatingModel's (known XLA-safe)."""
    from keras_catembed.rating_model import RatingModel

    return all(
        getattr(type(model), name) is getattr(RatingModel, name)
        for name in ("call", "embed", "interact")
    )


@contextlib.contextmanager
def trusted_ids(model, trusted=True):
    """Skips (or, with `trusted=False`, keeps) the per-step id checks.

    Arrays that `RatingModel` has checked need no check per step. The
    previous setting comes back on exit, so nested calls (validation
    inside `fit`) each get their own.
    """
    layers = table_layers(model)
    previous = [layer._trusted_ids for layer in layers]
    for layer in layers:
        layer._trusted_ids = trusted
    try:
        yield
    finally:
        for layer, value in zip(layers, previous, strict=True):
            layer._trusted_ids = value
            layer._gathered = None


def fit(
    model,
    x,
    y,
    *,
    batch_size=None,
    epochs=1,
    verbose="auto",
    callbacks=None,
    validation_split=0.0,
    validation_data=None,
    shuffle=True,
    initial_epoch=0,
    validation_batch_size=None,
    validation_freq=1,
):
    """Trains `model` on checked in-memory arrays; returns its History."""
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

    ids = {
        column: ops.convert_to_tensor(
            x[column].reshape(num_samples).astype(np.int32)
        )
        for column in columns
    }
    targets = ops.convert_to_tensor(y.astype(keras.config.floatx()))

    full_steps, remainder = divmod(num_samples, batch_size)
    steps_per_epoch = full_steps + (remainder > 0)
    per_call = steps_per_call(model, full_steps, batch_size)

    # The compiled steps are kept until the model is compiled again.
    cache = model.__dict__.setdefault("_fast_fit_runners", {})
    key = (keras.backend.backend(), sparse_steps(model))
    if key not in cache:
        cache[key] = _RUNNERS[key[0]](model)
    runner = cache[key]
    runner.ids, runner.targets = ids, targets
    # Calls are timed in the first epoch of each shape, unless the model
    # sets its own `steps_per_execution`.
    shape = (batch_size, full_steps)
    timed = model.steps_per_execution > 1 or shape in runner.block_steps
    per_call = runner.block_steps.get(shape, per_call)
    executions = _executions(per_call, full_steps, remainder, batch_size)
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
    # Shuffle where it is fast: on an accelerator, on the device; on a
    # CPU, with NumPy (XLA's CPU sort-based permutation is far slower).
    on_device = _on_accelerator(targets)
    seed = keras.random.SeedGenerator() if on_device else None
    # Seeded from NumPy's global generator, which
    # `keras.utils.set_random_seed` seeds, so runs repeat.
    rng = np.random.default_rng(np.random.randint(2**31))  # noqa: NPY002
    model.stop_training = False
    callbacks.on_train_begin()
    training_logs = None
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        if shuffle and on_device:
            order = keras.random.shuffle(
                ops.arange(num_samples, dtype="int32"), seed=seed
            )
        elif shuffle:
            order = ops.convert_to_tensor(
                rng.permutation(num_samples).astype(np.int32)
            )
        else:
            order = ops.arange(num_samples, dtype="int32")
        runner.begin_epoch()
        ends = []  # (time, steps done) after each full-length call
        for start, steps, size in executions:
            callbacks.on_train_batch_begin(start)
            block = ops.reshape(
                order[start * batch_size : start * batch_size + steps * size],
                (steps, size),
            )
            logs = runner.run(block)
            if not timed and steps == per_call:
                _pythonify(logs)  # waits for the call to finish
                ends.append((time.perf_counter(), start + steps))
            callbacks.on_train_batch_end(start + steps - 1, logs)
            if model.stop_training:
                break
        runner.end_epoch()
        if len(ends) >= 3:
            # The first call may include compilation: time the others.
            seconds = (ends[-1][0] - ends[0][0]) / (ends[-1][1] - ends[0][1])
            per_call = timed_steps_per_call(seconds, full_steps, batch_size)
            runner.block_steps[shape] = per_call
            executions = _executions(
                per_call, full_steps, remainder, batch_size
            )
            timed = True
        epoch_logs = dict(_pythonify(logs))
        if validation_data is not None and _should_validate(
            epoch, validation_freq
        ):
            x_val, y_val, *rest = validation_data
            val_logs = model.evaluate(
                x_val,
                y_val,
                sample_weight=rest[0] if rest else None,
                batch_size=validation_batch_size or batch_size,
                verbose=0,
                # As in `keras.Model.fit`: the callbacks see the validation
                # (`keras.callbacks.SwapEMAWeights` swaps weights for it).
                callbacks=callbacks,
                return_dict=True,
            )
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        training_logs = epoch_logs
        if model.stop_training:
            break
    model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs=training_logs)
    return model.history


def _should_validate(epoch, validation_freq):
    """Keras's rule: every `validation_freq` epochs, or those listed."""
    if isinstance(validation_freq, int):
        return (epoch + 1) % validation_freq == 0
    return epoch + 1 in validation_freq


def _on_accelerator(tensor):
    """Whether `tensor` lives on a GPU or TPU rather than the CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        return any(d.platform != "cpu" for d in tensor.devices())
    if backend == "torch":
        return tensor.device.type != "cpu"
    return "CPU" not in tensor.device.upper()


def _pythonify(logs):
    return {
        key: float(np.asarray(ops.convert_to_numpy(value)))
        for key, value in logs.items()
    }


def _build_compiled_state(model, x, y):
    """Builds the optimizer, compiled loss and metrics on two samples."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    sample = {column: x[column][:2].reshape(-1) for column in model.columns}
    sample_y = y[:2].astype(keras.config.floatx())
    with trusted_ids(model):
        y_pred = model(sample, training=False)
    model.compute_loss(x=sample, y=sample_y, y_pred=y_pred, training=False)
    model.compute_metrics(sample, sample_y, y_pred, None)
    model.reset_metrics()


def _batch(ids, targets, index):
    return (
        {
            column: ops.take(values, index, axis=0)
            for column, values in ids.items()
        },
        ops.take(targets, index, axis=0),
    )


class _JaxRunner:
    """Runs blocks of steps as one jitted `lax.scan` over device arrays."""

    def __init__(self, model):
        import jax

        self.model = model
        self.ids = self.targets = None
        # Steps per call by (batch size, full steps), once timed.
        self.block_steps = {}
        self.sparse = sparse_steps(model)
        self.state = None
        step = self._sparse_step if self.sparse else model.train_step

        def run(state, ids, targets, block):
            def body(state, index):
                logs, state = step(state, _batch(ids, targets, index))
                return state, logs

            with trusted_ids(model):
                state, logs = jax.lax.scan(body, state, block)
            return jax.tree.map(lambda value: value[-1], logs), state

        self._run = jax.jit(run, donate_argnums=0)

    def _variables(self):
        model = self.model
        return (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )

    def begin_epoch(self):
        self.state = tuple(
            [variable.value for variable in variables]
            for variables in self._variables()
        )

    def run(self, block):
        # The state is donated to the compiled call (its buffers are
        # reused in place) and written back to the variables right after,
        # so callbacks between calls see current, valid values.
        logs, self.state = self._run(self.state, self.ids, self.targets, block)
        for variables, values in zip(
            self._variables(), self.state, strict=True
        ):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        return logs

    def end_epoch(self):
        self.state = None

    def _sparse_step(self, state, data):
        import jax
        import jax.numpy as jnp

        model = self.model
        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        tables = _table_indices(model)
        constants = {
            id(variable): value
            for variable, value in zip(
                model.non_trainable_variables, non_trainable, strict=True
            )
        }
        gathered, uniques = {}, {}
        for index, layer in tables.items():
            pairs = getattr(layer, "pair_sources", None)
            rows, num_rows = _needed_rows(
                model,
                layer,
                x,
                None if pairs is None else constants[id(pairs)],
            )
            unique, positions = jnp.unique(
                rows,
                size=rows.shape[0],
                fill_value=num_rows,
                return_inverse=True,
            )
            uniques[index] = unique
            gathered[index] = (
                jnp.take(
                    trainable[index], unique, axis=0, mode="fill", fill_value=0
                ),
                positions.reshape(rows.shape),
            )

        def loss_fn(dense, rows):
            values = list(trainable)
            for index, value in dense.items():
                values[index] = value
            for index, layer in tables.items():
                layer._gathered = (rows[index], gathered[index][1])
            try:
                return model.compute_loss_and_updates(
                    values,
                    non_trainable,
                    metrics_vars,
                    x,
                    y,
                    sample_weight,
                    training=True,
                    optimizer_variables=optimizer_vars,
                )
            finally:
                for layer in tables.values():
                    layer._gathered = None

        dense = {
            index: value
            for index, value in enumerate(trainable)
            if index not in tables
        }
        rows = {index: gathered[index][0] for index in tables}
        (_, aux), (dense_grads, row_grads) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True
        )(dense, rows)
        unscaled_loss, y_pred, non_trainable, metrics_vars = aux
        grads = [
            optimizers.RowGradient(uniques[index], row_grads[index])
            if index in tables
            else dense_grads[index]
            for index in range(len(trainable))
        ]
        trainable, optimizer_vars = model.optimizer.stateless_apply(
            optimizer_vars, grads, trainable
        )
        mapping = list(zip(model.metrics_variables, metrics_vars, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            model._loss_tracker.update_state(
                unscaled_loss, sample_weight=y.shape[0]
            )
            logs = model.compute_metrics(x, y, y_pred, sample_weight)
        metrics_vars = [
            _current(scope, variable) for variable in model.metrics_variables
        ]
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def _current(scope, variable):
    value = scope.get_current_value(variable)
    return variable.value if value is None else value


def _table_indices(model):
    """Maps positions in `trainable_variables` to the layer owning each table.

    The EntityEmbedding tables, and the tables of implicit-feedback and
    neighbourhood layers in the lists layout (the dense layout reads its
    whole table at each step).
    """
    owners = {id(layer.embeddings): layer for layer in table_layers(model)}
    for layer in list_layers(model):
        owners[id(layer.embeddings)] = layer
    return {
        index: owners[id(variable)]
        for index, variable in enumerate(model.trainable_variables)
        if id(variable) in owners
    }


def list_layers(model):
    layers = list(getattr(model, "implicit_layers", {}).values())
    layers += list(getattr(model, "neighborhood_layers", {}).values())
    return [layer for layer in layers if not layer.dense and layer.trainable]


def _needed_rows(model, layer, x, pair_sources=None):
    """The table rows `layer` reads for the batch `x`, and the table size."""
    if isinstance(layer, EntityEmbedding):
        return layer._rows(x[layer._column])[0], layer.num_rows
    for pairs, layers in (
        (model.implicit, model.implicit_layers),
        (model.neighborhood, model.neighborhood_layers),
    ):
        for target, source in pairs.items():
            if layers[target] is layer:
                rows = {
                    column: model.embedding_layers[column]._clipped_rows(
                        ops.reshape(x[column], (-1,))
                    )
                    for column in (target, source)
                }
                if pair_sources is None:
                    pair_sources = layer.pair_sources.value
                needed = layer.rows_needed(
                    rows[target], rows[source], pair_sources
                )
                # The table has one more row: the lists' padding.
                return needed, layer.num_sources + 1
    raise ValueError(f"{layer.name} is not a table of this model")


class _TensorFlowRunner:
    """Runs blocks of steps in one `tf.function` over device tensors."""

    def __init__(self, model):
        import tensorflow as tf

        self.model = model
        self.ids = self.targets = None
        # Steps per call by (batch size, full steps), once timed.
        self.block_steps = {}

        def run(ids, targets, block):
            logs = model.train_step(_batch(ids, targets, block[0]))
            for step in tf.range(1, tf.shape(block)[0]):
                logs = model.train_step(_batch(ids, targets, block[step]))
            return logs

        # The loop runs without id checks (the arrays were checked), so
        # XLA can fuse each step. A subclass's own `call`, `embed` or
        # `interact` may use ops XLA lacks: those run without it. So do
        # SparseAdam's row updates, which XLA made 2-9x slower on a CPU.
        jit = own_code(model) and not isinstance(
            model.optimizer, optimizers.SparseAdam
        )
        self._run = tf.function(run, jit_compile=jit, reduce_retracing=True)

    def begin_epoch(self):
        pass

    def run(self, block):
        with trusted_ids(self.model):
            return self._run(self.ids, self.targets, block)

    def end_epoch(self):
        pass


class _TorchRunner:
    """Runs steps eagerly over tensors held on the device."""

    def __init__(self, model):
        self.model = model
        self.ids = self.targets = None
        # Steps per call by (batch size, full steps), once timed.
        self.block_steps = {}
        self.sparse = sparse_steps(model)

    def begin_epoch(self):
        pass

    def end_epoch(self):
        pass

    def run(self, block):
        model = self.model
        step = self._sparse_step if self.sparse else model.train_step
        with trusted_ids(model):
            for index in block:
                logs = step(_batch(self.ids, self.targets, index))
        return logs

    def _sparse_step(self, data):
        import torch

        model = self.model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        tables = _table_indices(model)
        uniques, rows = {}, {}
        for index, layer in tables.items():
            table_rows, _ = _needed_rows(model, layer, x)
            unique, positions = torch.unique(table_rows, return_inverse=True)
            gathered = layer.embeddings.value.detach()[unique]
            gathered.requires_grad_(True)
            uniques[index], rows[index] = unique, gathered
            layer._gathered = (gathered, positions)
        try:
            y_pred = model(x, training=True)
        finally:
            for layer in tables.values():
                layer._gathered = None
        loss = model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        model._loss_tracker.update_state(loss, sample_weight=y.shape[0])
        if model.optimizer is not None:
            loss = model.optimizer.scale_loss(loss)
        variables = model.trainable_weights
        for variable in variables:
            variable.value.grad = None
        loss.backward()
        grads = [
            optimizers.RowGradient(uniques[index], rows[index].grad)
            if index in tables
            else variable.value.grad
            for index, variable in enumerate(variables)
        ]
        with torch.no_grad():
            model.optimizer.apply(grads, variables)
        return model.compute_metrics(x, y, y_pred, sample_weight)


_RUNNERS = {
    "jax": _JaxRunner,
    "tensorflow": _TensorFlowRunner,
    "torch": _TorchRunner,
}
