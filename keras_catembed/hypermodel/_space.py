"""The search space, the names and the checks, derived from the table."""

import collections.abc
import numbers

from keras_catembed.hypermodel._hyperparameter import COLUMN
from keras_catembed.hypermodel._hyperparameter import LAYER
from keras_catembed.hypermodel._hyperparameters import HYPERPARAMETERS
from keras_catembed.hypermodel._hyperparameters import MAX_HIDDEN_LAYERS
from keras_catembed.hypermodel._tuner import keras_tuner


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


def check_fixed(hypermodel, fixed):
    """The checked values of the hyperparameters to fix, by name."""
    layers = fixed.get("num_hidden_layers")
    is_int = isinstance(layers, numbers.Integral) and not isinstance(
        layers, bool
    )
    checked = check_values(
        hypermodel,
        fixed,
        max(MAX_HIDDEN_LAYERS, layers if is_int else 0),
        "Unknown hyperparameters to fix",
    )
    check_requirements(hypermodel, checked)
    return checked


def as_hyperparameters(hypermodel, hp, max_layers):
    """`hp`, or a `keras_tuner.HyperParameters` of a dict of values."""
    if isinstance(hp, keras_tuner.HyperParameters):
        return hp
    if not isinstance(hp, collections.abc.Mapping):
        raise ValueError(
            "`hp` must be a keras_tuner.HyperParameters or a dict of "
            f"values by name. Received: hp={hp!r}"
        )
    values = check_values(
        hypermodel, hp, max_layers, "Unknown hyperparameters", skip_none=True
    )
    layers = values.get("num_hidden_layers", 0)
    if layers > max_layers:
        raise ValueError(
            f"`num_hidden_layers` must be at most {max_layers} "
            "unless the hypermodel fixes it. Received: "
            f"num_hidden_layers={layers}"
        )
    hyperparameters = keras_tuner.HyperParameters()
    hyperparameters.values.update(values)
    return hyperparameters
