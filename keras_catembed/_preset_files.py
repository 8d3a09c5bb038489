"""Preset names and folders: loading, building a model, saving."""

import collections.abc
import copy
import json
import os
from collections.abc import Mapping
from typing import Any

import keras

from keras_catembed import _provenance
from keras_catembed._inputs import check_columns as _check_columns
from keras_catembed._preset_legacy import _upgrade_overrides
from keras_catembed._preset_legacy import upgrade
from keras_catembed._preset_table import CONFIG_FILE
from keras_catembed._preset_table import EMBEDDING_KEYS
from keras_catembed._preset_table import FORMAT
from keras_catembed._preset_table import MODEL_KEYS
from keras_catembed._preset_table import PRESETS
from keras_catembed._preset_table import WEIGHTS_FILE
from keras_catembed._recipe import Recipe
from keras_catembed.entity_embedding import EntityEmbedding


def get(name: str) -> dict[str, Any]:
    """Returns a deep copy of the preset `name`.

    Args:
        name: String. One of `keras_catembed.presets.PRESETS`.

    Returns:
        Dict with keys `"description"`, `"model"` and `"recipe"` (and
        `"user_features"` for a preset that embeds them).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}. Known presets: {sorted(PRESETS)}"
        )
    return upgrade(copy.deepcopy(PRESETS[name]), warn=True)


def _is_folder_path(preset: object) -> bool:
    return isinstance(preset, (str, os.PathLike)) and (
        os.path.isdir(preset) or os.sep in str(preset)
    )


def load(preset: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """The config of a preset: a name, a folder, or a preset dict.

    Args:
        preset: A name in `PRESETS`, a folder written by `save_to_preset`
            (or holding such a `config.json`), or a preset dict.

    Returns:
        A deep copy in the current vocabulary: a dict with `"model"` and
        `"recipe"` (and `"description"`, `"user_features"`, and for a
        folder `"embeddings"`, the saved cardinalities, and
        `"weights"`, the path of the saved weights or `None`).

    Raises:
        ValueError: for an unknown name or a folder without a preset.
    """
    if isinstance(preset, collections.abc.Mapping):
        return upgrade(copy.deepcopy(dict(preset)), warn=True)
    if isinstance(preset, str) and preset in PRESETS:
        return get(preset)
    if _is_folder_path(preset):
        folder = os.fspath(preset)
        path = os.path.join(folder, CONFIG_FILE)
        if not os.path.isfile(path):
            raise ValueError(
                f"No preset in {folder!r}: expected a {CONFIG_FILE} written "
                "by keras_catembed.presets.save_to_preset."
            )
        try:
            with open(path, encoding="utf-8") as file:
                config = json.load(file)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(
                f"Cannot read the preset {path}: {error}"
            ) from None
        if not isinstance(config, dict) or "model" not in config:
            raise ValueError(
                f"{path} is not a preset: expected a JSON object with a "
                "'model' part."
            )
        config = upgrade(config, warn=True)
        weights = os.path.join(folder, WEIGHTS_FILE)
        config["weights"] = weights if os.path.isfile(weights) else None
        return config
    raise ValueError(
        f"Unknown preset {preset!r}. Known presets: {sorted(PRESETS)}, or a "
        "folder written by keras_catembed.presets.save_to_preset."
    )


def recipe(
    preset: str | os.PathLike[str] | Mapping[str, Any],
) -> Recipe | None:
    """The `keras_catembed.training.Recipe` of a preset (name or folder)."""
    config = load(preset).get("recipe")
    return None if config is None else Recipe.from_config(config)


def build_model(
    config: Mapping[str, Any],
    embeddings: Mapping[str, Any],
    cls: Any,
    *,
    name: str = "preset",
    **overrides: Any,
) -> Any:
    """Builds a preset's model of class `cls`; see `presets.build_model`."""
    model = copy.deepcopy(config["model"])
    shared = model.pop("embedding", {})
    by_column = model.pop("embeddings", None) or {}
    legacy, overrides = _upgrade_overrides(overrides, name)
    legacy_by_column = legacy.pop("embeddings", None)
    embedding_overrides = dict(legacy.get("embedding", {}))
    model_overrides = {}
    unknown = []
    for key, value in overrides.items():
        if key in MODEL_KEYS or key in ("name", "dtype"):
            model_overrides[key] = value
        elif key in EMBEDDING_KEYS:
            embedding_overrides[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"Unknown overrides {sorted(unknown)} for preset {name!r}. "
            f"Expected some of {sorted({*MODEL_KEYS, *EMBEDDING_KEYS})}"
        )
    if legacy_by_column is not None:
        by_column = legacy_by_column
    elif "output_dim" in embedding_overrides:
        # One size for every column replaces the preset's sizes by column.
        by_column = {
            column: {k: v for k, v in values.items() if k != "output_dim"}
            for column, values in by_column.items()
        }
    model.update(model_overrides)
    columns = _check_columns(embeddings)
    # The columns the preset names must all be sized: a preset that adds
    # `user_day` would otherwise build, and score, a model without it.
    named = [
        *(config.get("user_features") or ()),
        *(config.get("time_columns") or ()),
    ]
    if by_column and "output_dim" not in {**shared, **embedding_overrides}:
        missing = [column for column in columns if column not in by_column]
        if missing:
            raise ValueError(
                f"Preset {name!r} sets the embeddings per column for "
                f"{sorted(by_column)}, not for {missing}. Pass "
                "`output_dim=` (an integer or 'auto') to override it."
            )
        named += list(by_column)
    lacking = [
        column for column in dict.fromkeys(named) if column not in columns
    ]
    if lacking:
        raise ValueError(
            f"Preset {name!r} embeds the columns {lacking}, but `embeddings` "
            f"sizes only {list(columns)}. Pass the number of ids of each "
            "(or data that holds these columns)."
        )
    layers = {}
    for column in columns:
        n = embeddings[column]
        if isinstance(n, EntityEmbedding):
            raise ValueError(
                "`from_preset` builds the embedding layers itself: pass "
                f"cardinalities. Received a layer for column {column!r}"
            )
        kwargs = {
            **shared,
            **by_column.get(column, {}),
            **embedding_overrides,
        }
        kwargs = {
            key: (
                keras.initializers.get(copy.deepcopy(value))
                if key == "embeddings_initializer"
                and isinstance(value, collections.abc.Mapping)
                else value
            )
            for key, value in kwargs.items()
        }
        if kwargs.get("vocabulary") is None:
            kwargs.pop("vocabulary", None)
            kwargs["input_dim"] = n
        layers[column] = EntityEmbedding(
            name=f"{column}_embedding",
            dtype=model.get("dtype"),
            **kwargs,
        )
    return cls(layers, **model)


def from_preset(
    preset: str | os.PathLike[str] | Mapping[str, Any],
    embeddings: Mapping[str, Any] | None,
    cls: Any,
    load_weights: bool = True,
    **kw: Any,
) -> Any:
    """Builds a preset's model of class `cls`; see `RatingModel.from_preset`."""
    config = load(preset)
    name = preset if isinstance(preset, (str, os.PathLike)) else "dict"
    name = os.fspath(name) if isinstance(name, os.PathLike) else name
    saved = _saved_columns(config)
    if embeddings is None:
        embeddings = saved or None
        if embeddings is None:
            raise ValueError(
                f"Preset {name!r} does not record its cardinalities: pass "
                "`embeddings`, a dict of the number of ids by column."
            )
    if not isinstance(embeddings, collections.abc.Mapping):
        raise ValueError(
            "`embeddings` must be a dict mapping each column name to its "
            f"cardinality. Received: {type(embeddings).__name__}"
        )
    where_sized = {
        "user_features": (
            "user features",
            "their sizes are in "
            "`keras_catembed.datasets.movielens.USER_FEATURES`",
        ),
        "time_columns": (
            "time columns",
            "for MovieLens, `ratings.num_user_days` rows for 'user_day'",
        ),
    }
    for key, (what, sizes) in where_sized.items():
        listed = config.get(key) or []
        missing = [column for column in listed if column not in embeddings]
        if missing:
            raise ValueError(
                f"Preset {name!r} also embeds the {what} {listed}: add "
                f"the columns {missing} to `embeddings` ({sizes})."
            )
    left_out = [column for column in saved if column not in embeddings]
    if left_out:
        raise ValueError(
            f"Preset {name!r} was saved with the columns {list(saved)}, "
            f"and `embeddings` leaves out {left_out}: pass a cardinality "
            "for every saved column (or leave `embeddings` out to use the "
            f"saved ones, {dict(saved)}). Received: "
            f"embeddings={dict(embeddings)}"
        )
    model = build_model(config, embeddings, cls, name=name, **kw)
    recipe_config = config.get("recipe")
    if recipe_config is not None:
        model.recipe = Recipe.from_config(recipe_config)
    weights = config.get("weights")
    if load_weights and weights is not None:
        if kw or dict(embeddings) != saved:
            raise ValueError(
                f"Preset {name!r} holds trained weights for the "
                f"cardinalities {saved} and its own settings: pass no "
                "overrides and the same `embeddings` (or leave it out), or "
                "`load_weights=False` to start from fresh weights. "
                f"Received: embeddings={dict(embeddings)}, overrides="
                f"{sorted(kw)}"
            )
        model.build()
        model.load_weights(weights)
        # What the weights were trained on, as `model.save` keeps it.
        model.__dict__["_training_fingerprint"] = _provenance.from_config(
            config.get("training_fingerprint")
        )
        model.data_source = config.get("data_source")
    return model


def _saved_columns(config: Mapping[str, Any]) -> dict[str, int]:
    """The columns and cardinalities a preset folder was saved with.

    Folders written before vocabulary columns were recorded list only the
    others; their vocabulary columns are added from the model part, in
    the order the model had them.
    """
    saved = dict(config.get("embeddings") or {})
    by_column = (config.get("model") or {}).get("embeddings") or {}
    sizes = {
        column: len(values["vocabulary"])
        for column, values in by_column.items()
        if isinstance(values, Mapping) and values.get("vocabulary") is not None
    }
    if all(column in saved for column in sizes):
        return saved
    return {
        column: saved[column] if column in saved else sizes[column]
        for column in by_column
        if column in saved or column in sizes
    }


def _model_part(model: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """The preset model part that rebuilds `model` (current vocabulary)."""
    config = model.get_config()
    part = {key: config[key] for key in MODEL_KEYS if key in config}
    if isinstance(part.get("rating_range"), tuple):
        part["rating_range"] = list(part["rating_range"])
    by_column = {}
    cardinalities = {}
    for column in model.columns:
        layer = model.embedding_layers[column]
        layer_config = layer.get_config()
        by_column[column] = {
            key: layer_config[key]
            for key in EMBEDDING_KEYS
            if key in layer_config
            and not (key == "vocabulary" and layer_config[key] is None)
        }
        # A vocabulary column is recorded by its number of ids, so that
        # every column is rebuilt, in the model's order.
        cardinalities[column] = (
            layer.input_dim
            if layer.vocabulary is None
            else len(layer.vocabulary)
        )
    if model.dtype_policy.name != "float32":
        part["dtype"] = model.dtype_policy.name
    part["embedding"] = {}
    part["embeddings"] = by_column
    return part, cardinalities


def save_to_preset(
    model: Any,
    preset_dir: str | os.PathLike[str],
    recipe: Recipe | Mapping[str, Any] | None = None,
    *,
    description: str | None = None,
) -> str:
    """Writes `model` as a preset folder; see `presets.save_to_preset`."""
    if recipe is None:
        recipe = getattr(model, "recipe", None)
    if isinstance(recipe, dict):
        recipe = Recipe.from_config(recipe)
    if recipe is not None and not isinstance(recipe, Recipe):
        raise ValueError(
            "`recipe` must be a keras_catembed.training.Recipe, its config "
            f"or None. Received: {type(recipe).__name__}"
        )
    if description is not None and not isinstance(description, str):
        raise ValueError(
            "`description` must be a string. Received: "
            f"{type(description).__name__}"
        )
    part, cardinalities = _model_part(model)
    config = {
        "format": FORMAT,
        "format_version": 1,
        "description": description or "",
        "model": part,
        "recipe": None if recipe is None else recipe.get_config(),
        "embeddings": cardinalities,
    }
    if model.built and model.training_fingerprint is not None:
        config["training_fingerprint"] = _provenance.to_config(
            model.training_fingerprint
        )
    if model.built and model.data_source is not None:
        config["data_source"] = dict(model.data_source)
    text = json.dumps(config, indent=2)  # Fails before anything is written.
    if os.path.exists(preset_dir) and not os.path.isdir(preset_dir):
        raise ValueError(
            "`preset_dir` must be a folder (new or existing), not a file. "
            f"Received: preset_dir={os.fspath(preset_dir)!r}, a file"
        )
    os.makedirs(preset_dir, exist_ok=True)
    weights = os.path.join(preset_dir, WEIGHTS_FILE)
    if model.built:
        model.save_weights(weights, overwrite=True)
    elif os.path.exists(weights):
        os.remove(weights)
    with open(os.path.join(preset_dir, CONFIG_FILE), "w") as file:
        file.write(text + "\n")
    return os.fspath(preset_dir)
