"""TensorFlow: graph assertions, `IndexedSlices`, a `tf.function` loop."""

from typing import Any
from typing import ClassVar

import numpy as np
import tensorflow as tf

from keras_catembed import _step
from keras_catembed.backend import generic
from keras_catembed.backend.generic import Describe


class Runner(generic.Runner):
    """Runs blocks of steps in one `tf.function` over device tensors.

    TensorFlow's gather gradient is already sparse, so `tables` (the
    sparse-row plan of the other backends) is not needed.
    """

    def __init__(
        self,
        model: Any,
        *,
        tables: Any = None,
        jit: bool = False,
        pad: bool = False,
    ) -> None:
        super().__init__(model)

        def run(ids: Any, targets: Any, block: Any, steps: Any) -> Any:
            def step(index: Any) -> Any:
                return model.train_step(
                    generic.batch(ids, targets, block[index])
                )

            # A while loop on the `steps` tensor: XLA would compile a
            # `tf.range` bound as a constant, anew for each value.
            _, logs = tf.while_loop(
                lambda index, logs: index < steps,
                lambda index, logs: (index + 1, step(index)),
                (tf.constant(1), step(0)),
            )
            return logs

        self._function = run
        self._jit = jit
        # Compiled loops by the dtypes of the inputs. Each is traced once,
        # for any number of rows, block length and batch size: a trace
        # costs seconds, and an epoch's calls differ in length (its last
        # block) and batch size (its last batch).
        self._runs: dict[Any, Any] = {}
        # The longest block so far, by batch size: under XLA (which
        # compiles each shape anew, for seconds) a shorter block is padded
        # to it, its padding steps skipped.
        self._lengths: dict[int, int] = {}

    def compiles(self, steps: int, batch_size: int) -> bool:
        # Only XLA compiles each block shape (a graph takes any length).
        return self._jit and steps > self._lengths.get(batch_size, 0)

    def run(self, block: Any, rows: int | None = None) -> Any:
        try:
            return self._run(block)
        except tf.errors.InvalidArgumentError as error:
            # XLA refuses to compile an op (a loss or metric of the user's
            # own, say) before any step runs: the loop runs as a graph.
            if not (self._jit and _XLA_REFUSED in str(error)):
                raise
            self._jit = False
            self._runs.clear()
            self._lengths.clear()
            return self._run(block)

    def _run(self, block: Any) -> Any:
        steps, size = block.shape
        if self._jit:
            length = max(self._lengths.get(size, 0), steps)
            self._lengths[size] = length
            block = tf.pad(block, [[0, length - steps], [0, 0]])
        inputs = (self.ids, self.targets, block, tf.constant(steps, tf.int32))
        # The signature fixes each input's rank too: (n,) and (n, 1)
        # targets need a function each.
        key = tuple(
            (tensor.dtype, len(tensor.shape))
            for tensor in tf.nest.flatten(inputs)
        )
        if key not in self._runs:
            signature = tf.nest.map_structure(
                lambda tensor: tf.TensorSpec(
                    [None] * len(tensor.shape), tensor.dtype
                ),
                inputs,
            )
            self._runs[key] = tf.function(
                self._function, input_signature=signature, jit_compile=self._jit
            )
        with _step.checked_ids(self.model):
            return self._runs[key](*inputs)


# What TensorFlow says when XLA cannot compile an op of the loop.
_XLA_REFUSED = "Detected unsupported operations"


class TensorFlowBackend(generic.Backend):
    # A compiled graph checks ids with an assertion op, which XLA drops: a
    # layer checking ids keeps Keras's `fit` from compiling with XLA.
    SUPPORTS_JIT: ClassVar[bool] = False
    OPTIONAL_JIT: ClassVar[bool] = True
    Runner: ClassVar[type[generic.Runner] | None] = Runner

    def is_traced(self, x: Any) -> bool:
        return not tf.executing_eagerly() or tf.is_symbolic_tensor(x)

    def held_value(self, variable: Any) -> Any:
        # Outside the graph being traced, a variable reads eagerly.
        with tf.init_scope():
            return tf.identity(variable.value)

    def graph_assert(
        self, bad: Any, ids: Any, message: str, describe: Describe, host: bool
    ) -> Any:
        flat_bad = tf.reshape(bad, [-1])
        flat_values = tf.reshape(ids, [-1])
        offending = tf.boolean_mask(flat_values, flat_bad)[:1]
        return tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [message, "First offending value:", offending],
            name="check_inputs",
        )

    def with_dependencies(self, tensor: Any, assertions: list[Any]) -> Any:
        with tf.control_dependencies(assertions):
            return tf.identity(tensor)

    def lookup(self, table: Any, rows: Any) -> Any:
        """Gathers `rows` of the `table` variable.

        The gather reads the variable's rows directly (a `ResourceGather`),
        so the gradient is a `tf.IndexedSlices` and the full table is never
        copied: reading the whole table first would make every sparse update
        copy it.
        """
        return tf.gather(table.value, rows)

    def sparse_gradient(self, gradient: Any) -> tuple[Any, Any] | None:
        """`(indices, values)` of a `tf.IndexedSlices`, duplicates summed."""
        if not isinstance(gradient, tf.IndexedSlices):
            return None
        unique, position = tf.unique(tf.cast(gradient.indices, tf.int32))
        values = tf.math.unsorted_segment_sum(
            gradient.values, position, tf.shape(unique)[0]
        )
        return unique, values

    def gather_rows(self, value: Any, indices: Any) -> Any:
        return tf.gather(value, indices)

    def scatter_rows(
        self, optimizer: Any, variable: Any, indices: Any, rows: Any, how: str
    ) -> None:
        update = tf.IndexedSlices(rows, indices)
        if how == "set":
            optimizer.assign(variable, update)
        else:
            optimizer.assign_sub(variable, update)

    def copy_value(self, value: Any) -> Any:
        # A TensorFlow read may share the variable's buffer.
        return np.array(value, copy=True)

    def loop_blocker(self, model: Any) -> str | None:
        if tf.distribute.has_strategy() or getattr(
            model, "_distribute_strategy", None
        ):
            return "the model uses a tf.distribute strategy"
        return super().loop_blocker(model)

    def on_accelerator(self, tensor: Any) -> bool:
        return "CPU" not in tensor.device.upper()


BACKEND = TensorFlowBackend()
