"""Checks of a `RatingModel`'s arguments and inputs, before any graph.

Constructor arguments (`check_columns`, `check_rating_range`, ...) and
the inputs of `fit`, `evaluate`, `predict` and the `*_on_batch` methods
(`check_x`, `check_y`, `check_sample_weight`, `check_validation_data`):
each error names the argument or column, the bad value and what was
expected.
"""

import collections.abc
import numbers
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

from keras_catembed import _checks
from keras_catembed import _frames
from keras_catembed import _pairs
from keras_catembed.entity_embedding import EntityEmbedding


def check_bool(name: str, value: Any) -> bool:
    """Returns `value` if it is a bool, or raises."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_implicit(
    implicit: Any, columns: Sequence[str], argument: str = "implicit"
) -> dict[str, str]:
    """Returns `implicit` as a dict of target column -> source column."""
    if implicit is None or implicit is False:
        return {}
    if implicit is True:
        if len(columns) != 2:
            raise ValueError(
                f"`{argument}=True` pairs the two columns of a two-column "
                f"model; this one has the columns {columns}. Pass a dict "
                "mapping each described column to the column that "
                f"describes it, e.g. {argument}={{'user_id': 'movie_id'}}"
            )
        return {columns[0]: columns[1], columns[1]: columns[0]}
    if not isinstance(implicit, collections.abc.Mapping):
        raise ValueError(
            f"`{argument}` must be None, True or a dict mapping a column to "
            f"another column. Received: {argument}={implicit!r}"
        )
    checked: dict[str, str] = {}
    for target, source in implicit.items():
        for name in (target, source):
            if name not in columns:
                raise ValueError(
                    f"`{argument}` names the column {name!r}, which is not "
                    f"one of the model's columns {columns}. Received: "
                    f"{argument}={dict(implicit)!r}"
                )
        if target == source:
            raise ValueError(
                f"`{argument}` must pair two different columns. Received "
                f"{target!r}: {source!r}"
            )
        checked[target] = source
    return checked


def first_two_paired(value: Any, columns: Sequence[str]) -> Any:
    """`implicit=True` (or `neighborhood=True`) for more than two columns.

    Presets and the hypermodel list the user and item columns first:
    `True` then means that those two describe each other, named as a
    model of more than two columns needs them (`{"user_id": "movie_id",
    "movie_id": "user_id"}`). Other values are returned as they are.
    """
    if value is not True or len(columns) <= 2:
        return value
    first, second = columns[:2]
    return {first: second, second: first}


def check_batch_size(name: str, value: Any) -> None:
    """Raises unless `value` is None or a positive integer."""
    if value is not None:
        _checks.positive_int(name, value)


def _all_finite_float32(values: np.ndarray) -> bool:
    """Whether every value is finite in float32, found without copies.

    Integers up to 64 bits are; float32 and float64 values when finite
    and (float64) within float32's largest magnitude. Other arrays, and
    arrays with a bad value, take the full check, which finds it.
    """
    if values.size == 0 or values.dtype.kind in "iub":
        return True
    if values.dtype not in (np.float32, np.float64):
        return False
    low, high = values.min(), values.max()
    bound = float(np.finfo(np.float32).max)
    # NaN makes both comparisons false; infinities fail the bound.
    return bool(-bound <= low and high <= bound)


def check_finite(name: str, values: Any, noun: str, plural: str) -> None:
    """Raises for entries that are not finite, in float64 or in float32.

    A value finite in float64 but beyond float32 (1e39) becomes infinite
    once the model casts it, and turns every weight into inf or NaN.
    """
    values = np.asarray(values)
    if _all_finite_float32(values):
        return
    wide = values.astype(np.float64)
    with np.errstate(over="ignore"):
        narrow = wide.astype(np.float32)
    bad = ~np.isfinite(wide) | ~np.isfinite(narrow)
    if not np.any(bad):
        return
    flat = bad.reshape(len(values), -1) if values.ndim else bad.reshape(1, 1)
    row = int(np.argwhere(flat.any(axis=1))[0][0])
    shown = wide.reshape(len(flat), -1)[row].tolist()
    count = int(np.count_nonzero(bad))
    if np.all(np.isfinite(wide)):
        raise ValueError(
            f"`{name}` holds the {noun} {shown} at row {row}, beyond the "
            f"float32 range the model computes in ({count} such "
            f"{noun}{'s' * (count > 1)} in all). {plural} must be finite "
            "float32 numbers (magnitude below about 3.4e38)."
        )
    raise ValueError(
        f"`{name}` holds the non-finite {noun} {shown} at row {row} "
        f"({count} non-finite in all). {plural} must be finite numbers."
    )


def check_sample_weight(
    sample_weight: Any, name: str = "sample_weight"
) -> None:
    """Raises for non-numeric, NaN, infinite or float32-overflowing weights."""
    if sample_weight is None or not is_array_like(sample_weight):
        return
    values = np.asarray(ops.convert_to_numpy(sample_weight))
    if values.dtype.kind not in "iufb":
        raise ValueError(
            f"`{name}` must hold numbers. Received dtype {values.dtype}"
        )
    if values.ndim == 0:
        raise ValueError(
            f"`{name}` must hold one weight per row. Received a scalar"
        )
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise ValueError(
            f"`{name}` must have shape (n,) or (n, 1): one weight per row. "
            f"Received: shape={values.shape}"
        )
    check_finite(name, values, "weight", "Sample weights")


def check_column_shape(column: str, shape: Any) -> tuple[int, ...]:
    """Returns `shape` as a tuple if it is `(batch,)` or `(batch, 1)`."""
    checked: tuple[int, ...] = tuple(shape)
    if not (len(checked) == 1 or (len(checked) == 2 and checked[1] == 1)):
        raise ValueError(
            f"Column '{column}' must have shape (batch,) or (batch, 1). "
            f"Received: shape={checked}"
        )
    return checked


def is_array_like(value: Any) -> bool:
    """True for NumPy arrays, lists and concrete backend tensors."""
    if isinstance(value, (np.ndarray, list, tuple)):
        return True
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return False
    return _checks.is_concrete(value) and not hasattr(value, "element_spec")


def check_columns(embeddings: Any) -> list[str]:
    if not isinstance(embeddings, collections.abc.Mapping) or not embeddings:
        raise ValueError(
            "`embeddings` must be a non-empty dict mapping column names to "
            "cardinalities or EntityEmbedding layers. Received: "
            f"embeddings={embeddings!r}"
        )
    for column, spec in embeddings.items():
        _checks.column_name(column)
        if isinstance(spec, EntityEmbedding):
            continue
        if (
            isinstance(spec, bool)
            or not isinstance(spec, numbers.Integral)
            or spec < 1
        ):
            raise ValueError(
                f"`embeddings['{column}']` must be a positive integer "
                "cardinality or an EntityEmbedding layer. Received: "
                f"{spec!r}"
            )
    return list(embeddings)


def check_hidden_units(hidden_units: Any) -> list[int]:
    if not isinstance(hidden_units, bool) and isinstance(
        hidden_units, numbers.Integral
    ):
        hidden_units = [hidden_units]
    try:
        units = list(hidden_units)
    except TypeError:
        units = None
    if units is None or any(
        isinstance(u, bool) or not isinstance(u, numbers.Integral) or u < 1
        for u in units
    ):
        raise ValueError(
            "`hidden_units` must be a sequence of positive integers. "
            f"Received: hidden_units={hidden_units!r}"
        )
    return [int(u) for u in units]


def check_rating_range(rating_range: Any) -> tuple[float, float] | None:
    if rating_range is None:
        return None
    try:
        low, high = (float(v) for v in rating_range)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not (np.isfinite(low) and np.isfinite(high)) or (low >= high):
        raise ValueError(
            "`rating_range` must be None or a pair (low, high) of finite "
            f"numbers with low < high. Received: rating_range={rating_range!r}"
        )
    return (low, high)


def standardize_structure(
    columns: Sequence[str], inputs: Any, shapes: bool = False
) -> Mapping[str, Any]:
    """Checks the column keys and returns a dict of `(batch,)` ids."""
    if not isinstance(inputs, collections.abc.Mapping):
        raise ValueError(
            "RatingModel expects a dict keyed by column name, with "
            f"columns {columns}. Received: {type(inputs).__name__}"
        )
    missing = [column for column in columns if column not in inputs]
    unknown = [key for key in inputs if key not in columns]
    if missing or unknown:
        raise ValueError(
            f"RatingModel expects the columns {columns}. Missing: "
            f"{missing}; unknown: {unknown}."
        )
    if shapes:
        return inputs
    standardized: dict[str, Any] = {}
    for column in columns:
        value = inputs[column]
        try:
            shape = tuple(value.shape)
        except (TypeError, ValueError):
            # Unknown rank: TensorFlow traced calls with (n,) and (n, 1)
            # ids alike; the arrays were checked before.
            shape = None
        if shape is None or len(check_column_shape(column, shape)) == 2:
            value = ops.reshape(value, (-1,))
        standardized[column] = value
    return standardized


def check_x(model: Any, x: Any, where: str = "predict") -> Any:
    """Checks array inputs before they enter a compiled graph.

    `where` names the calling method in the errors.
    """
    columns = model.columns
    # Here, before Keras's JAX loops empty the variables while they
    # trace, pairs given through `set_weights` are seen.
    _pairs.check_model_adapted(model)
    if x is None:
        return x
    if _frames.is_dataframe(x):
        x = _frames.columns(x, columns, where)
    if not isinstance(x, collections.abc.Mapping):
        if is_array_like(x):
            standardize_structure(columns, x)
        return x
    standardize_structure(columns, x, shapes=True)
    # Lists become arrays, which every Keras loop takes (`predict` takes no
    # dict of lists); the caller's dict is left as it is.
    x = {
        key: np.asarray(value) if isinstance(value, (list, tuple)) else value
        for key, value in x.items()
    }
    rows: dict[str, int] = {}
    for column in columns:
        value = x[column]
        if not is_array_like(value):
            if value is None or not hasattr(value, "shape"):
                raise ValueError(
                    f"Column '{column}' is "
                    f"{'None' if value is None else type(value).__name__}"
                    ". Expected an array of ids of shape (batch,) or "
                    "(batch, 1)."
                )
            continue
        shape = check_column_shape(column, np.shape(value))
        if shape[0] == 0:
            raise ValueError(
                f"`{where}` received no samples: column '{column}' has "
                "0 rows. Expected at least one row."
            )
        check_rows(rows, f"column '{column}'", shape[0])
        model.embedding_layers[column].check_ids(value)
        if isinstance(value, np.ndarray) and value.dtype.kind == "u":
            # Checked ids; torch has no uint32 or uint64 tensors.
            x[column] = value.astype(np.int64)
    return x


def check_labelled_rows(model: Any, x: Any, y: Any, sample_weight: Any) -> None:
    """Raises unless `x`'s columns, `y` and `sample_weight` have one length.

    Only arrays are compared (a dataset carries its own rows).
    """
    if not isinstance(x, collections.abc.Mapping):
        return
    rows: dict[str, int] = {}
    column = model.columns[0]
    if is_array_like(x.get(column)):
        check_rows(rows, f"column '{column}'", np.shape(x[column])[0])
    for name, value in (("`y`", y), ("`sample_weight`", sample_weight)):
        if value is not None and is_array_like(value) and np.ndim(value):
            check_rows(rows, name, np.shape(value)[0])


def check_rows(rows: dict[str, int], name: str, count: int) -> None:
    """Records that `name` has `count` rows; raises if others differ.

    `rows` maps the names checked so far to their row counts.
    """
    for other, other_count in rows.items():
        if other_count != count:
            raise ValueError(
                f"{name[0].upper()}{name[1:]} has {count} rows but {other} "
                f"has {other_count}. All inputs must have the same length."
            )
    rows[name] = count


def check_y(y: Any, name: str = "y") -> None:
    if y is None or not is_array_like(y):
        return
    values = np.asarray(ops.convert_to_numpy(y))
    if values.dtype.kind not in "iufb":
        raise ValueError(
            f"`{name}` must hold numeric ratings. Received dtype {values.dtype}"
        )
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise ValueError(
            f"`{name}` must have shape (n,) or (n, 1): one rating per "
            f"row. Received: shape={values.shape}"
        )
    check_finite(name, values, "target", "Targets")


def check_validation_data(model: Any, validation_data: Any) -> Any:
    if validation_data is None or not isinstance(
        validation_data, (tuple, list)
    ):
        # A dataset or generator: Keras checks its structure.
        return validation_data
    if not 2 <= len(validation_data) <= 3 or validation_data[1] is None:
        raise ValueError(
            "`validation_data` must be a tuple (x, y) or (x, y, "
            "sample_weight), with `y` the ratings, or a dataset. "
            f"Received a {type(validation_data).__name__} of "
            f"{len(validation_data)} item(s)"
            + (" with y=None" if len(validation_data) > 1 else "")
        )
    x_val = check_x(model, validation_data[0], "fit")
    rest = [
        _frames.values(value, name)
        for value, name in zip(
            validation_data[1:],
            ["validation_data y", "validation_data sample_weight"],
            strict=False,
        )
    ]
    check_y(rest[0], "validation_data y")
    if len(rest) == 2:
        check_sample_weight(rest[1], "validation_data sample_weight")
    return (x_val, *rest)


def checked(columns: Sequence[str], x: Any) -> bool:
    """Whether `check_x` has checked every column of `x`."""
    return isinstance(x, collections.abc.Mapping) and all(
        is_array_like(x.get(column)) for column in columns
    )
