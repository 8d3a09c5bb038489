"""TensorFlow: graph assertions, `IndexedSlices`, a `tf.function` loop."""

import keras
import numpy as np
import tensorflow as tf

from keras_catembed import _step
from keras_catembed.backend import generic
from keras_catembed.backend.generic import restore_state  # noqa: F401
from keras_catembed.backend.generic import state_variables  # noqa: F401
from keras_catembed.backend.generic import unshare_ema_buffers  # noqa: F401

# A compiled graph checks ids with an assertion op, which XLA drops: a
# layer checking ids keeps Keras's `fit` from compiling with XLA.
SUPPORTS_JIT = False
DISTINCT_STEP_FUNCTIONS = False


def is_concrete(x):
    if isinstance(x, (np.ndarray, np.generic, list, tuple, int, float)):
        return True
    if isinstance(x, keras.KerasTensor):
        return False
    return tf.executing_eagerly() and not tf.is_symbolic_tensor(x)


def graph_assert(bad, values, message, describe, host_callbacks):
    flat_bad = tf.reshape(bad, [-1])
    flat_values = tf.reshape(values, [-1])
    offending = tf.boolean_mask(flat_values, flat_bad)[:1]
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [message, "First offending id:", offending],
        name="check_ids",
    )


def with_dependencies(tensor, assertions):
    with tf.control_dependencies(assertions):
        return tf.identity(tensor)


def lookup(table, rows):
    """Gathers `rows` of the `table` variable.

    The gather reads the variable's rows directly (a `ResourceGather`),
    so the gradient is a `tf.IndexedSlices` and the full table is never
    copied: reading the whole table first would make every sparse update
    copy it.
    """
    return tf.gather(table.value, rows)


def sparse_gradient(gradient):
    """`(indices, values)` of a `tf.IndexedSlices`, duplicates summed."""
    if not isinstance(gradient, tf.IndexedSlices):
        return None
    unique, position = tf.unique(tf.cast(gradient.indices, tf.int32))
    values = tf.math.unsorted_segment_sum(
        gradient.values, position, tf.shape(unique)[0]
    )
    return unique, values


def gather_rows(value, indices):
    return tf.gather(value, indices)


def scatter_rows(optimizer, variable, indices, rows, how):
    update = tf.IndexedSlices(rows, indices)
    if how == "set":
        optimizer.assign(variable, update)
    else:
        optimizer.assign_sub(variable, update)


def copy_value(value):
    # A TensorFlow read may share the variable's buffer.
    return np.array(value, copy=True)


def save_state(model, copy):
    return generic.save_state(model, copy, copy_value)


def loop_blocker(model):
    if tf.distribute.has_strategy() or getattr(
        model, "_distribute_strategy", None
    ):
        return "the model uses a tf.distribute strategy"
    return None


def on_accelerator(tensor):
    return "CPU" not in tensor.device.upper()


def export_error(format, signature):
    return None


class Runner:
    """Runs blocks of steps in one `tf.function` over device tensors.

    TensorFlow's gather gradient is already sparse, so `tables` (the
    sparse-row plan of the other backends) is not needed.
    """

    def __init__(self, model, *, tables=None, jit=False):
        self.model = model
        self.ids = self.targets = None
        # Steps per call by (batch size, full steps), once timed.
        self.block_steps = {}

        def run(ids, targets, block):
            batch = generic.batch
            logs = model.train_step(batch(ids, targets, block[0]))
            for step in tf.range(1, tf.shape(block)[0]):
                logs = model.train_step(batch(ids, targets, block[step]))
            return logs

        self._run = tf.function(run, jit_compile=jit, reduce_retracing=True)

    def begin_epoch(self):
        pass

    def run(self, block):
        with _step.checked_ids(self.model):
            return self._run(self.ids, self.targets, block)

    def end_epoch(self):
        pass
