"""The search space, the names and the checks, derived from the table."""

from keras_catembed.hypermodel._hyperparameter import COLUMN
from keras_catembed.hypermodel._hyperparameter import LAYER
from keras_catembed.hypermodel._hyperparameters import HYPERPARAMETERS


def expand(hypermodel, max_layers):
    """Yields `(name, row, argument)` for every hyperparameter, in order.

    `argument` is the column's cardinality for a per-column row, the
    layer's index for a per-layer row and `None` otherwise.
    """
    for row in HYPERPARAMETERS:
        if row.per_column:
            for column, cardinality in hypermodel.embeddings.items():
                yield row.name.replace(COLUMN, column), row, cardinality
        elif row.per_layer:
            for index in range(max_layers):
                yield row.name.replace(LAYER, str(index)), row, index
        else:
            yield row.name, row, None


def names(hypermodel, max_layers):
    """The names of every hyperparameter, in declaration order."""
    return [name for name, _, _ in expand(hypermodel, max_layers)]


def check_values(
    hypermodel, values, max_layers, unknown_message, skip_none=False
):
    """Checks a dict of values by name and returns the checked values.

    Raises a `ValueError` starting with `unknown_message` for names that
    are not hyperparameters (it lists the valid ones), and the row's check
    error for a bad value. With `skip_none`, `None` values (inactive
    hyperparameters) are left out.
    """
    rows = {name: row for name, row, _ in expand(hypermodel, max_layers)}
    unknown = [name for name in values if name not in rows]
    if unknown:
        raise ValueError(
            f"{unknown_message}: {unknown}. Valid names: {list(rows)}"
        )
    return {
        name: rows[name].check(name, value)
        for name, value in values.items()
        if not (skip_none and value is None)
    }


def _resolve(value, argument):
    return value(argument) if callable(value) else value


def declare(hp, hypermodel, fixed, max_layers):
    """Declares every hyperparameter on `hp` and returns their values.

    A name in `fixed` is declared with `hp.Fixed`, and so is a row that
    `unavailable` rules out (with its default).
    """
    values = {}
    for name, row, arg in expand(hypermodel, max_layers):
        # Hidden layer `i` exists when `num_hidden_layers > i`.
        first = arg + 1 if row.per_layer else 1
        if not row.with_hidden_layers:
            values[name] = _declare(hp, hypermodel, fixed, name, row, arg)
            continue
        with hp.conditional_scope(
            "num_hidden_layers", list(range(first, max_layers + 1))
        ):
            values[name] = _declare(hp, hypermodel, fixed, name, row, arg)
    return values


def _declare(hp, hypermodel, fixed, name, row, argument):
    default = _resolve(row.default, argument)
    if name in fixed:
        return hp.Fixed(name, fixed[name])
    if row.unavailable is not None and row.unavailable(hypermodel):
        return hp.Fixed(name, default)
    if row.kind == "choice":
        choices = list(_resolve(row.values, argument))
        return hp.Choice(name, choices, default=default)
    if row.kind == "bool":
        return hp.Boolean(name, default=default)
    method = hp.Int if row.kind == "int" else hp.Float
    return method(
        name,
        row.min_value,
        row.max_value,
        step=row.step,
        sampling=row.sampling,
        default=default,
    )


def check_requirements(hypermodel, values):
    """Raises when a fixed `True` needs what the hypermodel lacks."""
    for row in HYPERPARAMETERS:
        if row.unavailable is not None and values.get(row.name):
            message = row.unavailable(hypermodel)
            if message:
                raise ValueError(message)
