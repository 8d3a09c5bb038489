"""`RatingModel.compile(optimizer="auto")`: the fast and accurate choice."""

from typing import Any

import keras

# Keras's default learning rate of Adam, for a model without a recipe.
DEFAULT_LEARNING_RATE = 1e-3


def penalized_tables(model: Any) -> list[str]:
    """The names of `model`'s embedding-table layers with a regularizer."""
    groups = ("embedding_layers", "implicit_layers", "neighborhood_layers")
    return [
        layer.name
        for group in groups
        for layer in getattr(model, group, {}).values()
        if getattr(layer, "embeddings_regularizer", None) is not None
    ]


def auto_optimizer(model: Any) -> keras.optimizers.Optimizer:
    """The optimizer `compile(optimizer="auto")` gives `model`.

    - `keras_catembed.optimizers.SparseAdam`, which updates only the
      table rows of each batch, when no embedding table carries a
      regularizer. A model from a preset takes its recipe's learning rate
      (constant: the recipe's schedule needs the number of training rows,
      which `compile` does not know), its moving average of the weights,
      and its `table_decay` as the decay of the embedding tables only.
    - `keras.optimizers.Adam` (dense) when a table carries a regularizer:
      under sparse updates an L2 penalty reaches only the rows of each
      batch, which trains worse than dense Adam; a recipe's `table_decay`
      in its place keeps both the accuracy and the sparse updates.
    """
    from keras_catembed._recipe import Recipe

    recipe = getattr(model, "recipe", None)
    if not isinstance(recipe, Recipe):
        recipe = Recipe(DEFAULT_LEARNING_RATE)
    penalized = penalized_tables(model)
    name = "adam" if penalized else "sparse_adam"
    decay = None if penalized else recipe.table_decay
    auto = recipe.replace(
        schedule="constant", optimizer=name, table_decay=decay
    )
    return auto.make_optimizer(1, model)
