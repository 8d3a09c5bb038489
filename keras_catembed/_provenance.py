"""What a `RatingModel` remembers of its training data.

`fit` records a fingerprint of the rows it trained on: a bottom-k sketch,
the `SKETCH_SIZE` smallest distinct 64-bit hashes of the rows (each
row's ids in column order and its rating as a float32). Any later set of
rows can be tested against it: a row whose hash is at most the sketch's
largest hash is a training row exactly when its hash is in the sketch, and
the test rows with such small hashes are a uniform sample of the test rows
(the hash decides, not their order). The share of them found in the sketch
estimates the share of test rows that were training rows; with fewer than
`SKETCH_SIZE` distinct training rows the sketch holds them all and the
answer is exact.

The fingerprint (and the data source a caller may record) is saved in the
model's config, so it survives `.keras` save and load.
"""

import base64
import collections.abc
import concurrent.futures
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_catembed import _inputs
from keras_catembed._model_base import ModelBase
from keras_catembed._row_hashes import flat_numpy
from keras_catembed._row_hashes import row_hashes

# Hashes kept of the training rows: 64 KiB, saved as base64 in the config.
SKETCH_SIZE = 8192
# `evaluate` warns above this estimated share of test rows seen in `fit`.
OVERLAP_THRESHOLD = 0.01


def sketch(
    columns: Sequence[str],
    x: Any,
    y: Any,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fingerprint of the rows `(x, y)`, merged with `previous`.

    Returns a dict: `columns`, `rows` (rows recorded in all, repeats and
    all), `exact` (whether `hashes` holds every distinct row) and `hashes`
    (the smallest distinct row hashes, sorted).
    """
    return _merge(columns, *_hash_rows(columns, x, y), previous)


def _hash_rows(columns: Sequence[str], x: Any, y: Any) -> tuple[Any, int]:
    """The smallest distinct hashes of the rows `(x, y)`, and their count."""
    return _smallest_distinct(row_hashes(columns, x, y)), len(flat_numpy(y))


def _merge(
    columns: Sequence[str],
    hashes: np.ndarray,
    rows: int,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    exact = True
    if previous is not None and list(previous["columns"]) == list(columns):
        hashes = _distinct(np.concatenate([hashes, previous["hashes"]]))
        rows += previous["rows"]
        exact = previous["exact"]
    if hashes.size > SKETCH_SIZE:
        hashes = hashes[:SKETCH_SIZE]
        exact = False
    return {
        "columns": list(columns),
        "rows": int(rows),
        "exact": exact,
        "hashes": hashes,
    }


def _smallest_distinct(hashes: np.ndarray) -> np.ndarray:
    """The smallest distinct hashes, sorted: all, or more than a sketch.

    Many rows are cut down with a partition first, so that not every
    row's hash is sorted; a head with too few distinct hashes (repeated
    rows) is widened fourfold until it has enough.
    """
    head_size = 2 * SKETCH_SIZE
    while 2 * head_size < hashes.size:
        head = _distinct(np.partition(hashes, head_size)[:head_size])
        if head.size > SKETCH_SIZE:
            return head
        head_size *= 4
    return _distinct(hashes)


def _distinct(hashes: np.ndarray) -> np.ndarray:
    """The distinct values of `hashes`, sorted.

    Sorting and comparing neighbours: many times faster than `np.unique`
    on unsigned 64-bit values in NumPy 2.4.
    """
    ordered = np.sort(hashes)
    keep = np.empty(ordered.size, dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def overlap(
    fingerprint: dict[str, Any], x: Any, y: Any
) -> tuple[float | None, int]:
    """Estimates the share of the rows `(x, y)` that `fingerprint` holds.

    Returns `(fraction, sampled)`: the estimated share of the rows that
    were training rows, and how many rows the estimate rests on (all of
    them when the fingerprint is exact). `fraction` is None when no row
    could be tested.
    """
    hashes = row_hashes(fingerprint["columns"], x, y)
    kept = fingerprint["hashes"]
    if not fingerprint["exact"] and kept.size:
        hashes = hashes[hashes <= kept[-1]]
    if hashes.size == 0:
        return None, 0
    if kept.size == 0:
        return 0.0, int(hashes.size)
    # `kept` is sorted: a binary search finds each hash's place in it.
    place = np.minimum(np.searchsorted(kept, hashes), kept.size - 1)
    return float((kept[place] == hashes).mean()), int(hashes.size)


def overlap_message(fraction: float, sampled: int, exact: bool) -> str:
    """The sentence that reports an overlap with the training rows."""
    basis = (
        "exactly"
        if exact
        else f"estimated from a sample of {sampled:,} of the rows"
    )
    return (
        f"About {fraction:.0%} of the evaluated rows ({basis}) are rows "
        "this model was trained on (same ids and rating): the scores "
        "overstate its accuracy on unseen ratings. Evaluate on ratings "
        "left out of its training data."
    )


def warn_overlap(
    model: Any, x: Any, y: Any, stacklevel: int = 3
) -> float | None:
    """Warns when `(x, y)` overlaps the model's training rows.

    Returns the estimated share of overlapping rows (None if unknown).
    """
    fingerprint = getattr(model, "training_fingerprint", None)
    if fingerprint is None or y is None:
        return None
    if not isinstance(x, collections.abc.Mapping):
        return None
    if not _inputs.is_array_like(y) or not all(
        _inputs.is_array_like(x.get(column))
        for column in fingerprint["columns"]
    ):
        return None
    fraction, sampled = overlap(fingerprint, x, y)
    if fraction is not None and fraction > OVERLAP_THRESHOLD:
        warnings.warn(
            overlap_message(fraction, sampled, fingerprint["exact"]),
            UserWarning,
            stacklevel=stacklevel,
        )
    return fraction


def to_config(fingerprint: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fingerprint as JSON-ready values (hashes as base64)."""
    if fingerprint is None:
        return None
    data = np.asarray(fingerprint["hashes"], dtype="<u8").tobytes()
    return {
        "columns": list(fingerprint["columns"]),
        "rows": fingerprint["rows"],
        "exact": fingerprint["exact"],
        "hashes": base64.b64encode(data).decode("ascii"),
    }


def from_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The inverse of `to_config`."""
    if config is None:
        return None
    hashes = np.frombuffer(
        base64.b64decode(config["hashes"]), dtype="<u8"
    ).astype(np.uint64)
    return {
        "columns": list(config["columns"]),
        "rows": int(config["rows"]),
        "exact": bool(config["exact"]),
        "hashes": hashes,
    }


# Hashes rows while `fit` trains: NumPy releases the GIL in its loops.
_HASHING = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="keras_catembed_fingerprint"
)


def start(
    model: Any,
    x: Any,
    y: Any,
    validation_split: float = 0.0,
    validation_data: Any = None,
) -> concurrent.futures.Future[tuple[Any, int]] | None:
    """Starts hashing the rows `fit` will train on, in a thread.

    Only in-memory arrays are recorded; `validation_split` leaves out the
    last rows, as `fit` does. `finish` adds them to the model's
    fingerprint once `fit` has succeeded; a `fit` that fails records
    nothing. Returns None when there is nothing to record (not in-memory
    arrays, no rows).
    """
    if not isinstance(x, collections.abc.Mapping) or not _inputs.is_array_like(
        y
    ):
        return None
    if not all(
        _inputs.is_array_like(x.get(column)) for column in model.columns
    ):
        return None
    # Copied to the host here: the thread reads NumPy arrays only.
    y = flat_numpy(y)
    x = {column: flat_numpy(x[column]) for column in model.columns}
    if validation_split and validation_data is None:
        split = int(len(y) * (1.0 - validation_split))
        x = {column: value[:split] for column, value in x.items()}
        y = y[:split]
    if len(y) == 0:
        return None
    return _HASHING.submit(_hash_rows, list(model.columns), x, y)


def finish(
    model: Any, pending: concurrent.futures.Future[tuple[Any, int]] | None
) -> None:
    """Adds the rows `start` hashed to the model's fingerprint."""
    if pending is None:
        return
    hashes, rows = pending.result()
    model.__dict__["_training_fingerprint"] = _merge(
        model.columns,
        hashes,
        rows,
        model.__dict__.get("_training_fingerprint"),
    )


def check_data_source(value: Any) -> dict[str, Any] | None:
    """Returns `value` if it is None or a dict of JSON scalars."""
    if value is None:
        return None
    scalars = (str, int, float, bool, type(None))
    if not isinstance(value, collections.abc.Mapping) or not all(
        isinstance(k, str) and isinstance(v, scalars) for k, v in value.items()
    ):
        raise ValueError(
            "`data_source` must be None or a dict of strings, numbers, "
            f"booleans or None, keyed by strings. Received: {value!r}"
        )
    return dict(value)


class TrainingProvenance(ModelBase):
    """What `RatingModel` knows of the data it was trained on."""

    @property
    def training_fingerprint(self) -> dict[str, Any] | None:
        """A fixed-size summary of the rows `fit` trained on, or None.

        Each `fit` call on in-memory arrays adds its training rows (ids in
        column order and rating; `validation_split` rows excluded): a
        dict of `columns`, `rows` (count), `exact` and `hashes` (the
        8192 smallest distinct 64-bit row hashes, a bottom-k sketch). It
        is saved in the model's config. `training_overlap` and `evaluate`
        use it.
        """
        return self.__dict__.get("_training_fingerprint")

    @property
    def data_source(self) -> dict[str, Any] | None:
        """A dict naming the data the model was trained on, or None.

        Free-form JSON values set by the caller (`catembed train` records
        `dataset`, `data_dir`, `split`, `test_fraction`, `seed` and
        `max_rows`), saved in the model's config.
        """
        return self.__dict__.get("_data_source")

    @data_source.setter
    def data_source(self, value: Any) -> None:
        self.__dict__["_data_source"] = check_data_source(value)

    def training_overlap(self, x: Any, y: Any) -> float | None:
        """Estimates the share of rows `(x, y)` the model was trained on.

        A row counts when its ids and rating equal those of a row `fit`
        trained on. With up to 8192 distinct training rows the answer is
        exact; beyond, it rests on the test rows whose hash falls under
        the fingerprint's largest hash (about `8192 / training rows` of
        them, e.g. 2,000 of 20,000 test rows after training on 80,000).

        Args:
            x: Dict of id arrays keyed by column name.
            y: Array of ratings, one per row.

        Returns:
            A float in [0, 1], or None when the model has no fingerprint
            (it was not trained on arrays) or no row could be tested.
        """
        fingerprint = self.training_fingerprint
        if fingerprint is None:
            return None
        x = _inputs.check_x(self, x, "training_overlap")
        _inputs.check_y(y)
        return overlap(fingerprint, x, y)[0]
