"""The sublayers of a `RatingModel`, made from its checked arguments.

Keras saves a subclassed model's weights under its attribute names and
its layers' names, and the order of creation fixes the order of the
optimizer's variables: these functions create the layers in the order
the saved files expect (each column's table then its bias, the implicit
then the neighbourhood layers, each hidden layer then its dropout, the
output unit).
"""

from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import keras

from keras_catembed import _implicit
from keras_catembed import _pair_dtype
from keras_catembed import _pairs
from keras_catembed._implicit import ImplicitFeedback
from keras_catembed.entity_embedding import EntityEmbedding


def add_tables(
    embedding_layers: dict[str, Any],
    bias_layers: dict[str, Any],
    columns: list[str],
    embeddings: Mapping[str, Any],
    bias_terms: bool,
    dtype: Any,
) -> dict[str, int]:
    """Fills `embedding_layers` and `bias_layers`; returns cardinalities.

    The model's (tracked) dicts are filled column by column, table then
    bias, as the saved files expect. A column given as a bare cardinality
    gets an `EntityEmbedding` of the `"auto"` size, and is saved in the
    config as that integer (the returned dict).
    """
    cardinalities = {}
    for column in columns:
        spec = embeddings[column]
        if isinstance(spec, EntityEmbedding):
            layer = spec
        else:
            cardinalities[column] = int(spec)
            layer = EntityEmbedding(
                input_dim=spec, name=f"{column}_embedding", dtype=dtype
            )
        layer.set_column(column)
        embedding_layers[column] = layer
        if bias_terms:
            bias_layers[column] = bias_table(layer, dtype)
    return cardinalities


def bias_table(table: EntityEmbedding, dtype: Any) -> EntityEmbedding:
    """A learned scalar per id of `table`'s column, zeros at first."""
    column = table._column
    bias = EntityEmbedding(
        input_dim=table.input_dim,
        output_dim=1,
        vocabulary=table.vocabulary,
        num_oov_indices=table.num_oov_indices,
        embeddings_initializer="zeros",
        name=f"{column}_bias",
        dtype=dtype,
    )
    bias.set_column(column)
    return bias


def pair_layers(
    pairs: Mapping[str, str],
    embedding_layers: Mapping[str, EntityEmbedding],
    *,
    rated: bool,
    max_pairs_per_id: int | None,
    pairs_per_step: int | Mapping[str, int | None] | None,
    dtype: Any,
    pair_dtype: str | None = None,
) -> dict[str, ImplicitFeedback]:
    """An `ImplicitFeedback` layer per described column of `pairs`.

    Each gets a table of source-id vectors of its column's embedding
    size, initializer and regularizer, and the window `pairs_per_step`
    gives its column (one for all, or one per column).
    """
    return {
        target: pair_layer(
            embedding_layers[target],
            embedding_layers[source],
            rated=rated,
            max_pairs_per_id=max_pairs_per_id,
            pairs_per_step=_pairs.steps_for(pairs_per_step, target),
            dtype=dtype,
            pair_dtype=pair_dtype,
        )
        for target, source in pairs.items()
    }


def resolved_pair_dtype(
    pair_dtype: str,
    tables: Iterable[tuple[EntityEmbedding, EntityEmbedding, int | None]],
    max_pairs_per_id: int | None,
) -> str:
    """A checked `pair_dtype`, "auto" resolved for the pair layers to make.

    `tables` holds each pair layer's described table, source table and
    `pairs_per_step`: "auto" is bfloat16 only if every layer is dense.
    """
    return _pair_dtype.resolve(
        pair_dtype,
        [
            _pair_dtype.lists_reason(
                table.num_rows,
                source.num_rows,
                limit=_implicit.DENSE_LIMIT,
                max_pairs_per_id=max_pairs_per_id,
                pairs_per_step=steps,
            )
            for table, source, steps in tables
        ],
    )


def pair_layer(
    table: EntityEmbedding,
    source: EntityEmbedding,
    *,
    rated: bool,
    max_pairs_per_id: int | None,
    pairs_per_step: int | None,
    dtype: Any,
    pair_dtype: str | None = None,
) -> ImplicitFeedback:
    """An `ImplicitFeedback` layer describing `table`'s ids by `source`'s.

    Its table of source-id vectors has the size, initializer and
    regularizer of the described column's embedding.
    """
    return ImplicitFeedback(
        num_targets=table.num_rows,
        num_sources=source.num_rows,
        output_dim=table.output_dim,
        embeddings_initializer=keras.initializers.get(
            keras.initializers.serialize(table.embeddings_initializer)
        ),
        embeddings_regularizer=table.embeddings_regularizer,
        rated=rated,
        max_pairs_per_id=max_pairs_per_id,
        pairs_per_step=pairs_per_step,
        name=f"{table._column}_{'neighborhood' if rated else 'implicit'}",
        dtype=dtype,
        pair_dtype=pair_dtype,
    )


def add_hidden(
    hidden_layers: list[Any],
    dropout_layers: list[Any],
    hidden_units: list[int],
    activation: Any,
    dropout: float,
    dtype: Any,
) -> None:
    """Fills the model's (tracked) lists of the MLP head, layer by layer."""
    for index, units in enumerate(hidden_units):
        hidden_layers.append(
            keras.layers.Dense(
                units,
                activation=activation,
                name=f"hidden_{index}",
                dtype=dtype,
            )
        )
        if dropout > 0:
            dropout_layers.append(
                keras.layers.Dropout(
                    dropout, name=f"hidden_{index}_dropout", dtype=dtype
                )
            )


def output_unit(dtype: Any) -> keras.layers.Dense:
    """The linear output unit: float32 under a mixed precision policy."""
    compute_dtype = keras.backend.standardize_dtype(dtype.compute_dtype)
    mixed = compute_dtype in ("float16", "bfloat16")
    return keras.layers.Dense(
        1, name="rating", dtype="float32" if mixed else dtype
    )


def weight_sizes(model: Any) -> dict[str, int]:
    """A lower bound of each weight's number of values, before build."""
    sizes = {}
    for column, layer in model.embedding_layers.items():
        sizes[f"the embedding of '{column}'"] = (
            layer.num_rows * layer.output_dim
        )
    for kind, layers in (
        ("implicit", model.implicit_layers),
        ("neighborhood", model.neighborhood_layers),
    ):
        for column, layer in layers.items():
            pairs = layer.num_sources if layer.dense else 2 * layer.width
            sizes[f"the {kind} pairs of '{column}'"] = layer.num_targets * pairs
            sizes[f"the {kind} table of '{column}'"] = (
                layer.num_sources * layer.output_dim
            )
    # Each hidden layer reads at least one value per input column.
    width = len(model.columns)
    for index, units in enumerate(model.hidden_units):
        sizes[f"hidden layer {index}"] = width * units
        width = units
    return sizes


def source_config(column: str, table: EntityEmbedding) -> dict[str, Any]:
    """A pair source as a config: its column and what maps its ids to rows.

    The source's table belongs to its own encoder: its weights are not in
    the config, only its lookup (`source_from_config` rebuilds it).
    """
    lookup = {
        "input_dim": table.input_dim,
        "vocabulary": table.vocabulary,
        "num_oov_indices": table.num_oov_indices,
        "output_dim": table.output_dim,
    }
    return {"column": column, "lookup": lookup}


def source_from_config(config: Mapping[str, Any]) -> tuple[str, Any]:
    """The column and an unbuilt lookup table of `source_config`'s output.

    The table names its column in its errors, as the source's own does.
    """
    column = config["column"]
    table = EntityEmbedding(**config["lookup"], name=f"{column}_embedding")
    table.set_column(column)
    return column, table
