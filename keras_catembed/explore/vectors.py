"""The learned vector of every id of a column, as the model uses it."""

from collections.abc import Sized
from typing import Any
from typing import TypeVar

import keras
import numpy as np
from keras import ops
from numpy.typing import NDArray

from keras_catembed.entity_embedding import EntityEmbedding

__all__ = ["embedding_matrix"]


def _embedding_layer(model: Any, column: str) -> Any:
    layers = getattr(model, "embedding_layers", None)
    if isinstance(layers, dict) and column in layers:
        return layers[column]
    try:
        layer = model.get_layer(column)
    except ValueError:
        layer = None
    if isinstance(layer, (EntityEmbedding, keras.layers.Embedding)):
        return layer
    if isinstance(layers, dict):
        known = list(layers)
    else:
        known = [
            layer.name
            for layer in getattr(model, "layers", [])
            if isinstance(layer, (EntityEmbedding, keras.layers.Embedding))
        ]
    raise ValueError(
        f"`column` must name an embedding of the model; one of {known}. "
        f"Received: column={column!r}"
    )


def embedding_matrix(model: Any, column: str) -> NDArray[np.float32]:
    """Returns the learned vectors of one column as a NumPy array.

    Args:
        model: A trained `keras_catembed.RatingModel` (or a Keras model with
            an embedding layer named `column`).
        column: String. The column (or embedding layer) name.

    Returns:
        A float32 array of shape `(num_ids, output_dim)`, or
        `(num_ids, 2 * output_dim)` for a column with a neighbourhood;
        row `i` is the vector of id index `i` (OOV rows are left out). It
        is the vector the model uses: for a column with implicit feedback
        (`RatingModel(implicit=...)`), the id's own row plus its
        implicit-feedback vector; for a column with a neighbourhood
        (`neighborhood=...`), that vector followed by the id's whole
        neighbourhood sum, as the model's input to `interact` is.

    Raises:
        ValueError: if the model has no such column or is not built yet.
    """
    layer = _embedding_layer(model, column)
    if not layer.built:
        raise ValueError(
            f"The embedding of column {column!r} is not built yet: train or "
            "build the model first."
        )
    matrix = np.asarray(ops.convert_to_numpy(layer.embeddings), "float32")
    implicit = getattr(model, "implicit_layers", {}).get(column)
    if implicit is not None and implicit.adapted:
        matrix = matrix + _whole_sums(implicit, matrix.shape[0])
    neighbors = getattr(model, "neighborhood_layers", {}).get(column)
    if neighbors is not None and neighbors.adapted:
        sums = _whole_sums(neighbors, matrix.shape[0])
        matrix = np.concatenate([matrix, sums], axis=-1)
    num_ids = getattr(layer, "num_ids", matrix.shape[0])
    return matrix[:num_ids]


def _whole_sums(
    layer: Any, num_rows: int, block: int = 4096
) -> NDArray[np.float32]:
    """`layer.sums` of rows `0..num_rows-1`, a block of rows at a time."""
    parts = []
    for start in range(0, num_rows, block):
        rows = np.arange(start, min(start + block, num_rows), dtype="int32")
        sums = layer.sums(ops.convert_to_tensor(rows))
        parts.append(np.asarray(ops.convert_to_numpy(sums), "float32"))
    return np.concatenate(parts)


_Values = TypeVar("_Values", bound=Sized)


def per_id(name: str, values: _Values | None, num_ids: int) -> _Values | None:
    if values is None:
        return None
    if len(values) != num_ids:
        raise ValueError(
            f"`{name}` must have one entry per id ({num_ids}). Received "
            f"{len(values)} entries"
        )
    return values
