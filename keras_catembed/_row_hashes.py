"""A 64-bit hash of each training row: ids in column order and rating.

`keras_catembed._provenance` keeps the smallest of them as a model's
training fingerprint; saved fingerprints hold these hashes, so a row's
hash never changes.
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops


def _mix(z: np.ndarray, shifted: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, in place on a uint64 array; returns it.

    `shifted` is a scratch array of the same shape: fresh arrays of this
    size cost more than the arithmetic.
    """
    # Shifts by a Python int: NumPy's loop for a uint64 scalar shift is
    # many times slower.
    with np.errstate(over="ignore"):
        z ^= np.right_shift(z, 30, out=shifted)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= np.right_shift(z, 27, out=shifted)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= np.right_shift(z, 31, out=shifted)
    return z


def flat_numpy(values: Any) -> np.ndarray:
    """`values` as a flat NumPy array (a backend tensor is converted)."""
    array = (
        values
        if isinstance(values, np.ndarray)
        else np.asarray(ops.convert_to_numpy(values))
    )
    return array.reshape(-1)


def _column_words(values: Any) -> np.ndarray:
    """One uint64 per row of a column of ids (integers, else strings)."""
    array = flat_numpy(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int64).view(np.uint64)
    if array.dtype.kind == "f":
        return array.astype(np.float64).astype(np.int64).view(np.uint64)
    unique, inverse = np.unique(array.astype(str), return_inverse=True)
    words = np.array(
        [
            int.from_bytes(
                hashlib.blake2b(text.encode(), digest_size=8).digest(),
                "little",
            )
            for text in unique
        ],
        dtype=np.uint64,
    )
    return words[inverse.reshape(-1)]


# Rows hashed at a time: a block's words and scratch array stay in the
# CPU's cache, so the dozen passes over them do not go to memory (a
# sketch of a million distinct rows took 0.010 s, against 0.025 s with
# each pass over whole columns: `benchmarks/fingerprint_cost.py`).
_BLOCK_ROWS = 2**15


def row_hashes(columns: Sequence[str], x: Any, y: Any) -> np.ndarray:
    """The 64-bit hash of each row `(x[c] for c in columns..., y)`."""
    targets = flat_numpy(y)
    values = [flat_numpy(x[column]) for column in columns]
    # Strings are hashed once per distinct value, over the whole column.
    values = [
        value if value.dtype.kind in "iubf" else _column_words(value)
        for value in values
    ]
    hashes = np.empty(len(targets), dtype=np.uint64)
    for start in range(0, len(targets), _BLOCK_ROWS):
        block = slice(start, start + _BLOCK_ROWS)
        hashes[block] = _block_hashes(
            [value[block] for value in values], targets[block]
        )
    return hashes


def _block_hashes(ids: Sequence[np.ndarray], targets: np.ndarray) -> np.ndarray:
    """`row_hashes` of the rows of one block: id columns and targets."""
    hashes = np.full(len(targets), 0x9E3779B97F4A7C15, dtype=np.uint64)
    bits = targets.astype(np.float32).view(np.uint32).astype(np.uint64)
    words = [_column_words(value) for value in ids] + [bits]
    scratch = np.empty_like(hashes)
    with np.errstate(over="ignore"):
        # An odd multiplier per column (a bijection), then a full mix.
        for index, word in enumerate(words):
            odd = np.uint64(2 * index + 0xD6E8FEB86659FD93)
            hashes ^= np.multiply(word, odd, out=scratch)
            _mix(hashes, scratch)
    return hashes
