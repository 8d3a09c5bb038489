"""The documentation of the hyperparameters, derived from the table.

`docstring_list()` is the list in `RatingHyperModel`'s docstring and
`markdown_table()` the table of `docs/tuning.md`, which a test compares with
the page (and prints the expected table when they differ).
"""

import textwrap
from collections.abc import Iterable

from keras_catembed.hypermodel._hyperparameter import Hyperparameter
from keras_catembed.hypermodel._hyperparameters import HYPERPARAMETERS


def _number(value: object) -> str:
    if isinstance(value, float) and value != 0 and abs(value) <= 1e-3:
        mantissa, exponent = f"{value:e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return repr(value)


def _literal(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return _number(value)


def _listing(items: Iterable[str], last: str = " and ") -> str:
    items = list(items)
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + last + items[-1]


def _default_doc(row: Hyperparameter) -> str:
    return row.default_doc or f"`{_literal(row.default)}`"


def _active_doc(row: Hyperparameter) -> str:
    if not row.with_hidden_layers:
        return ""
    if row.per_layer:
        return "Active only when `num_hidden_layers > i`."
    return "Active only with hidden layers."


def _search_doc(row: Hyperparameter) -> str:
    """The kind and the searched values, as a sentence of the docstring."""
    if row.kind == "bool":
        return "Boolean."
    if row.kind == "choice":
        if callable(row.values):
            return f"Choice among {row.values_doc}."
        values = [f"`{_literal(value)}`" for value in row.values]
        if all(isinstance(value, str) for value in row.values):
            return f"Choice of {_listing(values)}."
        kind = "Integer" if isinstance(row.values[0], int) else "Float"
        return f"{kind} choice among {_listing(values, ', ')}."
    kind = "Integer" if row.kind == "int" else "Float"
    text = f"{kind} in [{_number(row.min_value)}, {_number(row.max_value)}]"
    if row.step is not None:
        text += f", step {_number(row.step)}"
    if row.sampling == "log":
        text += ", log-scaled"
    return text + "."


def docstring_list(indent: str = "    ") -> str:
    """The list of hyperparameters for `RatingHyperModel`'s docstring."""
    items = []
    for row in HYPERPARAMETERS:
        parts = [f'`"{row.name}"`:', _search_doc(row), row.doc]
        parts += [_active_doc(row), f"Defaults to {_default_doc(row)}."]
        text = " ".join(part for part in parts if part)
        items.append(
            textwrap.fill(
                text,
                width=80,
                initial_indent=indent + "- ",
                subsequent_indent=indent + "  ",
                break_on_hyphens=False,
            )
        )
    return "\n".join(items) + "\n"


def _searched_cell(row: Hyperparameter) -> str:
    if row.kind == "bool":
        return "False, True"
    if row.kind == "choice":
        if callable(row.values):
            return str(row.values_doc)
        return ", ".join(
            _number(v) if not isinstance(v, str) else v for v in row.values
        )
    text = f"{_number(row.min_value)} to {_number(row.max_value)}"
    if row.step is not None:
        text += f", step {_number(row.step)}"
    if row.sampling == "log":
        text += ", log scale"
    return text


def markdown_table() -> str:
    """The table of hyperparameters in `docs/tuning.md`."""
    lines = [
        "| Name | Searched values | Default | What it sets |",
        "| --- | --- | --- | --- |",
    ]
    for row in HYPERPARAMETERS:
        what = row.summary
        if row.with_hidden_layers:
            what += (
                " (when `num_hidden_layers > i`)"
                if row.per_layer
                else " (with hidden layers)"
            )
        cells = [
            f"`{row.name}`",
            _searched_cell(row),
            _default_doc(row),
            what,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# The sentence of `RatingHyperModel`'s docstring that points to the Tuning
# guide (what the API pages show, from the source).
_POINTER = (
    "    The hyperparameters, their search ranges and their defaults are "
    "listed\n    in the table of the [Tuning guide]"
    "(../tuning.md#the-search-space).\n"
)


def list_hyperparameters(cls: type) -> None:
    """Replaces the pointer in `cls.__doc__` with `docstring_list()`."""
    if cls.__doc__ is None or _POINTER not in cls.__doc__:
        raise AssertionError(f"{cls.__name__}'s docstring lost its pointer")
    cls.__doc__ = cls.__doc__.replace(
        _POINTER,
        "    The hyperparameters, their search ranges and their defaults "
        "(the\n    table `keras_catembed.hypermodel.HYPERPARAMETERS`):\n\n"
        + docstring_list(),
    )
