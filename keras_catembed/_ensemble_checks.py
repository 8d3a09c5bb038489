"""The checks of `RatingEnsemble`'s arguments and inputs (private).

The checks of a `RatingEnsemble`'s members and weights, of the columns
of its inputs (each member's own id checks included), and, before
`fit`, of every member's readiness and arguments, so that none trains
unless all would. Its ratings and `rating_range` are checked by
`_inputs`, as for the other models.
"""

import collections.abc
import inspect
import numbers
from typing import Any

import keras
import numpy as np

from keras_catembed import _frames
from keras_catembed import _inputs


def members(values: Any) -> list[keras.Model]:
    """The members as a list; raises unless distinct Keras models."""
    if isinstance(values, (str, bytes)) or not isinstance(
        values, collections.abc.Sequence
    ):
        values = None
    if not values or not all(isinstance(m, keras.Model) for m in values):
        raise ValueError(
            "`members` expects a non-empty list of Keras models. "
            f"Received: members={values!r}"
        )
    if len({id(m) for m in values}) != len(values):
        raise ValueError(
            "`members` holds one model twice; train separate models "
            "(for example with different seeds) instead."
        )
    return list(values)


def weights(values: Any, count: int) -> list[float]:
    """`count` positive weights scaled to sum to 1 (equal for `None`)."""
    if values is None:
        return [1.0 / count] * count
    try:
        listed = list(values)
    except TypeError:
        listed = None
    if (
        listed is None
        or len(listed) != count
        or any(
            isinstance(w, bool)
            or not isinstance(w, numbers.Real)
            or not 0.0 < float(w) < float("inf")
            for w in listed
        )
    ):
        raise ValueError(
            f"`weights` expects {count} positive finite numbers, one per "
            f"member. Received: weights={values!r}"
        )
    total = float(np.sum(listed))
    return [float(w) / total for w in listed]


def inputs(ensemble: Any, x: Any, where: str) -> Any:
    """`x` after each member's own checks of its columns."""
    if ensemble.columns and _frames.is_dataframe(x):
        x = _frames.columns(x, ensemble.columns, where)
    if ensemble.columns:
        if not isinstance(x, collections.abc.Mapping):
            raise ValueError(
                f"RatingEnsemble `{where}` expects a dict keyed by column "
                f"name, with columns {ensemble.columns}. Received: "
                f"{type(x).__name__}"
            )
        missing = [c for c in ensemble.columns if c not in x]
        if missing:
            raise ValueError(
                f"RatingEnsemble `{where}` expects the columns "
                f"{ensemble.columns}. Missing: {missing}."
            )
        # Lists become arrays, which every Keras loop takes.
        x = {
            c: np.asarray(x[c]) if isinstance(x[c], (list, tuple)) else x[c]
            for c in ensemble.columns
        }
    for member in ensemble.members:
        layers = getattr(member, "embedding_layers", None)
        if layers is None:
            continue
        if where != "fit":
            # A member that reads stored ratings says when it has none.
            ready = getattr(member, "_require_adapted", None)
            if ready is not None:
                ready(where)
            _inputs.check_x(member, ensemble._inputs_of(member, x), where)
            continue
        # Before training, when pairs are not adapted yet: the ids of
        # every member, so that none trains unless all would.
        for column in member.columns:
            if _inputs.is_array_like(x[column]):
                layers[column].check_ids(x[column])
    return x


def fit_members(
    ensemble: Any,
    x: Any,
    y: Any,
    validation_data: Any,
    kwargs: dict[str, Any],
) -> None:
    """Every member's checks before `fit`: none trains unless all would."""
    for member in ensemble.members:
        recipe = getattr(member, "recipe", None)
        if recipe is None and not member.compiled:
            raise ValueError(
                f"Member '{member.name}' is not compiled and has no "
                "`recipe`: compile it (or set `member.recipe`) before "
                "`fit`."
            )
        fit_arguments(member, kwargs)
        check = getattr(member, "_check_fit_data", None)
        if check is not None:
            check(ensemble._inputs_of(member, x), y)
            if validation_data is not None:
                check(
                    ensemble._inputs_of(member, validation_data[0]),
                    validation_data[1],
                    "validation_data",
                )


def fit_arguments(member: keras.Model, kwargs: dict[str, Any]) -> None:
    """Raises unless `member.fit` takes every argument of `kwargs`."""
    parameters = inspect.signature(member.fit).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        raise ValueError(
            f"`fit` got {unknown}, which the fit of member '{member.name}' "
            f"({type(member).__name__}) does not take. Expected some of "
            f"{sorted(parameters)}."
        )
