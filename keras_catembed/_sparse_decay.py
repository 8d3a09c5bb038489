"""SparseAdam's decoupled weight decay, applied lazily row by row.

Keras's `weight_decay` multiplies every variable by
`1 - learning_rate * weight_decay` at every step. SparseAdam keeps the
log of the product of every step's factor so far (`decay_log_sum`) and,
per row of each decayed matrix, its value when the row was last decayed
(a mark): a row owes `exp(decay_log_sum - mark)`, takes it when a step
next touches it, and every row settles what it owes when the decay is
read (`settle_all`). Vectors and scalars decay at every step.

The functions take the optimizer, whose variables (the marks included)
they read and write.
"""

from typing import Any

from keras import ops

from keras_catembed import backend


def build(optimizer: Any, variables: list[Any]) -> None:
    """Adds the running log-sum and the per-row marks of `variables`."""
    optimizer._decay_marks = []
    if optimizer.weight_decay is None:
        return
    optimizer._decay_log_sum = optimizer.add_variable(
        (), initializer="zeros", dtype="float32", name="decay_log_sum"
    )
    for variable in variables:
        decayed = len(variable.shape) == 2 and optimizer._use_weight_decay(
            variable
        )
        optimizer._decay_marks.append(
            optimizer.add_variable(
                (variable.shape[0],),
                initializer="zeros",
                dtype="float32",
                name="decay_mark",
            )
            if decayed
            else None
        )


def step_log(optimizer: Any, learning_rate: Any) -> Any:
    """The log of one step's decay factor at `learning_rate`."""
    rate = ops.cast(learning_rate, "float32")
    return ops.log1p(-rate * ops.cast(optimizer.weight_decay, "float32"))


def advance(optimizer: Any, log: Any) -> None:
    """Adds one step's factor (its log, `log`) to the running product."""
    optimizer.assign(optimizer._decay_log_sum, optimizer._decay_log_sum + log)


def decay_all(optimizer: Any, variable: Any, learning_rate: Any) -> None:
    """Decays every row of `variable` by what it owes, this step included."""
    log = step_log(optimizer, learning_rate)
    marks = _marks(optimizer, variable)
    if marks is None:
        factor = ops.cast(ops.exp(log), variable.dtype)
        optimizer.assign(variable, variable * factor)
        return
    settle(optimizer, variable, marks, optimizer._decay_log_sum + log)


def decay_rows(
    optimizer: Any, variable: Any, indices: Any, rows: Any, learning_rate: Any
) -> Any:
    """The `indices` rows (`rows`, their values) decayed by what they owe.

    Marks the rows as decayed up to this step; the caller writes the
    decayed values (with this step's update) back.
    """
    log = step_log(optimizer, learning_rate)
    marks = _marks(optimizer, variable)
    if marks is None:
        # Not a matrix: every entry decays at every step.
        decay_all(optimizer, variable, learning_rate)
        return rows * ops.cast(ops.exp(log), rows.dtype)
    total = optimizer._decay_log_sum + log
    last = backend.current.gather_rows(marks.value, indices)
    owed = 1 - ops.cast(ops.exp(total - last), rows.dtype)
    backend.current.scatter_rows(
        optimizer,
        marks,
        indices,
        ops.broadcast_to(total, ops.shape(last)),
        "set",
    )
    return rows - rows * owed[:, None]


def settle_all(optimizer: Any, var_list: list[Any]) -> None:
    """Decays every row of `var_list` by the factors of the steps it skipped.

    Variables not decayed lazily are left as they are.
    """
    for variable in var_list:
        marks = _marks(optimizer, variable)
        if marks is not None:
            settle(optimizer, variable, marks, optimizer._decay_log_sum)


def settle(optimizer: Any, variable: Any, marks: Any, total: Any) -> None:
    """Decays every row by what it owes up to the log-sum `total`."""
    owed = ops.cast(ops.exp(total - marks), variable.dtype)
    optimizer.assign(variable, variable * owed[:, None])
    optimizer.assign(marks, ops.broadcast_to(total, ops.shape(marks)))


def _marks(optimizer: Any, variable: Any) -> Any:
    return optimizer._decay_marks[optimizer._get_variable_index(variable)]
