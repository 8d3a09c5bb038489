"""The ratings an `ItemAutoencoder` stores and reads (private).

The autoencoder keeps the `(num_items, num_users)` matrix of the ratings
it was fitted on as non-trainable weights: these functions check rows
and ratings before anything runs, store them, and warn when rows to
score are ratings it stores.
"""

import collections.abc
import warnings
from typing import Any

import keras
import numpy as np

from keras_catembed import _inputs
from keras_catembed import _provenance


def rows(model: Any, column: str, x: Any) -> np.ndarray:
    """The table rows of `x[column]`'s ids (unknown ids clipped)."""
    layer = model.embedding_layers[column]
    clipped = layer._clipped_rows(np.asarray(x[column]).reshape(-1))
    return np.asarray(keras.ops.convert_to_numpy(clipped))


def checked(model: Any, x: Any, y: Any, where: str) -> tuple[Any, Any]:
    """Arrays of `x` and `y`, checked before anything runs.

    Raises a `ValueError` for anything but a dict of id arrays of the
    model's columns and one non-zero rating per row (numeric and finite:
    `_inputs.check_y`).
    """
    x = _inputs.check_x(model, x, where)
    if not isinstance(x, collections.abc.Mapping) or not all(
        _inputs.is_array_like(x[column]) for column in model.columns
    ):
        raise ValueError(
            f"`{where}` expects a dict of id arrays keyed by "
            f"{model.columns}. Received: {type(x).__name__}"
        )
    if y is None:
        raise ValueError(
            f"`{where}` needs the ratings `y` (one per row). Received: y=None"
        )
    _inputs.check_y(y)
    y = np.asarray(keras.ops.convert_to_numpy(y), "float64").reshape(-1)
    users = rows(model, model.user_column, x)
    if y.shape[0] != users.shape[0]:
        raise ValueError(
            f"`{where}`: `y` has {y.shape[0]} ratings for "
            f"{users.shape[0]} rows. Expected one rating per row."
        )
    if np.any(y == 0):
        raise ValueError(
            f"`{where}`: a rating of 0 (row {int(np.argmax(y == 0))}) "
            "cannot be stored: 0 marks an unrated entry. Expected "
            "non-zero ratings (shift the scale, e.g. 1-5)."
        )
    return x, y


def store(model: Any, x: Any, y: np.ndarray) -> np.ndarray:
    """Stores checked rows and ratings (see `ItemAutoencoder.adapt`).

    Returns the rows of the rated items in the stored matrix, what `fit`
    trains on.
    """
    users = rows(model, model.user_column, x)
    items = rows(model, model.item_column, x)
    matrix = np.zeros((model.num_items, model.num_users), "float32")
    matrix[items, users] = y
    model.item_ratings.embeddings.assign(matrix)
    known_users = np.bincount(users, minlength=model.num_users) > 0
    known_items = np.bincount(items, minlength=model.num_items) > 0
    model.known_users.assign(known_users.astype("float32"))
    model.known_items.assign(known_items.astype("float32"))
    model.mean_rating.assign(float(np.mean(y)))
    return matrix[np.flatnonzero(known_items)]


def variables(model: Any) -> list[Any]:
    """The weights `store` writes, to restore after a failed `fit`."""
    return [
        model.item_ratings.embeddings,
        model.known_users,
        model.known_items,
        model.mean_rating,
    ]


def warn_overlap(model: Any, x: Any, y: Any) -> None:
    """Warns when rows of `(x, y)` are ratings the model stores.

    The model reads its stored ratings as inputs: a test rating among
    them would describe its own item.
    """
    if not isinstance(x, collections.abc.Mapping) or not all(
        _inputs.is_array_like(v) for v in (x[model.user_column], y)
    ):
        return
    users = rows(model, model.user_column, x)
    items = rows(model, model.item_column, x)
    matrix = keras.ops.convert_to_numpy(model.item_ratings.embeddings)
    target = np.asarray(keras.ops.convert_to_numpy(y), "float32")
    stored = matrix[items, users] == target.reshape(-1)
    fraction = float(np.mean(stored))
    if fraction > _provenance.OVERLAP_THRESHOLD:
        warnings.warn(
            _provenance.overlap_message(fraction, stored.size, True),
            UserWarning,
            stacklevel=3,
        )
