"""JAX's device loop: blocks of steps as one jitted `lax.fori_loop`."""

from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from keras_catembed import _step
from keras_catembed.backend import generic
from keras_catembed.backend import jax_programs
from keras_catembed.backend.jax_mesh import Mesh
from keras_catembed.backend.jax_rows import EveryRow
from keras_catembed.backend.jax_rows import gather_rows
from keras_catembed.backend.jax_rows import unique_rows


class Runner(generic.Runner):
    """Runs blocks of steps as one jitted `lax.fori_loop` on the device.

    With `tables` (a `keras_catembed._sparse_rows.SparseTables`), each
    step differentiates with respect to the batch's unique table rows
    rather than the whole tables.
    """

    def __init__(
        self,
        model: Any,
        *,
        tables: Any = None,
        jit: bool = True,
        pad: bool = False,
    ) -> None:
        super().__init__(model, tables=tables)
        self.state: Any = None
        # The longest block compiled so far, by batch size: shorter blocks
        # (an epoch's last) are padded to it rather than compiled anew.
        self._lengths: dict[int, int] = {}
        # Each call's step count as a device scalar, made once per value
        # (making one costs more than a short call's dispatch).
        self._counts: dict[int, Any] = {}
        # The devices of the `keras.distribution` set for this epoch.
        self._mesh: Mesh | None = None
        # The shapes of a step's logs (metric results: the same for any
        # batch size and block length), traced once for every compiled
        # block rather than once more for each.
        self._log_shapes: Any = None
        # The loop's own step weights its rows, so an epoch's last batch
        # runs padded to the batch size in the program of the full batches
        # (`_step.padding_weights`) rather than compiling its own. It
        # stands in for Keras's `train_step` unless the model has its own.
        own = pad and (
            tables is not None
            or type(model).train_step is keras.Model.train_step
        )
        self._weighting = _step.padding_weights(model) if own else None
        self.pads_remainder = self._weighting is not None
        step = (
            self._weighted_step
            if tables is not None or self.pads_remainder
            else model.train_step
        )

        def run(
            state: Any,
            ids: Any,
            targets: Any,
            block: Any,
            steps: Any,
            rows: Any,
        ) -> Any:
            def take(state: Any, item: Any) -> tuple[Any, Any]:
                index, real = item
                data: tuple[Any, ...] = generic.batch(ids, targets, index)
                if self.pads_remainder:
                    # The batch's first `real` rows are real, the rest
                    # padding.
                    data = (*data, jnp.arange(index.shape[0]) < real)
                logs, state = step(state, data)
                return state, logs

            with _step.checked_ids(model):
                if self._log_shapes is None:
                    self._log_shapes = jax.eval_shape(
                        take, state, (block[0], rows)
                    )[1]
                shapes = self._log_shapes

                def body(number: Any, carried: Any) -> tuple[Any, Any]:
                    state, _ = carried
                    # Only the call's last step may be a padded batch.
                    real = jnp.where(number == steps - 1, rows, block.shape[1])
                    return take(state, (block[number], real))

                # The call's `steps` steps, a loop of that many turns: the
                # block's padding steps are never entered, where a scan over
                # the whole block needed a conditional in every step to
                # skip them (a little slower at batch size 16384).
                zeros = jax.tree.map(
                    lambda s: jnp.zeros(s.shape, s.dtype), shapes
                )
                state, logs = jax.lax.fori_loop(0, steps, body, (state, zeros))
            if self._mesh is not None:
                # Each variable keeps its layout from call to call.
                state = jax.lax.with_sharding_constraint(
                    state, self._mesh.state_shardings
                )
            return logs, state

        # `keep_unused`: the compiled program may be shared with other
        # models (`jax_programs`), whose inputs must line up with its own.
        self._run = jax.jit(run, donate_argnums=0, keep_unused=True)
        # The compiled loop by its arguments' trees, shapes, dtypes and
        # placements, shared with other models' identical loops.
        self._programs: dict[Any, Any] = {}

    def _call(self, *args: Any) -> Any:
        if self._mesh is not None:
            # Placed and sharded arguments: jit's own cache.
            return self._run(*args)
        leaves, tree = jax.tree.flatten(args)
        signature = (
            tree,
            tuple(
                (
                    np.shape(leaf),
                    (
                        leaf.dtype
                        if hasattr(leaf, "dtype")
                        else np.result_type(leaf)
                    ),
                    getattr(leaf, "weak_type", False),
                    jax_programs.placement(leaf),
                )
                for leaf in leaves
            ),
        )
        program = self._programs.get(signature)
        if program is None:
            program = jax_programs.compiled(self._run, *args)
            self._programs[signature] = program
        return program(*args)

    def _variables(self) -> tuple[Any, Any, Any, Any]:
        model = self.model
        return (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )

    def compiles(self, steps: int, batch_size: int) -> bool:
        # Shorter blocks are padded to the longest compiled.
        return steps > self._lengths.get(batch_size, 0)

    def begin_epoch(self) -> None:
        self._mesh = Mesh.current()
        if self._mesh is not None:
            self.ids = self._mesh.replicate(self.ids)
            self.targets = self._mesh.replicate(self.targets)

    def from_host(self, block: Any) -> Any:
        # Kept in NumPy until `run` has padded it: `jnp.asarray` and
        # `jnp.pad` each compile a program per shape, `jax.device_put`
        # copies without one.
        return block

    def run(self, block: Any, rows: int | None = None) -> Any:
        # The state is read from the variables before every call (a
        # callback between calls may have set some, as `keras.Model.fit`
        # allows), donated to the compiled call (its buffers are reused
        # in place) and written back to the variables right after, so
        # callbacks between calls see current, valid values.
        self.state = tuple(
            [variable.value for variable in variables]
            for variables in self._variables()
        )
        if self._mesh is not None:
            self.state = self._mesh.place_state(self.state)
        steps, size = block.shape
        length = max(self._lengths.get(size, 0), steps)
        self._lengths[size] = length
        if steps < length:
            pad = np.pad if isinstance(block, np.ndarray) else jnp.pad
            block = pad(block, ((0, length - steps), (0, 0)))
        if self._mesh is not None:
            block = self._mesh.split_batches(block)
            if self._mesh.one_call_at_a_time:
                jax.block_until_ready(self.state)
        elif isinstance(block, np.ndarray):
            block = jax.device_put(block)
        logs, self.state = self._call(
            self.state,
            self.ids,
            self.targets,
            block,
            self._count(steps),
            self._count(size if rows is None else rows),
        )
        for variables, values in zip(
            self._variables(), self.state, strict=True
        ):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        return logs

    def end_epoch(self) -> None:
        self.state = None

    def _count(self, steps: int) -> Any:
        if steps not in self._counts:
            self._counts[steps] = jnp.asarray(steps, jnp.int32)
        return self._counts[steps]

    def _weighted_step(self, state: Any, data: Any) -> tuple[Any, Any]:
        """Keras's JAX `train_step`, sparse on `tables`, rows weighted."""
        model = self.model
        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, real = keras.utils.unpack_x_y_sample_weight(data)
        # The loss weighs the padding rows 0, the real rows what makes the
        # loss theirs alone; the metrics and the loss tracker count the
        # real rows.
        count = y.shape[0]
        sample_weight = metric_weight = None
        if real is not None:
            metric_weight = real.astype(y.dtype)
            count = jnp.sum(metric_weight)
            sample_weight = metric_weight
            if self._weighting == "scaled":
                sample_weight = metric_weight * (y.shape[0] / count)
        tables = {} if self.tables is None else self.tables.by_index()
        constants = {
            id(variable): value
            for variable, value in zip(
                model.non_trainable_variables, non_trainable, strict=True
            )
        }
        gathered: dict[int, tuple[Any, Any]] = {}
        uniques: dict[int, Any] = {}
        for index, layer in tables.items():
            rows, num_rows = self.tables.needed_rows(
                layer, x, lambda variable: constants[id(variable)]
            )
            unique, positions = unique_rows(rows, num_rows)
            uniques[index] = unique
            gathered[index] = (
                gather_rows(trainable[index], unique),
                positions,
            )

        def loss_fn(dense: dict[int, Any], rows: dict[int, Any]) -> Any:
            values = list(trainable)
            for index, value in dense.items():
                values[index] = value
            context = {
                id(layer): (
                    rows[index],
                    gathered[index][1],
                    _table_rows(uniques[index]),
                )
                for index, layer in tables.items()
            }
            with _step.gathered_rows(model, context):
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
            _step.RowGradient(uniques[index], row_grads[index], rows[index])
            if index in tables
            else dense_grads[index]
            for index in range(len(trainable))
        ]
        trainable, optimizer_vars = model.optimizer.stateless_apply(
            optimizer_vars, grads, trainable
        )
        mapping = list(zip(model.metrics_variables, metrics_vars, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            model._loss_tracker.update_state(unscaled_loss, sample_weight=count)
            if metric_weight is None:
                logs = model.compute_metrics(x, y, y_pred, None)
            else:
                logs = _step.masked_metrics(model, y, y_pred, metric_weight)
        metrics_vars = [
            _current(scope, variable) for variable in model.metrics_variables
        ]
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def _table_rows(unique: Any) -> Any:
    """The gathered rows' table rows for a layer: None for every row."""
    return None if isinstance(unique, EveryRow) else unique


def _current(scope: Any, variable: Any) -> Any:
    value = scope.get_current_value(variable)
    return variable.value if value is None else value
