"""A row of the hyperparameter table, and the checks of fixed values.

A check `check(name, value)` returns the value to use or raises a
`ValueError` naming the hyperparameter, the value and what was expected.
"""

import dataclasses
import math
import numbers
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol

import keras
import numpy as np

# The placeholders of per-column and per-layer names.
COLUMN = "<column>"
LAYER = "<i>"


class HyperModelLike(Protocol):
    """What the table and the search space read of a `RatingHyperModel`."""

    @property
    def columns(self) -> Sequence[str]: ...

    @property
    def embeddings(self) -> Mapping[str, int]: ...

    @property
    def rating_range(self) -> tuple[float, float] | None: ...


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


def finite_float(strictly_positive: bool) -> Callable[[str, Any], float]:
    def check(name: str, value: Any) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
            or value < 0
            or (strictly_positive and value == 0)
        ):
            kind = "> 0" if strictly_positive else ">= 0"
            raise ValueError(
                f"`{name}` must be a finite float {kind}. Received: "
                f"{name}={value!r}"
            )
        return float(value)

    return check


def one_of(choices: Sequence[str]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(
                f"`{name}` must be one of {list(choices)}. Received: "
                f"{name}={value!r}"
            )
        return value

    return check


def activation(name: str, value: Any) -> str:
    message = (
        f"`{name}` must be the name of a Keras activation. Received: "
        f"{name}={value!r}"
    )
    if not isinstance(value, str):
        raise ValueError(message)
    try:
        keras.activations.get(value)
    except ValueError as error:
        raise ValueError(message) from error
    return value


def needs_rating_range(hypermodel: HyperModelLike) -> str | None:
    if hypermodel.rating_range is None:
        return (
            "`bounded_output=True` needs a `rating_range`. Received: "
            "rating_range=None"
        )
    return None


def needs_two_columns(name: str) -> Callable[[HyperModelLike], str | None]:
    """The `unavailable` check of a hyperparameter that pairs two columns."""

    def unavailable(hypermodel: HyperModelLike) -> str | None:
        if len(hypermodel.columns) < 2:
            return (
                f"`{name}=True` needs at least two columns (the first two "
                "each described by the other). Received the columns "
                f"{hypermodel.columns}"
            )
        return None

    return unavailable


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One row of the table of hyperparameters.

    Attributes:
        name: The name, or a template: `"<column>_output_dim"` stands for
            one hyperparameter per column, `"hidden_units_<i>"` for one per
            hidden layer.
        kind: `"int"` (`hp.Int`), `"float"` (`hp.Float`), `"choice"`
            (`hp.Choice`) or `"bool"` (`hp.Boolean`).
        check: `check(name, value)`: the value of a fixed hyperparameter,
            checked; raises a `ValueError` naming it.
        default: The default, or a function of the column's cardinality
            (per column) or of the layer's index (per layer).
        values: The choices of a `"choice"`, or a function of the column's
            cardinality.
        min_value: The lower bound of an `"int"` or `"float"`.
        max_value: The upper bound of an `"int"` or `"float"`.
        step: The step of an `"int"` or `"float"`, or `None`.
        sampling: `"linear"` or `"log"`.
        summary: What it sets, in a few words (the docs table).
        doc: What it sets, in full (the docstring list).
        values_doc: How the docs show the searched values when they are a
            function; `None` derives it from the row.
        default_doc: How the docs show a default that is a function.
        with_hidden_layers: Whether it is active only with hidden layers
            (per layer: only when `num_hidden_layers > i`).
        unavailable: Optional `unavailable(hypermodel)`: a message when
            the hyperparameter cannot be searched (it is then fixed to its
            default, and fixing it to `True` raises this message).
    """

    name: str
    kind: str
    check: Callable[[str, Any], Any]
    default: Any
    summary: str
    doc: str
    values: Any = ()
    min_value: float | None = None
    max_value: float | None = None
    step: float | None = None
    sampling: str = "linear"
    values_doc: str | None = None
    default_doc: str | None = None
    with_hidden_layers: bool = False
    unavailable: Callable[[HyperModelLike], str | None] | None = None

    def __post_init__(self) -> None:
        kinds = ("int", "float", "choice", "bool")
        if self.kind not in kinds:
            raise ValueError(
                f"`kind` must be one of {list(kinds)}. Received: "
                f"kind={self.kind!r} for {self.name!r}"
            )
        if self.sampling not in ("linear", "log"):
            raise ValueError(
                "`sampling` must be 'linear' or 'log'. Received: "
                f"sampling={self.sampling!r} for {self.name!r}"
            )
        if self.kind == "choice" and not (
            callable(self.values) or len(self.values)
        ):
            raise ValueError(
                f"A 'choice' needs `values`. Received: values={self.values!r} "
                f"for {self.name!r}"
            )
        if callable(self.values) and self.values_doc is None:
            raise ValueError(
                "Choices computed by a function need `values_doc`, how the "
                f"docs show them. Received: values_doc=None for {self.name!r}"
            )
        if self.kind in ("int", "float") and None in (
            self.min_value,
            self.max_value,
        ):
            raise ValueError(
                f"An '{self.kind}' needs `min_value` and `max_value`. "
                f"Received: min_value={self.min_value!r}, "
                f"max_value={self.max_value!r} for {self.name!r}"
            )

    @property
    def per_column(self) -> bool:
        return COLUMN in self.name

    @property
    def per_layer(self) -> bool:
        return LAYER in self.name
