"""torch: eager id checks, in-place row updates, an eager device loop."""

import functools
import math
from typing import Any
from typing import ClassVar

import keras
import torch
from keras import ops

from keras_catembed import _step
from keras_catembed.backend import generic


def unique_rows(rows: Any, num_rows: int) -> tuple[Any, Any]:
    """`torch.unique(rows, return_inverse=True)`, faster for big batches.

    When the table is not much larger than the batch, marking each row in
    a table-sized scratch array and numbering the marks with a cumulative
    sum is cheaper on a CPU than `torch.unique`'s sort; the results are
    the same: the sorted distinct rows and each element's position among
    them.
    """
    if num_rows > 16 * rows.shape[0]:
        unique, positions = torch.unique(rows, return_inverse=True)
        return unique, positions
    # `index_fill_`, `index_select` and `index_copy_` rather than indexing
    # (`mark[rows] = 1`): several times as fast for 16384 rows here.
    index = rows.long()
    mark = torch.zeros(num_rows + 1, dtype=torch.int32, device=rows.device)
    mark.index_fill_(0, index, 1)
    rank = torch.cumsum(mark, 0, dtype=torch.int32) - 1
    positions = rank.index_select(0, index).long()
    unique = torch.empty(
        int(rank[-1]) + 1, dtype=rows.dtype, device=rows.device
    )
    unique.index_copy_(0, positions, rows)
    return unique, positions


def _step_size(optimizer: Any, learning_rate: Any, dtype: Any) -> Any:
    """Adam's bias-corrected step size, as Keras's Adam computes it.

    Computed once per step: the dense weights' update and each table's
    ask for it with the same step count and learning rate. The step count
    and a learning-rate tensor are told apart by the tensor itself and
    the count of its in-place writes (an `assign` writes in place); the
    cache holds both tensors, so their ids stay theirs.
    """
    if isinstance(learning_rate, keras.Variable):
        learning_rate = learning_rate.value
    iterations = optimizer.iterations.value
    held = (iterations, learning_rate)
    rate = (
        (id(learning_rate), learning_rate._version)
        if isinstance(learning_rate, torch.Tensor)
        else learning_rate
    )
    key = (
        id(iterations),
        iterations._version,
        rate,
        optimizer.beta_1,
        optimizer.beta_2,
        dtype,
    )
    cached = optimizer.__dict__.get("_catembed_step_size")
    if cached is not None and cached[0] == key:
        return cached[2]
    alpha = _bias_corrected(optimizer, iterations, learning_rate, dtype)
    optimizer.__dict__["_catembed_step_size"] = (key, held, alpha)
    return alpha


def _bias_corrected(
    optimizer: Any, iterations: Any, learning_rate: Any, dtype: Any
) -> Any:
    local_step = (iterations + 1).to(dtype)
    device = local_step.device
    lr = torch.as_tensor(learning_rate, dtype=dtype, device=device)
    beta_1_power = torch.pow(
        torch.tensor(optimizer.beta_1, dtype=dtype, device=device), local_step
    )
    beta_2_power = torch.pow(
        torch.tensor(optimizer.beta_2, dtype=dtype, device=device), local_step
    )
    return lr * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)


# glibc's malloc maps each block above a threshold (128 KiB at first)
# straight from the system, and gives back freed heap memory above a
# second one; it raises both to the size of the largest mapped block freed
# so far. Keras's dense torch steps allocate and free table-sized tensors
# (the tables' gradients, Adam's temporaries) at every step: until a block
# larger than them has been freed, each is mapped or given back anew and
# its pages faulted in again, and a new model's first `fit` took up to
# half as long again per epoch (dense Adam on a 138,493-row table, batch 1024,
# `benchmarks/throughput.py`). One block of this size, allocated and freed
# once, raises both thresholds as a long run would (glibc raises them for
# blocks up to 32 MiB). Elsewhere it is one allocation.
_ALLOCATOR_BLOCK = 16 * 2**20


@functools.cache
def settle_allocator() -> None:
    """Frees one `_ALLOCATOR_BLOCK`-byte block, once per process."""
    # Allocated and, unreferenced, freed at once.
    torch.empty(_ALLOCATOR_BLOCK, dtype=torch.uint8)


def _batch(ids: Any, targets: Any, index: Any) -> tuple[Any, Any]:
    """`generic.batch` in torch operations (one `index_select` each)."""
    return (
        {
            column: torch.index_select(values, 0, index)
            for column, values in ids.items()
        },
        torch.index_select(targets, 0, index),
    )


class Runner(generic.Runner):
    """Runs steps eagerly over tensors held on the device.

    With `tables` (a `keras_catembed._sparse_rows.SparseTables`), each
    step differentiates with respect to the batch's unique table rows.
    """

    def run(self, block: Any, rows: int | None = None) -> Any:
        from keras_catembed import _forward

        settle_allocator()
        model = self.model
        step = model.train_step if self.tables is None else self._sparse_step
        # The model's own `call`, without `Layer.__call__`'s bookkeeping,
        # where the loop calls its layers directly and the model needs
        # none of it (`_forward.calls_model_directly`).
        self._forward = (
            model.call
            if _step.current(model).direct
            and _forward.calls_model_directly(model)
            else model
        )
        with _step.checked_ids(model):
            for index in block:
                logs = step(_batch(self.ids, self.targets, index))
        return logs

    def _sparse_step(self, data: Any) -> Any:
        model = self.model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        tables = self.tables.by_index()
        uniques, rows, context = {}, {}, {}
        for index, layer in tables.items():
            table_rows, num_rows = self.tables.needed_rows(layer, x)
            unique, positions = unique_rows(table_rows, num_rows)
            gathered = torch.index_select(
                layer.embeddings.value.detach(), 0, unique
            )
            gathered.requires_grad_(True)
            uniques[index], rows[index] = unique, gathered
            context[id(layer)] = (gathered, positions, unique)
        with _step.gathered_rows(model, context):
            y_pred = self._forward(x, training=True)
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
            _step.RowGradient(
                uniques[index], rows[index].grad, rows[index].detach()
            )
            if index in tables
            else variable.value.grad
            for index, variable in enumerate(variables)
        ]
        with torch.no_grad():
            model.optimizer.apply(grads, variables)
        return model.compute_metrics(x, y, y_pred, sample_weight)


# Dtypes `torch.bincount` sums as weights (in the weights' dtype), and the
# fewest lookups for which it sums a gradient faster than `index_add_` (on
# this project's 2-core CPU: slower at 4096 lookups of 8 values, twice as
# fast from 8192).
_BINCOUNT_DTYPES = (torch.float32, torch.float64)
_BINCOUNT_FROM = 8192


class _GatherRows(torch.autograd.Function):  # type: ignore[misc]
    """`index_select` of rows; the gradient summed per row by `bincount`.

    The gradient is `index_select`'s (an `index_add_` of the rows'
    gradients), computed as one weighted `bincount` over every element,
    each row's terms summed in the same order: on a CPU about twice as
    fast from `_BINCOUNT_FROM` lookups.
    """

    @staticmethod
    def forward(ctx: Any, value: Any, indices: Any) -> Any:
        ctx.save_for_backward(indices)
        ctx.shape = value.shape
        return torch.index_select(value, 0, indices)

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        (indices,) = ctx.saved_tensors
        num_rows, width = ctx.shape[0], math.prod(ctx.shape[1:])
        columns = torch.arange(width, device=grad.device)
        elements = (indices[:, None] * width + columns).reshape(-1)
        summed = torch.bincount(
            elements, weights=grad.reshape(-1), minlength=num_rows * width
        )
        return summed.to(grad.dtype).reshape(ctx.shape), None


class TorchBackend(generic.Backend):
    # `torch.compile` would drop the id checks: a layer checking ids keeps
    # Keras from compiling it.
    SUPPORTS_JIT: ClassVar[bool] = False
    # Eager: one Keras `update_step` per weight, or one Keras op per
    # step of Adam's arithmetic, costs more than its math.
    EAGER_ADAM: ClassVar[bool] = True
    EAGER_LAYERS: ClassVar[bool] = True
    Runner: ClassVar[type[generic.Runner] | None] = Runner

    def is_traced(self, x: Any) -> bool:
        return bool(torch.compiler.is_compiling())

    def adam_together(
        self, optimizer: Any, grads: Any, variables: Any, learning_rate: Any
    ) -> None:
        """`keras.optimizers.Adam.update_step` of every variable at once.

        The same arithmetic, in `torch._foreach_*` operations over the
        lists of variables, moments and gradients.
        """
        values = [variable.value for variable in variables]
        alpha = _step_size(optimizer, learning_rate, values[0].dtype)
        index = optimizer._get_variable_index
        moments = [optimizer._momentums[index(x)].value for x in variables]
        velocities = [optimizer._velocities[index(x)].value for x in variables]
        with torch.no_grad():
            grads = [
                grad.to(value.dtype)
                for grad, value in zip(grads, values, strict=True)
            ]
            torch._foreach_add_(
                moments,
                torch._foreach_sub(grads, moments),
                alpha=1 - optimizer.beta_1,
            )
            torch._foreach_add_(
                velocities,
                torch._foreach_sub(
                    torch._foreach_mul(grads, grads), velocities
                ),
                alpha=1 - optimizer.beta_2,
            )
            steps = torch._foreach_mul(moments, alpha)
            torch._foreach_div_(
                steps,
                torch._foreach_add(
                    torch._foreach_sqrt(velocities), optimizer.epsilon
                ),
            )
            torch._foreach_sub_(values, steps)

    def adam_rows(
        self,
        optimizer: Any,
        variable: Any,
        indices: Any,
        values: Any,
        learning_rate: Any,
    ) -> Any:
        """SparseAdam's row update in torch operations, as its Keras ops."""
        index = optimizer._get_variable_index(variable)
        moments = optimizer._momentums[index].value
        velocities = optimizer._velocities[index].value
        dtype = moments.dtype
        with torch.no_grad():
            alpha = _step_size(optimizer, learning_rate, dtype)
            indices = torch.as_tensor(indices).long()
            values = values.to(dtype)
            m_rows = torch.index_select(moments, 0, indices)
            v_rows = torch.index_select(velocities, 0, indices)
            m_rows = m_rows + (values - m_rows) * (1 - optimizer.beta_1)
            v_rows = v_rows + (torch.square(values) - v_rows) * (
                1 - optimizer.beta_2
            )
            moments.index_copy_(0, indices, m_rows)
            velocities.index_copy_(0, indices, v_rows)
            return alpha * m_rows / (torch.sqrt(v_rows) + optimizer.epsilon)

    def gather_rows(self, value: Any, indices: Any) -> Any:
        # On a CPU, `index_select`: its gradient, an `index_add_`, is
        # about twice as fast as the sort of `embedding`'s (`ops.take`);
        # for many lookups one `bincount` (`_GatherRows`) sums it twice
        # as fast again. On an accelerator `ops.take` as before (there the
        # scatter accumulates with atomics, in no fixed order). Indices
        # are in range (no negative ones).
        if value.device.type != "cpu":
            return ops.take(value, indices, axis=0)
        indices = torch.as_tensor(indices, device=value.device).long()
        flat = indices.reshape(-1)
        if (
            value.requires_grad
            and value.dtype in _BINCOUNT_DTYPES
            and flat.shape[0] >= _BINCOUNT_FROM
        ):
            rows = _GatherRows.apply(value, flat)
        else:
            rows = torch.index_select(value, 0, flat)
        return rows.reshape(*indices.shape, *value.shape[1:])

    def scatter_rows(
        self, optimizer: Any, variable: Any, indices: Any, rows: Any, how: str
    ) -> None:
        value = (
            variable.value if isinstance(variable, keras.Variable) else variable
        )
        with torch.no_grad():
            rows = rows.to(value.dtype)
            indices = indices.long()
            if how == "set":
                value.index_copy_(0, indices, rows)
            else:
                value.index_add_(0, indices, rows, alpha=-1)

    def value_token(self, variable: Any) -> Any:
        # `assign` copies into the tensor, which counts its in-place writes
        # (except a tensor made under `torch.inference_mode`).
        value = variable.value
        if value.is_inference():
            return None
        return (value.data_ptr(), value._version)

    def on_accelerator(self, tensor: Any) -> bool:
        return bool(tensor.device.type != "cpu")

    def export_error(self, format: str, signature: Any) -> str | None:
        if format == "tf_saved_model" and signature is None:
            return (
                "Exporting a model to a SavedModel needs the TensorFlow "
                "or JAX backend (Keras exports torch models only through "
                "torch_xla, with flat inputs). Save the model with "
                "`model.save('model.keras')`, load it with "
                "KERAS_BACKEND=tensorflow or jax, and export it there."
            )
        return None


BACKEND = TorchBackend()
