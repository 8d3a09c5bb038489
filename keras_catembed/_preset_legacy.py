"""Presets written in the first vocabulary: translated, with a warning."""

import collections.abc
import warnings
from collections.abc import Mapping
from typing import Any

from keras_catembed._preset_table import LEGACY_KEYS
from keras_catembed._preset_table import _l2
from keras_catembed._preset_table import _normal


def upgrade(config: dict[str, Any], warn: bool = False) -> dict[str, Any]:
    """Translates a preset of the first vocabulary into the current one.

    The model part's `embedding_dim` (an integer, `"auto"` or a dict by
    column), `embeddings_l2`, `entity_dropout` and
    `embeddings_initializer_stddev` become `EntityEmbedding` arguments
    (`"embedding"`, and `"embeddings"` by column), and the `"training"`
    part becomes a `"recipe"`. A preset already in the current vocabulary
    is returned as it is.

    Args:
        config: A preset dict (changed in place).
        warn: Whether to emit a `DeprecationWarning` when something is
            translated. Defaults to `False`.

    Returns:
        `config`.
    """
    model = config.get("model")
    legacy = False
    if isinstance(model, dict) and any(k in model for k in LEGACY_KEYS):
        legacy = True
        embedding = dict(model.get("embedding", {}))
        if "embedding_dim" in model:
            dim = model.pop("embedding_dim")
            if isinstance(dim, collections.abc.Mapping):
                embedding.pop("output_dim", None)
                model["embeddings"] = {
                    column: {"output_dim": value}
                    for column, value in dim.items()
                }
            else:
                embedding["output_dim"] = dim
        if "embeddings_l2" in model:
            embedding["embeddings_regularizer"] = _l2(
                model.pop("embeddings_l2")
            )
        if "entity_dropout" in model:
            embedding["dropout"] = model.pop("entity_dropout")
        if "embeddings_initializer_stddev" in model:
            embedding["embeddings_initializer"] = _normal(
                model.pop("embeddings_initializer_stddev")
            )
        model["embedding"] = embedding
    if "training" in config:
        legacy = True
        training = config.pop("training")
        if "recipe" not in config:
            config["recipe"] = training
    if legacy and warn:
        warnings.warn(
            "This preset uses the first preset vocabulary (`embedding_dim`, "
            "`embeddings_l2`, `entity_dropout`, "
            "`embeddings_initializer_stddev`, `training`). Use "
            "EntityEmbedding arguments under 'embedding' / 'embeddings' "
            "and a 'recipe' instead (keras_catembed.presets.upgrade "
            "translates it).",
            DeprecationWarning,
            stacklevel=3,
        )
    return config


# Overrides of the first vocabulary, with the current name of each.
_LEGACY_OVERRIDES = {
    "embedding_dim": "output_dim",
    "embeddings_l2": "embeddings_regularizer",
    "entity_dropout": "dropout",
    "embeddings_initializer_stddev": "embeddings_initializer",
}


def _upgrade_overrides(
    overrides: Mapping[str, Any], name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    old = [key for key in overrides if key in _LEGACY_OVERRIDES]
    if not old:
        return {}, dict(overrides)
    warnings.warn(
        f"The overrides {old} are deprecated: pass EntityEmbedding "
        f"arguments ({[_LEGACY_OVERRIDES[k] for k in old]}) instead.",
        DeprecationWarning,
        stacklevel=4,
    )
    overrides = dict(overrides)
    legacy = upgrade(
        {"model": {key: overrides.pop(key) for key in old}}, warn=False
    )["model"]
    return legacy, overrides
