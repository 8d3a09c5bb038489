"""Private argument and input validators shared by the public classes."""

import contextlib
import numbers
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import NoReturn

import keras
import numpy as np
from keras import ops

from keras_catembed import backend

INT32_MIN = int(np.iinfo(np.int32).min)
INT32_MAX = int(np.iinfo(np.int32).max)
INT32_EXPECTED = "ids in the int32 range"


def model_tree(model: Any) -> list[Any]:
    """`model` and every member below it (`RatingEnsemble`s at any depth)."""
    found = [model]
    for member in getattr(model, "members", ()):
        found.extend(model_tree(member))
    return found


def positive_int(name: str, value: Any) -> int:
    """Returns `value` as an int, or raises if it is not a positive integer."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    """Returns `value` as an int, or raises if it is not an integer >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 0
    ):
        raise ValueError(
            f"`{name}` must be an integer >= 0. Received: {name}={value!r}"
        )
    return int(value)


# The seeds NumPy's and Keras's generators take (`np.random.seed`).
MAX_SEED = 2**32 - 1


def seed(name: str, value: Any) -> int:
    """Returns `value` as an int, or raises if it is not a valid seed."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not 0 <= int(value) <= MAX_SEED
    ):
        raise ValueError(
            f"`{name}` must be an integer in [0, 2**32 - 1]. Received: "
            f"{name}={value!r}"
        )
    return int(value)


def require_compiled(model: Any) -> None:
    """Raises, in Keras's own words, unless `model` is compiled.

    Called first by the loops that need a compiled model, before
    anything builds it (Keras's torch `evaluate` would fail on a missing
    `optimizer` attribute instead).
    """
    if not model.compiled:
        raise ValueError("You must call `compile()` before using the model.")


def column_name(column: Any) -> str:
    """Returns `column`, or raises unless it is a valid column name."""
    if not isinstance(column, str) or not column or "/" in column:
        raise ValueError(
            "Column names in `embeddings` must be non-empty strings "
            f"without '/'. Received the key {column!r}"
        )
    return column


def non_negative_float(name: str, value: Any) -> float:
    """Returns `value` as a float, or raises unless it is finite and >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) < float("inf")
    ):
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value!r}"
        )
    return float(value)


def rate(name: str, value: Any) -> float:
    """Returns `value` as a float in [0, 1), or raises."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) < 1.0
    ):
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def is_concrete(x: Any) -> bool:
    """True when `x` holds values now (not a symbolic or traced tensor)."""
    return backend.current.is_concrete(x)


def id_dtype_error(where: str, dtype: Any) -> NoReturn:
    """Raises the error for a tensor whose dtype cannot hold ids."""
    raise ValueError(
        f"{where} received ids of dtype {dtype}. Expected integer ids "
        "(or floats holding whole numbers). Encode strings and booleans "
        "as integer ids first."
    )


def check_id_dtype(where: str, x: Any) -> str:
    """Raises for bool or string ids; returns the standardized dtype name."""
    dtype: str = keras.backend.standardize_dtype(
        getattr(x, "dtype", None) or "int"
    )
    if dtype == "bool" or dtype == "string" or dtype.startswith("str"):
        id_dtype_error(where, dtype)
    return dtype


def ids_to_numpy(where: str, values: Any) -> np.ndarray:
    """Converts concrete ids to an int64 NumPy array, rejecting bad dtypes.

    Floats must hold whole numbers; NaN, infinite or fractional values raise a
    `ValueError` naming `where` and the first offending value.
    """
    array = np.asarray(ops.convert_to_numpy(values))
    kind = array.dtype.kind
    if kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        # Beyond int64: Python ints keep the exact value for the message.
        return array.astype(object)
    if kind in "iu":
        return array.astype(np.int64, copy=False)
    if kind == "f" or array.dtype.name == "bfloat16":
        array = array.astype(np.float64)
        bad = ~np.isfinite(array) | (array != np.floor(array))
        if np.any(bad):
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{where} received the non-integer id {array[index]:.7g} at "
                f"position {_format_index(index)}. Expected whole-number ids."
            )
        return array.astype(np.int64)
    id_dtype_error(where, array.dtype)


def _format_index(index: tuple[int, ...]) -> int | tuple[int, ...]:
    return index[0] if len(index) == 1 else index


def integer_ids_within(ids: Any, low: int, high: int) -> bool:
    """Whether `ids` is a NumPy integer array with every id in [low, high].

    Its smallest and largest values decide, without the int64 copy and
    masks of a full check (which, when this is False, finds the first bad
    id for its message).
    """
    if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
        return False
    return ids.size == 0 or (low <= int(ids.min()) and int(ids.max()) <= high)


def first_bad(where: str, ids: Any, bad: Any, expected: str) -> None:
    """Raises a `ValueError` for the first True entry of the mask `bad`."""
    if not np.any(bad):
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    count = int(np.count_nonzero(bad))
    raise ValueError(
        f"{where} received the unknown id {int(ids[index])} at position "
        f"{_format_index(index)} ({count} unknown id{'s' * (count > 1)} "
        f"in this input). Expected {expected}."
    )


def check_int32_range(where: str, ids: Any) -> None:
    """Raises a `ValueError` for the first id outside the int32 range."""
    if integer_ids_within(ids, INT32_MIN, INT32_MAX):
        return
    values = ids_to_numpy(where, ids)
    outside = (values < INT32_MIN) | (values > INT32_MAX)
    first_bad(where, values, outside, INT32_EXPECTED)


# Whether JAX graphs may raise through a host callback. An exported graph
# (jax2tf) cannot hold one: there, the NaN rows the layer gives for bad ids
# are the only signal.
_HOST_CALLBACKS = [True]


@contextlib.contextmanager
def without_host_callbacks() -> Iterator[None]:
    """Traces JAX id checks without host callbacks (for export)."""
    previous = _HOST_CALLBACKS[0]
    _HOST_CALLBACKS[0] = False
    try:
        yield
    finally:
        _HOST_CALLBACKS[0] = previous


def graph_assert(
    where: str,
    bad: Any,
    values: Any,
    expected: str,
    problem: str = "unknown id",
) -> Any:
    """Makes a compiled graph fail when any entry of `bad` is True.

    `bad` is a boolean tensor and `values` the ids it describes. On
    TensorFlow this adds an assertion op (kept because the layer opts out of
    XLA) and returns it; on JAX a host callback raises. Both errors carry
    the same message as the eager `ValueError`. `problem` names what is
    wrong ("unknown id", "non-integer id"). Keras runs torch eagerly (the
    layer opts out of `torch.compile`), where the eager check has already
    run.
    """
    article = "an" if problem[0] in "aeiou" else "a"
    message = f"{where} received {article} {problem}. Expected {expected}."

    def describe(value: Any) -> str:
        return (
            f"{where} received the {problem} {value:.10g}. Expected {expected}."
        )

    return backend.current.graph_assert(
        bad, values, message, describe, _HOST_CALLBACKS[0]
    )


def graph_fail(bad: Any, message: str) -> Any:
    """Makes a compiled graph fail with `message` when the scalar `bad` is
    True (see `graph_assert`)."""
    return backend.current.graph_assert(
        ops.reshape(bad, (1,)),
        ops.zeros((1,), "int32"),
        message,
        lambda _: message,
        _HOST_CALLBACKS[0],
    )


def finite_batch(
    result: Any, values: Any, name: str, noun: str, plural: str
) -> Any:
    """`result`, once a batch of `name` (`values`) is found finite.

    For streamed data (a dataset, a generator), whose batches are seen
    only as they run: concrete values raise a `ValueError` now; inside a
    compiled graph `result` depends on a graph assertion (see
    `graph_assert`) with the same message. Non-float values pass.
    """
    if values is None or "float" not in keras.backend.standardize_dtype(
        values.dtype
    ):
        return result

    def describe(value: Any) -> str:
        return (
            f"A batch of `{name}` holds the non-finite {noun} {value}. "
            f"{plural} must be finite numbers."
        )

    if is_concrete(values):
        array = np.asarray(ops.convert_to_numpy(values)).reshape(-1)
        bad = ~np.isfinite(array)
        if np.any(bad):
            raise ValueError(describe(array[bad][0]))
        return result
    message = (
        f"A batch of `{name}` holds a non-finite {noun} (NaN or infinite). "
        f"{plural} must be finite numbers."
    )
    assertion = backend.current.graph_assert(
        ops.logical_not(ops.isfinite(values)),
        values,
        message,
        describe,
        _HOST_CALLBACKS[0],
    )
    if assertion is None:
        return result
    return backend.current.with_dependencies(result, [assertion])


def load_keeping_reason(
    layer: Any, store: Any, load: Callable[[], None]
) -> None:
    """Runs `load()` for `layer.load_own_variables(store)`, keeping the
    reason of a failure for Keras's retry.

    Keras retries a layer that failed to load at an older path, where
    nothing is saved, and reports that retry's error ("received 0
    variables"): the retry raises the first failure again.
    """
    rejected, layer._rejected = getattr(layer, "_rejected", None), None
    if not list(store.keys()) and rejected is not None:
        raise rejected
    try:
        load()
    except ValueError as error:
        layer._rejected = error
        raise


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None when unknown."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_weight_bytes(where: str, parts: Mapping[str, Any]) -> None:
    """Raises when the weights of a config cannot fit in this machine.

    A saved config is read before any weight is allocated: a damaged or
    tampered file asking for `input_dim=10**12` must fail here with a
    clear message, not after allocating (or swapping) for minutes.

    Args:
        where: What is being built, for the message.
        parts: Dict mapping a weight's description to its number of
            elements (4 bytes each).
    """
    limit = physical_memory()
    if limit is None:
        return
    total = 4 * sum(int(size) for size in parts.values())
    if total <= limit:
        return
    largest = max(parts, key=lambda part: int(parts[part]))
    raise ValueError(
        f"{where}: its config asks for {total / 2**30:,.1f} GiB of weights "
        f"(the largest, {largest}, holds {int(parts[largest]):,} values), "
        f"more than this machine's {limit / 2**30:,.1f} GiB of memory. If "
        "it comes from a saved file, the file is damaged or was made for "
        "another machine; nothing was allocated."
    )
