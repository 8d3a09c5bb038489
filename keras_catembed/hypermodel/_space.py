"""The search space, the names and the checks, derived from the table."""

import collections.abc
import numbers
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from keras_catembed import _implicit
from keras_catembed import _pair_dtype
from keras_catembed.hypermodel._hyperparameter import COLUMN
from keras_catembed.hypermodel._hyperparameter import LAYER
from keras_catembed.hypermodel._hyperparameter import HyperModelLike
from keras_catembed.hypermodel._hyperparameter import Hyperparameter
from keras_catembed.hypermodel._hyperparameters import DECAYING_OPTIMIZERS
from keras_catembed.hypermodel._hyperparameters import HYPERPARAMETERS
from keras_catembed.hypermodel._hyperparameters import MAX_HIDDEN_LAYERS
from keras_catembed.hypermodel._tuner import keras_tuner


def expand(
    hypermodel: HyperModelLike, max_layers: int
) -> Iterator[tuple[str, Hyperparameter, int | None]]:
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


def names(hypermodel: HyperModelLike, max_layers: int) -> list[str]:
    """The names of every hyperparameter, in declaration order."""
    return [name for name, _, _ in expand(hypermodel, max_layers)]


def check_values(
    hypermodel: HyperModelLike,
    values: Mapping[str, Any],
    max_layers: int,
    unknown_message: str,
    skip_none: bool = False,
) -> dict[str, Any]:
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


def _resolve(value: Any, argument: int | None) -> Any:
    return value(argument) if callable(value) else value


def declare(
    hp: Any,
    hypermodel: HyperModelLike,
    fixed: Mapping[str, Any],
    max_layers: int,
) -> dict[str, Any]:
    """Declares every hyperparameter on `hp` and returns their values.

    A name in `fixed` is declared with `hp.Fixed`, and so is a row that
    `unavailable` rules out (with its default).
    """
    values = {}
    for name, row, arg in expand(hypermodel, max_layers):
        # Hidden layer `i` exists when `num_hidden_layers > i`.
        first = (arg or 0) + 1 if row.per_layer else 1
        if not row.with_hidden_layers:
            values[name] = _declare(hp, hypermodel, fixed, name, row, arg)
            continue
        with hp.conditional_scope(
            "num_hidden_layers", list(range(first, max_layers + 1))
        ):
            values[name] = _declare(hp, hypermodel, fixed, name, row, arg)
    return values


def _declare(
    hp: Any,
    hypermodel: HyperModelLike,
    fixed: Mapping[str, Any],
    name: str,
    row: Hyperparameter,
    argument: int | None,
) -> Any:
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


def check_requirements(
    hypermodel: HyperModelLike, values: Mapping[str, Any]
) -> None:
    """Raises when a fixed `True` needs what the hypermodel lacks."""
    for row in HYPERPARAMETERS:
        if row.unavailable is not None and values.get(row.name):
            message = row.unavailable(hypermodel)
            if message:
                raise ValueError(message)


def check_fixed(
    hypermodel: HyperModelLike, fixed: Mapping[str, Any]
) -> dict[str, Any]:
    """The checked values of the hyperparameters to fix, by name."""
    layers = fixed.get("num_hidden_layers", 0)
    # A bad number of layers is reported by its check.
    if isinstance(layers, bool) or not isinstance(layers, numbers.Integral):
        layers = 0
    checked = check_values(
        hypermodel,
        fixed,
        max(MAX_HIDDEN_LAYERS, int(layers)),
        "Unknown hyperparameters to fix",
    )
    check_requirements(hypermodel, checked)
    optimizer = checked.get("optimizer")
    if (
        checked.get("table_decay")
        and optimizer is not None
        and optimizer not in DECAYING_OPTIMIZERS
    ):
        raise ValueError(
            f"`table_decay` is applied by the optimizers "
            f"{list(DECAYING_OPTIMIZERS)}, and the fixed optimizer is "
            f"{optimizer!r}. Received: table_decay="
            f"{checked['table_decay']!r}; fix `table_decay` to 0.0 or "
            "choose one of those optimizers."
        )
    return checked


def check_pair_dtype(
    hypermodel: HyperModelLike, fixed: Mapping[str, Any], pair_dtype: Any
) -> str:
    """The checked `pair_dtype` of the trials' pairs: a dtype name.

    The pairs are those of the first two columns, held in a dense matrix
    unless it would be too large; a narrow dtype needs that matrix, and
    trials that can have pairs (`fixed`: the fixed hyperparameters).
    """
    columns = list(hypermodel.columns)
    name = "RatingHyperModel"
    reason = None
    if len(columns) >= 2:
        name += f" (the pairs of {columns[0]!r} and {columns[1]!r})"
        reason = _pair_dtype.lists_reason(
            hypermodel.embeddings[columns[0]],
            hypermodel.embeddings[columns[1]],
            limit=_implicit.DENSE_LIMIT,
        )
    checked = _pair_dtype.check(name, pair_dtype, reason)
    if _pair_dtype.is_narrow(checked) and (
        len(columns) < 2
        or not (fixed.get("implicit", True) or fixed.get("neighborhood", True))
    ):
        raise ValueError(
            f"{name}: `pair_dtype={pair_dtype!r}` sets the dtype of the "
            "pairs of the `implicit` and `neighborhood` trials, and this "
            f"hypermodel has none (columns {columns}, fixed "
            f"implicit={fixed.get('implicit')!r}, neighborhood="
            f"{fixed.get('neighborhood')!r}). Expected `pair_dtype=None`, "
            "two columns or more, and `implicit` or `neighborhood` not "
            "fixed to False."
        )
    return checked


# The prefix of KerasTuner's records of a trial among its values.
TUNER_PREFIX = "tuner/"


def as_hyperparameters(
    hypermodel: HyperModelLike,
    hp: Any,
    max_layers: int,
    fixed: Mapping[str, Any],
) -> Any:
    """`hp`, or a `keras_tuner.HyperParameters` of a dict of values.

    A dict is checked as the constructor checks fixed values: it may not
    change a value the hypermodel fixes (`fixed`), nor turn on what the
    hypermodel cannot build (implicit feedback with one column). Keys
    under `tuner/` are KerasTuner's own records of a trial (Hyperband's
    `tuner/epochs`, `tuner/bracket`, ...), not hyperparameters of the
    model: they are left out.
    """
    if isinstance(hp, keras_tuner.HyperParameters):
        return hp
    if not isinstance(hp, collections.abc.Mapping):
        raise ValueError(
            "`hp` must be a keras_tuner.HyperParameters or a dict of "
            f"values by name. Received: hp={hp!r}"
        )
    hp = {
        name: value
        for name, value in hp.items()
        if not (isinstance(name, str) and name.startswith(TUNER_PREFIX))
    }
    values = check_values(
        hypermodel, hp, max_layers, "Unknown hyperparameters", skip_none=True
    )
    for name, value in values.items():
        if name in fixed and value is not None and value != fixed[name]:
            raise ValueError(
                f"`{name}` is fixed to {fixed[name]!r} by this hypermodel. "
                f"Received: {name}={value!r}"
            )
    check_requirements(hypermodel, values)
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
