"""The `ColumnEncoder`s of a `RatingModel`, over the layers it holds.

The model's saved files name its weights by its own attributes, so its
encoders share its layers rather than own them.
"""

import types
from collections.abc import Mapping
from typing import Any

from keras_catembed import _pairs
from keras_catembed.column_encoder import ColumnEncoder
from keras_catembed.entity_embedding import EntityEmbedding


def model_encoders(model: Any) -> Mapping[str, ColumnEncoder]:
    """A `ColumnEncoder` per column over the layers `model` holds."""
    result = {}
    for column in model.columns:
        pairs = {}
        for kind, sources, layers in (
            ("implicit", model.implicit, model.implicit_layers),
            ("neighborhood", model.neighborhood, model.neighborhood_layers),
        ):
            if column in layers:
                source = sources[column]
                table = model.embedding_layers[source]
                pairs[kind] = (layers[column], source, table)
        result[column] = _of_layers(
            column,
            model.embedding_layers[column],
            model.bias_layers.get(column),
            pairs,
            model.max_pairs_per_id,
            _pairs.steps_for(model.pairs_per_step, column),
            model.pair_dtype,
        )
    return types.MappingProxyType(result)


def _of_layers(
    column: str,
    embedding: EntityEmbedding,
    bias_layer: EntityEmbedding | None,
    pair_layers: Mapping[str, tuple[Any, str, EntityEmbedding]],
    max_pairs_per_id: int | None = None,
    pairs_per_step: int | None = None,
    pair_dtype: str | None = None,
) -> ColumnEncoder:
    """An encoder over a table, a bias and pair layers made elsewhere."""
    encoder = ColumnEncoder(
        embedding,
        column=column,
        max_pairs_per_id=max_pairs_per_id,
        pairs_per_step=pairs_per_step,
        dtype=embedding.dtype_policy,
    )
    # Set after the sources: alone, an encoder refuses a narrow dtype.
    if pair_dtype is not None:
        encoder.pair_dtype = pair_dtype
    encoder.bias = bias_layer is not None
    encoder.bias_layer = bias_layer
    sources = {}
    for kind, (layer, source, table) in pair_layers.items():
        setattr(encoder, f"{kind}_layer", layer)
        sources[kind] = (source, table)
    encoder._sources = types.MappingProxyType(sources)
    return encoder
