"""Ids to table rows: vocabulary checks and the checks inside a graph."""

import dataclasses
import numbers
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import _checks
from keras_catembed import backend


def table_rows(layer: Any, ids: Any) -> tuple[Any, Any]:
    """Maps int32 ids to rows of `layer`'s table; returns (rows, known)."""
    if layer.vocabulary is None:
        known = ops.logical_and(
            ops.greater_equal(ids, 0), ops.less(ids, layer.input_dim)
        )
        rows = ids
    else:
        sorted_vocabulary = ops.convert_to_tensor(
            layer._sorted_vocabulary, dtype="int32"
        )
        shape = ops.shape(ids)
        # `searchsorted` takes 1-D values on TensorFlow.
        flat = ids if len(shape) == 1 else ops.reshape(ids, (-1,))
        position = ops.searchsorted(sorted_vocabulary, flat, side="left")
        position = ops.minimum(position, layer.num_ids - 1)
        if len(shape) != 1:
            position = ops.reshape(position, _known_shape(shape))
        position = ops.cast(position, "int32")
        known = ops.equal(ops.take(sorted_vocabulary, position), ids)
        rows = ops.take(
            ops.convert_to_tensor(layer._sorted_rows, dtype="int32"),
            position,
        )
    if layer.num_oov_indices > 0:
        oov = layer.num_ids + ops.mod(ids, layer.num_oov_indices)
        rows = ops.where(known, rows, oov)
    return rows, known


def _known_shape(shape: tuple[Any, ...]) -> tuple[Any, ...]:
    """`shape` for `ops.reshape`, an unknown batch size as -1.

    A functional model records the shape its symbolic inputs had, where
    the batch size is None.
    """
    if shape and shape[0] is None:
        return (-1, *shape[1:])
    return tuple(shape)


def graph_checked_rows(layer: Any, inputs: Any, dtype: str) -> tuple[Any, Any]:
    """Table rows of ids inside a compiled graph, with graph assertions.

    Returns `(rows, invalid)`: the rows, computed after assertions that
    fail the step for ids `layer` cannot embed (see `_checks.graph_assert`)
    and the mask of those ids (None when there can be none).
    """
    where = layer._where
    assertions = []
    invalid = None
    if "float" in dtype:
        values = ops.cast(inputs, "float32")
        fractional = ops.logical_or(
            ops.logical_not(ops.isfinite(values)),
            ops.not_equal(values, ops.floor(values)),
        )
        assertions.append(
            _checks.graph_assert(
                where,
                fractional,
                values,
                "whole-number ids",
                problem="non-integer id",
            )
        )
        invalid = fractional
    elif dtype in ("int64", "uint32", "uint64"):
        outside = ops.greater(inputs, _checks.INT32_MAX)
        if dtype == "int64":
            # Compared with unsigned ids, the negative bound would wrap.
            outside = ops.logical_or(
                outside, ops.less(inputs, _checks.INT32_MIN)
            )
        assertions.append(
            _checks.graph_assert(where, outside, inputs, _checks.INT32_EXPECTED)
        )
        invalid = outside
    ids = ops.cast(inputs, "int32")
    rows, known = layer._rows(ids)
    if layer.num_oov_indices == 0:
        unknown = ops.logical_not(known)
        assertions.append(
            _checks.graph_assert(where, unknown, ids, layer._expected)
        )
        invalid = (
            unknown if invalid is None else ops.logical_or(invalid, unknown)
        )
    assertions = [a for a in assertions if a is not None]
    if assertions:
        rows = backend.current.with_dependencies(rows, assertions)
    return rows, invalid


def check_concrete_ids(layer: Any, ids: Any) -> None:
    """`EntityEmbedding.check_ids`: raises on any id `layer` cannot embed."""
    IdRule.of(layer).check(ids)


@dataclasses.dataclass(frozen=True)
class IdRule:
    """The ids one `EntityEmbedding` embeds, as plain data.

    Picklable, so that a `PyDataset`'s worker processes can check batches
    with it (`_streams`).
    """

    where: str
    num_ids: int
    sorted_vocabulary: np.ndarray | None
    num_oov_indices: int
    expected: str

    @classmethod
    def of(cls, layer: Any) -> "IdRule":
        return cls(
            where=layer._where,
            num_ids=layer.num_ids,
            sorted_vocabulary=(
                None if layer.vocabulary is None else layer._sorted_vocabulary
            ),
            num_oov_indices=layer.num_oov_indices,
            expected=layer._expected,
        )

    def check(self, ids: Any) -> None:
        """Raises a `ValueError` naming the first id there is no row for."""
        if self.num_oov_indices > 0:
            _checks.check_int32_range(self.where, ids)
            return
        if self.sorted_vocabulary is None and _checks.integer_ids_within(
            ids, 0, self.num_ids - 1
        ):
            return
        values = _checks.ids_to_numpy(self.where, ids)
        if self.sorted_vocabulary is None:
            known = (values >= 0) & (values < self.num_ids)
        else:
            known = np.isin(values, self.sorted_vocabulary)
        _checks.first_bad(self.where, values, ~known, self.expected)


def checked_rows(layer: Any, ids: Any, ids_checked: bool) -> tuple[Any, Any]:
    """Table rows of ids read for another layer, checked as `call` does.

    See `EntityEmbedding.checked_rows`.
    """
    if ids_checked or isinstance(ids, keras.KerasTensor):
        # Checked, or symbolic (a functional model being built).
        return layer._clipped_rows(ids), None
    dtype = _checks.check_id_dtype(layer._where, ids)
    if _checks.is_concrete(ids):
        layer.check_ids(ids)
        return layer._clipped_rows(ids), None
    rows, invalid = graph_checked_rows(layer, ids, dtype)
    return ops.clip(rows, 0, layer.num_rows - 1), invalid


def nan_where_invalid(vectors: Any, invalid: Any) -> Any:
    """NaN vectors for the ids of `invalid` (None: `vectors` as they are).

    Besides the graph assertion: XLA (a user's
    `tf.function(jit_compile=True)`) drops assertions and would return a
    clamped row.
    """
    if invalid is None:
        return vectors
    return ops.where(
        ops.expand_dims(invalid, -1),
        ops.cast(float("nan"), vectors.dtype),
        vectors,
    )


def is_host_array(value: Any) -> bool:
    """True for NumPy arrays, scalars and lists of ints or strings.

    These are checked before Keras converts them: JAX would wrap an int64
    id, and JAX and torch cannot convert strings (the check names the
    layer and the dtype instead). Floats and bools reach `call` as they
    are, which checks them in any graph.
    """
    if not isinstance(value, (np.ndarray, np.generic, list, tuple, int)):
        return False
    try:
        return np.asarray(value).dtype.kind in "iuUSO"
    except (ValueError, TypeError, OverflowError):
        return False


def short_repr(value: Any) -> str:
    if value is None:
        return "None"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_vocabulary(vocabulary: Any) -> list[int]:
    """Returns the vocabulary as a list of distinct int32-range ints."""
    if isinstance(vocabulary, (str, bytes)) or not hasattr(
        vocabulary, "__len__"
    ):
        raise ValueError(
            "`vocabulary` must be a sequence of distinct integers. "
            f"Received: vocabulary={short_repr(vocabulary)}"
        )
    values: list[int] = []
    for value in np.asarray(vocabulary, dtype=object).reshape(-1).tolist():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(
                "`vocabulary` must hold integers only (encode strings as "
                f"integer ids first). Received the entry {value!r} in "
                f"vocabulary={short_repr(vocabulary)}"
            )
        if not _checks.INT32_MIN <= int(value) <= _checks.INT32_MAX:
            raise ValueError(
                "`vocabulary` entries must fit in int32. Received the entry "
                f"{value!r}"
            )
        values.append(int(value))
    if not values:
        raise ValueError("`vocabulary` must not be empty. Received: []")
    unique, counts = np.unique(np.asarray(values), return_counts=True)
    if np.any(counts > 1):
        first = int(np.argmax(counts > 1))
        raise ValueError(
            "`vocabulary` must not repeat an id. Received the id "
            f"{int(unique[first])} {int(counts[first])} times"
        )
    return values


# The key under which a layer's weights record its vocabulary: rows are
# only meaningful with the raw ids they were trained for.
VOCABULARY_KEY = "vocabulary"


def save_vocabulary(layer: Any, store: Any) -> None:
    """Records `layer`'s vocabulary beside its variables, if it has one."""
    if layer.vocabulary is not None:
        store[VOCABULARY_KEY] = np.asarray(layer.vocabulary, dtype=np.int64)


def checked_vocabulary_store(layer: Any, store: Any) -> Any:
    """`store` without its vocabulary, once that matches `layer`'s.

    Raises a `ValueError` when the saved weights were trained for other
    raw ids (rows would be read for the wrong ids). Weights saved
    without a vocabulary (by a layer without one, or by an earlier
    version) load as they are.
    """
    keys = list(store.keys())
    if VOCABULARY_KEY not in keys:
        return store
    saved = np.asarray(store[VOCABULARY_KEY], dtype=np.int64).reshape(-1)
    own = np.asarray(
        layer.vocabulary if layer.vocabulary is not None else [], np.int64
    )
    if saved.shape != own.shape or np.any(saved != own):
        if layer.vocabulary is None:
            found = "and this layer has none (it takes ids 0 to input_dim - 1)"
        elif saved.shape != own.shape:
            found = f"and this layer's has {len(own)}"
        else:
            row = int(np.argmax(saved != own))
            found = (
                f"whose row {row} is the id {int(saved[row])}, where this "
                f"layer's is {int(own[row])}"
            )
        raise ValueError(
            f"{layer._where} cannot load these weights: they were saved "
            f"with a vocabulary of {len(saved)} ids, {found}. Build the "
            "layer with the vocabulary the weights were saved with."
        )
    return {key: store[key] for key in keys if key != VOCABULARY_KEY}
