"""Row access, argument checks and scores shared by the evaluation modules.

The data is a `keras_catembed.datasets.movielens.Ratings` or a dict of 1-D
NumPy arrays of equal length, one per column.
"""

from __future__ import annotations

import collections.abc
import math
import numbers
import time
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeAlias
from typing import TypeGuard

import numpy as np
from numpy.typing import ArrayLike
from numpy.typing import NDArray

if TYPE_CHECKING:
    from keras_catembed.datasets.movielens import Ratings

# A `Ratings` or a dict of 1-D arrays of equal length, one per column.
Data: TypeAlias = "Ratings | collections.abc.Mapping[str, ArrayLike]"
# What `cross_validate` and `evaluate` return: lists of per-fold values,
# NumPy arrays once finished, and the "mean" and "std" dicts.
Results = dict[str, Any]

METRICS = ("test_rmse", "test_mae", "fit_time", "test_time")
PREDICT_BATCH_SIZE = 4096


def num_rows(data: Data) -> int:
    """The number of rows of a `Ratings` or of a dict of 1-D arrays."""
    if not isinstance(data, collections.abc.Mapping):
        if hasattr(data, "subset") and hasattr(data, "user_id"):
            return len(data)
        raise ValueError(
            "The data must be a `keras_catembed.datasets.movielens.Ratings` "
            f"or a dict of 1-D arrays. Received: {type(data).__name__}"
        )
    if not data:
        raise ValueError("The data dict has no columns. Received: {}")
    sizes: dict[str, int] = {}
    for key, value in data.items():
        shape = np.shape(value)
        if len(shape) != 1:
            raise ValueError(
                f"Column {key!r} of the data must be a 1-D array. Received: "
                f"shape {shape}"
            )
        sizes[key] = shape[0]
    first = next(iter(sizes))
    for key, size in sizes.items():
        if size != sizes[first]:
            raise ValueError(
                f"Column {key!r} of the data has {size} rows, but column "
                f"{first!r} has {sizes[first]}. Expected equal lengths."
            )
    return sizes[first]


def column(data: Data, name: str, argument: str) -> NDArray[Any]:
    """The column `name` of a `Ratings` or a dict of arrays."""
    num_rows(data)
    if isinstance(data, collections.abc.Mapping):
        values = data.get(name)
        known = sorted(data)
    else:
        values = getattr(data, name, None) if name in _RATINGS_FIELDS else None
        known = list(_RATINGS_FIELDS)
    if values is None:
        raise ValueError(
            f"`{argument}` names the column {name!r}, which the data lacks. "
            f"Expected one of {known}"
        )
    return np.asarray(values)


def take(data: Data, indices: NDArray[np.integer] | NDArray[np.bool_]) -> Data:
    """The rows `indices` of a `Ratings` or of a dict of arrays."""
    if isinstance(data, collections.abc.Mapping):
        return {key: np.asarray(value)[indices] for key, value in data.items()}
    return data.subset(indices)


_RATINGS_FIELDS = ("user_id", "movie_id", "rating", "timestamp")


def timestamps(data: Data, name: str, protocol: str) -> NDArray[np.integer]:
    if isinstance(data, collections.abc.Mapping):
        stamps = data.get(name)
    else:
        stamps = data.timestamp
    if stamps is None:
        raise ValueError(
            f"`{protocol}` splits by time and needs timestamps, but the data "
            f"has none (no {name!r} column). Use `KFold` or `HoldOut`, or "
            "give the data timestamps."
        )
    stamps = np.asarray(stamps)
    if stamps.dtype.kind not in "iu":
        raise ValueError(
            f"The timestamps ({name!r}) must be integers. Received: dtype "
            f"{stamps.dtype}"
        )
    return stamps


def row_keys(
    ratings: Ratings,
) -> list[tuple[int, int, float, int]]:
    stamps = ratings.timestamp
    if stamps is None:
        stamps = np.zeros(len(ratings), np.int64)
    return list(
        zip(
            ratings.user_id.tolist(),
            ratings.movie_id.tolist(),
            ratings.rating.tolist(),
            stamps.tolist(),
            strict=True,
        )
    )


def is_int(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(seed: object) -> int:
    from keras_catembed import _checks

    return _checks.seed("seed", seed)


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and the backend (`keras.utils.set_random_seed`)."""
    import keras

    keras.utils.set_random_seed(seed)


def check_fraction(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 < float(value) < 1.0
        or math.isnan(value)
    ):
        raise ValueError(
            f"`{name}` must be a float in (0, 1). Received: {name}={value!r}"
        )
    return float(value)


def model_data(
    model: Any, part: Data, target: str
) -> tuple[dict[str, Any], NDArray[Any]]:
    """The model inputs and ratings of a data part."""
    columns = getattr(model, "columns", None)
    if not isinstance(part, collections.abc.Mapping):
        from keras_catembed.datasets.movielens import inputs

        return inputs(part, columns or ("user_id", "movie_id")), part.rating
    y = column(part, target, "target")
    if columns is None:
        columns = [key for key in part if key not in (target, "timestamp")]
    return {c: column(part, c, "columns") for c in columns}, y


def empty_results() -> Results:
    results: Results = {name: [] for name in METRICS}
    results.update(num_train=[], num_test=[])
    return results


def score(
    results: Results,
    model: Any,
    train: Data,
    test: Data,
    target: str,
    fit_time: float,
) -> None:
    results["num_train"].append(num_rows(train))
    x, y = model_data(model, test, target)
    start = time.perf_counter()
    # Keras predicts in batches of 32 by default: slow on whole test parts.
    prediction = model.predict(x, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    prediction = np.asarray(prediction, "float64")
    results["test_time"].append(time.perf_counter() - start)
    error = prediction.reshape(-1) - np.asarray(y, "float64")
    results["test_rmse"].append(float(np.sqrt(np.mean(error**2))))
    results["test_mae"].append(float(np.mean(np.abs(error))))
    results["fit_time"].append(fit_time)
    results["num_test"].append(int(error.size))


def finish(results: Results, verbose: bool) -> Results:
    for name in METRICS:
        results[name] = np.asarray(results[name], "float64")
    results["mean"] = {name: float(np.mean(results[name])) for name in METRICS}
    results["std"] = {name: float(np.std(results[name])) for name in METRICS}
    if verbose:
        print(table(results))
    return results


def table(results: Results) -> str:
    folds = len(results["test_rmse"])
    head = [f"Fold {i + 1}" for i in range(folds)] + ["Mean", "Std"]
    lines = [f"{'':<16}" + "".join(f"{h:>9}" for h in head)]
    for name, label in zip(
        METRICS,
        ("RMSE (testset)", "MAE (testset)", "Fit time", "Test time"),
        strict=True,
    ):
        values = [*results[name], results["mean"][name], results["std"][name]]
        lines.append(f"{label:<16}" + "".join(f"{v:>9.4f}" for v in values))
    return "\n".join(lines)
