"""SparseAdam's moving average of a table, kept row by row.

Keras's moving average of the weights (`use_ema=True`) updates every row
of every variable at every step. Inside `RatingModel.fit`'s device loop,
SparseAdam instead averages a table's rows as a step writes them, and
brings the rest up to date when the averages are read. Per row of each
matrix the optimizer keeps a mark: one more than the step whose average
the row last took (0: none yet).

A row last averaged at step `s` has held its value since, so at step `k`
the steps it skipped make its average
`m ** (k - 1 - s) * a + (1 - m ** (k - 1 - s)) * w` (`m` the momentum);
the first step, with momentum 0, sets the average to the row.

The functions take the optimizer, whose variables (the marks included)
they read and write.
"""

from typing import Any

from keras import ops

from keras_catembed import backend


def build_marks(optimizer: Any, variables: list[Any]) -> list[Any]:
    """One int32 mark per row of each matrix in `variables`, else None."""
    averaged = optimizer.use_ema and not optimizer.ema_overwrite_frequency
    return [
        optimizer.add_variable(
            (variable.shape[0],),
            initializer="zeros",
            dtype="int32",
            name="average_mark",
        )
        if averaged and len(variable.shape) == 2
        else None
        for variable in variables
    ]


def averages_rows(optimizer: Any, variable: Any) -> bool:
    """Whether this step of `optimizer` averages `variable` row by row."""
    if not (optimizer.use_ema and optimizer._lazy_average):
        return False
    marks = optimizer._average_marks
    return bool(marks) and (
        marks[optimizer._get_variable_index(variable)] is not None
    )


def momentum(optimizer: Any, dtype: str) -> Any:
    """This step's momentum: Keras's first step (0) sets the average."""
    first = ops.cast(ops.not_equal(optimizer.iterations, 0), dtype)
    return first * ops.cast(optimizer.ema_momentum, dtype)


def caught_up(
    optimizer: Any, average: Any, stored: Any, marks: Any, step: Any
) -> Any:
    """Averages `average` rows over the steps since their marks.

    Up to the step before `step`, with each row's `stored` value.
    """
    dtype = average.dtype
    last = ops.cast(marks, "int32") - 1
    skipped = ops.cast(ops.maximum(step - 1 - last, 0), dtype)
    kept = ops.power(ops.cast(optimizer.ema_momentum, dtype), skipped)
    # Never averaged: the first step set the average to the row.
    kept = ops.where(ops.less(last, 0), ops.zeros_like(kept), kept)
    kept = ops.expand_dims(kept, -1)
    return kept * average + (1 - kept) * ops.cast(stored, dtype)


def average_rows(
    optimizer: Any, variable: Any, indices: Any, stored: Any, written: Any
) -> None:
    """Brings the average of the `indices` rows up to this step.

    The rows held their `stored` values since their marks; this step then
    averages in the `written` rows, as Keras does.
    """
    index = optimizer._get_variable_index(variable)
    marks = optimizer._average_marks[index]
    average = optimizer._model_variables_moving_average[index]
    dtype = average.dtype
    step = ops.cast(optimizer.iterations, "int32")
    rows = caught_up(
        optimizer,
        backend.current.gather_rows(average.value, indices),
        stored,
        backend.current.gather_rows(marks.value, indices),
        step,
    )
    kept = momentum(optimizer, dtype)
    rows = kept * rows + (1 - kept) * ops.cast(written, dtype)
    backend.current.scatter_rows(optimizer, average, indices, rows, "set")
    backend.current.scatter_rows(
        optimizer,
        marks,
        indices,
        ops.broadcast_to(step + 1, ops.shape(rows)[:1]),
        "set",
    )
    optimizer._rows_averaged.add(index)


def average_the_rest(optimizer: Any, trainable_variables: Any) -> None:
    """Keras's update for what this step did not average row by row.

    The marks of a matrix averaged whole move to this step.
    """
    marks = optimizer._average_marks
    step = ops.cast(optimizer.iterations, "int32")
    for variable, average in zip(
        trainable_variables,
        optimizer._model_variables_moving_average,
        strict=True,
    ):
        if average is None:
            continue
        index = optimizer._get_variable_index(variable)
        if index in optimizer._rows_averaged:
            continue
        kept = momentum(optimizer, variable.dtype)
        average.assign(kept * average + (1 - kept) * variable)
        if marks[index] is not None:
            marks[index].assign(
                ops.broadcast_to(step + 1, ops.shape(marks[index]))
            )


def settle(optimizer: Any, var_list: list[Any]) -> None:
    """Brings the average of every row of `var_list` up to the last step."""
    marks = optimizer._average_marks
    if not optimizer.use_ema or all(mark is None for mark in marks):
        return
    steps = int(ops.convert_to_numpy(optimizer.iterations))
    if steps == 0:
        return
    for variable in var_list:
        index = optimizer._get_variable_index(variable)
        if marks[index] is None:
            continue
        average = optimizer._model_variables_moving_average[index]
        average.assign(
            caught_up(
                optimizer,
                average.value,
                variable.value,
                marks[index].value,
                steps,
            )
        )
        marks[index].assign(ops.full_like(marks[index].value, steps))


def load_without_marks(optimizer: Any, store: Any) -> bool:
    """Loads a state saved before the averages had marks, if `store` is one.

    Every average was then up to date, so the marks are set to the last
    step. Returns whether `store` was such a state.
    """
    marks = [m for m in optimizer._average_marks if m is not None]
    if not marks or len(store.keys()) != len(optimizer.variables) - len(marks):
        return False
    skip = {id(mark) for mark in marks}
    kept = [v for v in optimizer.variables if id(v) not in skip]
    for i, variable in enumerate(kept):
        variable.assign(store[str(i)])
    steps = int(ops.convert_to_numpy(optimizer.iterations))
    for mark in marks:
        mark.assign(ops.full_like(mark.value, steps))
    return True
