"""Named RatingModel configurations, each with its training recipe.

A preset is a dict with:

- a `"model"` part: keyword arguments of `keras_catembed.RatingModel`
  other than `embeddings` (`hidden_units`, `activation`, `dropout`,
  `bias_terms`, `rating_range`, `implicit`, and optionally
  `neighborhood` and `max_pairs_per_id`), plus `"embedding"`: keyword
  arguments of `keras_catembed.EntityEmbedding` other than `input_dim`
  (`output_dim`, `embeddings_initializer`, `embeddings_regularizer`,
  `dropout`, ...) for every column, and optionally `"embeddings"`: a dict
  by column name of `EntityEmbedding` arguments that replace the shared
  ones for that column;
- a `"recipe"` part: the config of a `keras_catembed.training.Recipe`
  (`optimizer`, `learning_rate`, `schedule`, `batch_size`, `epochs`,
  `ema_momentum`);
- a `"description"`, and optionally `"user_features"`: names of
  `keras_catembed.datasets.movielens.USER_FEATURES` that
  `keras_catembed.training.train` adds as columns (from
  `Ratings.user_features()`).

Use them through `RatingModel.from_preset` (which sets `model.recipe`),
`keras_catembed.training.train` and the `--preset` option of the
`catembed` command. `save_to_preset` writes a model (and its recipe) as a
preset folder: `config.json` and, for a built model, `model.weights.h5`;
`from_preset` and `catembed train --preset PATH` read such a folder.

The first version of this module described the embeddings with
`embedding_dim`, `embeddings_l2`, `entity_dropout` and
`embeddings_initializer_stddev`, and the recipe as `"training"`; such
presets still load, with a `DeprecationWarning` (`upgrade` translates
them).
"""

import collections.abc
import copy
import json
import os
import warnings

__all__ = [
    "PRESETS",
    "build_model",
    "from_preset",
    "get",
    "load",
    "recipe",
    "recommended_for",
    "save_to_preset",
    "upgrade",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
FORMAT = "keras_catembed.preset"

# `RatingModel` arguments a preset's model part may set.
MODEL_KEYS = (
    "hidden_units",
    "activation",
    "dropout",
    "bias_terms",
    "rating_range",
    "implicit",
    "neighborhood",
    "max_pairs_per_id",
)
# `EntityEmbedding` arguments a preset may set (`input_dim` comes from the
# cardinalities passed to `from_preset`).
EMBEDDING_KEYS = (
    "output_dim",
    "vocabulary",
    "num_oov_indices",
    "embeddings_initializer",
    "embeddings_regularizer",
    "embeddings_constraint",
    "dropout",
)
# The first vocabulary of the model part.
LEGACY_KEYS = (
    "embedding_dim",
    "embeddings_l2",
    "entity_dropout",
    "embeddings_initializer_stddev",
)


def _l2(value):
    """An L2 regularizer as a Keras config, or `None` for 0."""
    return {"class_name": "L2", "config": {"l2": value}} if value else None


def _normal(stddev):
    """A normal initializer as a Keras config, or `"uniform"` for `None`."""
    if stddev is None:
        return "uniform"
    return {"class_name": "RandomNormal", "config": {"stddev": stddev}}


PRESETS = {
    # The model of Kaggle's "Embeddings" course, with its training settings.
    "course": {
        "description": (
            "Kaggle 'Embeddings' course model: 8-dim embeddings, Dense 32-4-1 "
            "(ReLU), linear output, Adam 0.005, MSE."
        ),
        "model": {
            "embedding": {
                "output_dim": 8,
                "embeddings_initializer": "uniform",
                "embeddings_regularizer": None,
                "dropout": 0.0,
            },
            "hidden_units": [32, 4],
            "activation": "relu",
            "dropout": 0.0,
            "bias_terms": False,
            "rating_range": None,
            "implicit": False,
        },
        "recipe": {
            "optimizer": "adam",
            "learning_rate": 0.005,
            "schedule": "constant",
            "batch_size": 1024,
            "epochs": 5,
            "ema_momentum": None,
        },
    },
    # Measured in benchmarks/movielens_accuracy.py (docs/movielens.md).
    "mlp": {
        "description": (
            "Per-id biases, output bounded to (0.5, 5.5), 64-dim embeddings "
            "with L2 and entity dropout, one hidden layer of 128 with "
            "dropout; Adam with warm-up and cosine decay over 25 epochs at "
            "batch size 256. 'recommended' without implicit feedback, for "
            "when the model cannot be adapted to the training pairs. Tuned "
            "on ml-100k; for about a million ratings or more use "
            "'mlp-large'."
        ),
        "model": {
            "embedding": {
                "output_dim": 64,
                "embeddings_initializer": _normal(0.01),
                "embeddings_regularizer": _l2(2e-3),
                "dropout": 0.1,
            },
            "hidden_units": [128],
            "activation": "relu",
            "dropout": 0.2,
            "bias_terms": True,
            "rating_range": (0.5, 5.5),
            "implicit": False,
        },
        "recipe": {
            "optimizer": "adam",
            "learning_rate": 2e-3,
            "schedule": "cosine",
            "batch_size": 256,
            "epochs": 25,
            "ema_momentum": None,
        },
    },
}

# The same architecture for about a million ratings or more: bigger batches
# (and a higher rate) keep an epoch short, and with many more ratings per id
# the tables need a 20 times weaker L2 (chosen on a validation part carved
# from the training folds of ml-1m, which hold other folds' test ratings;
# an exploratory comparison, not produced by a committed script).
PRESETS["mlp-large"] = {
    "description": (
        "The 'mlp' architecture for about a million ratings or more: "
        "embeddings L2 1e-4, batch size 2048, Adam 4e-3 with warm-up and "
        "cosine decay over 25 epochs."
    ),
    "model": {
        **copy.deepcopy(PRESETS["mlp"]["model"]),
        "embedding": {
            **copy.deepcopy(PRESETS["mlp"]["model"]["embedding"]),
            "embeddings_regularizer": _l2(1e-4),
        },
    },
    "recipe": {
        "optimizer": "adam",
        "learning_rate": 4e-3,
        "schedule": "cosine",
        "batch_size": 2048,
        "epochs": 25,
        "ema_momentum": None,
    },
}

# The recommended presets add implicit feedback to the 'mlp' ones: each
# user is also described by the movies it rated, each movie by its raters
# (`RatingModel(implicit=True)`, adapted to the training inputs). On
# validation parts carved from the training folds this lowered RMSE by
# 0.017 on ml-100k and 0.013 on ml-1m (exploratory figures, not produced by
# a committed script; test figures in docs/movielens.md).
for _name in ("", "-large"):
    PRESETS[f"recommended{_name}"] = {
        "description": (
            f"'mlp{_name}' plus implicit feedback: users are also described "
            "by the movies they rated and movies by their raters "
            "(`implicit=True`; call `model.adapt(x_train)` before `fit`)."
        ),
        "model": {
            **copy.deepcopy(PRESETS[f"mlp{_name}"]["model"]),
            "implicit": True,
        },
        "recipe": copy.deepcopy(PRESETS[f"mlp{_name}"]["recipe"]),
    }
del _name

# The best of KerasTuner searches around the recommended presets, by
# benchmarks/tune_presets.py: BayesianOptimization, its first trial the
# preset's own values; validation: a random 10% of the first fold's
# training part (ml-100k: u1.base, which is exactly u2..u5.test; ml-1m:
# fold 1's training part, which is folds 2-5's test sets). So their test
# figures on the other four folds are optimistic; only the first fold's
# (u1: 0.8986; ml-1m fold 1: 0.8322) is clean. Results in docs/tuning.md.
PRESETS["tuned-ml-100k"] = {
    "description": (
        "Best of an 8-trial KerasTuner search on ml-100k around "
        "'recommended' (each trial the mean of 2 runs): implicit feedback, "
        "32-dim user and 64-dim movie embeddings (L2 1e-3, entity dropout "
        "0.1), one hidden layer of 128 with dropout 0.1; Adam 1.2e-3 with "
        "warm-up and cosine decay over 25 epochs at batch size 256, and a "
        "moving average of the weights (momentum 0.999)."
    ),
    "model": {
        "embedding": {
            "embeddings_initializer": _normal(0.01),
            "embeddings_regularizer": _l2(1e-3),
            "dropout": 0.1,
        },
        "embeddings": {
            "user_id": {"output_dim": 32},
            "movie_id": {"output_dim": 64},
        },
        "hidden_units": [128],
        "activation": "relu",
        "dropout": 0.1,
        "bias_terms": True,
        "rating_range": (0.5, 5.5),
        "implicit": True,
    },
    "recipe": {
        "optimizer": "adam",
        "learning_rate": 0.0011946341220482254,
        "schedule": "cosine",
        "batch_size": 256,
        "epochs": 25,
        "ema_momentum": 0.999,
    },
}

PRESETS["tuned-ml-1m"] = {
    "description": (
        "Best of a 5-trial KerasTuner search on ml-1m around "
        "'recommended-large': implicit feedback, 64-dim embeddings (L2 "
        "2.5e-5, entity dropout 0.2), one hidden layer of 256 without "
        "dropout; Adam 2e-3 with warm-up and cosine decay over 12 epochs at "
        "batch size 2048, and a moving average of the weights (momentum "
        "0.999)."
    ),
    "model": {
        "embedding": {
            "embeddings_initializer": _normal(0.01),
            "embeddings_regularizer": _l2(2.5e-5),
            "dropout": 0.2,
        },
        "embeddings": {
            "user_id": {"output_dim": 64},
            "movie_id": {"output_dim": 64},
        },
        "hidden_units": [256],
        "activation": "relu",
        "dropout": 0.0,
        "bias_terms": True,
        "rating_range": (0.5, 5.5),
        "implicit": True,
    },
    "recipe": {
        "optimizer": "adam",
        "learning_rate": 0.002,
        "schedule": "cosine",
        "batch_size": 2048,
        "epochs": 12,
        "ema_momentum": 0.999,
    },
}

# 'tuned-ml-100k' plus a rating-weighted neighbourhood for both columns
# (`RatingModel(neighborhood=True)`), added after the search: on validation
# parts carved from the training part of each of u1..u5 (a tenth of each;
# each holds ratings of the other four test folds) it lowered the mean RMSE
# from 0.8967 to 0.8948 (exploratory figures, not produced by a committed
# script); on the test folds, 0.8934 to 0.8889 (docs/tuning.md). Appending
# rather than adding the neighbourhood vectors was chosen after the added
# version's test score had been seen, so no test fold is clean for this
# preset or the next.
PRESETS["tuned-ml-100k-neighborhood"] = {
    "description": (
        "'tuned-ml-100k' plus a rating-weighted neighbourhood: users are "
        "also described by the movies they rated weighted by their "
        "ratings, and movies by their raters (`neighborhood=True`; call "
        "`model.adapt(x_train, y_train)` before `fit`)."
    ),
    "model": {
        **copy.deepcopy(PRESETS["tuned-ml-100k"]["model"]),
        "neighborhood": True,
    },
    "recipe": copy.deepcopy(PRESETS["tuned-ml-100k"]["recipe"]),
}

# 'tuned-ml-100k-neighborhood' plus what ml-100k says of its users: age
# group, gender and occupation as three more id columns (`user_features`).
# On the same five validation parts: 0.8924 (exploratory); on the test
# folds, 0.8878 (optimistic, as above).
PRESETS["tuned-ml-100k-demographics"] = {
    "description": (
        "'tuned-ml-100k-neighborhood' plus the users' age group, gender "
        "and occupation (`Ratings.user_features()` of ml-100k or ml-1m) "
        "as three more columns of 8-dim embeddings."
    ),
    "user_features": ["age", "gender", "occupation"],
    "model": {
        **copy.deepcopy(PRESETS["tuned-ml-100k-neighborhood"]["model"]),
        "embeddings": {
            "user_id": {"output_dim": 32},
            "movie_id": {"output_dim": 64},
            "age": {"output_dim": 8},
            "gender": {"output_dim": 8},
            "occupation": {"output_dim": 8},
        },
        # With five columns the pairs are named.
        "implicit": {"user_id": "movie_id", "movie_id": "user_id"},
        "neighborhood": {"user_id": "movie_id", "movie_id": "user_id"},
    },
    "recipe": copy.deepcopy(PRESETS["tuned-ml-100k"]["recipe"]),
}

LARGE = 500_000


def recommended_for(num_ratings, *, implicit=True):
    """Name of the recommended preset for a training set of this size.

    Args:
        num_ratings: Integer. Number of training ratings.
        implicit: Boolean. Whether the preset may use implicit feedback
            (the model is then adapted to the training inputs). Defaults to
            `True`; `False` gives the `"mlp"` presets.

    Returns:
        `"recommended-large"` (`"mlp-large"`) from 500,000 ratings on, else
        `"recommended"` (`"mlp"`).
    """
    base = "recommended" if implicit else "mlp"
    return f"{base}-large" if num_ratings >= LARGE else base


def get(name):
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


def _is_folder_path(preset):
    return isinstance(preset, (str, os.PathLike)) and (
        os.path.isdir(preset) or os.sep in str(preset)
    )


def load(preset):
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


def recipe(preset):
    """The `keras_catembed.training.Recipe` of a preset (name or folder)."""
    from keras_catembed.training import Recipe

    config = load(preset).get("recipe")
    return None if config is None else Recipe.from_config(config)


def upgrade(config, warn=False):
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
    legacy = isinstance(model, dict) and any(k in model for k in LEGACY_KEYS)
    if legacy:
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


def _upgrade_overrides(overrides, name):
    old = [key for key in overrides if key in _LEGACY_OVERRIDES]
    if not old:
        return {}, overrides
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


def build_model(config, embeddings, cls=None, *, name="preset", **overrides):
    """Builds the model of a preset config (`load`'s result).

    Args:
        config: A preset dict in the current vocabulary.
        embeddings: Dict mapping each column name to its cardinality.
        cls: The model class. Defaults to `keras_catembed.RatingModel`.
        name: How errors name the preset.
        **overrides: `RatingModel` arguments (`hidden_units=[64]`) or
            `EntityEmbedding` ones (`output_dim=16`), which replace the
            preset's for every column.

    Returns:
        An unbuilt, uncompiled model.
    """
    import keras

    from keras_catembed._inputs import check_columns as _check_columns
    from keras_catembed.entity_embedding import EntityEmbedding
    from keras_catembed.rating_model import RatingModel

    cls = cls or RatingModel
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
    if by_column and "output_dim" not in {**shared, **embedding_overrides}:
        missing = [column for column in columns if column not in by_column]
        if missing:
            raise ValueError(
                f"Preset {name!r} sets the embeddings per column for "
                f"{sorted(by_column)}, not for {missing}. Pass "
                "`output_dim=` (an integer or 'auto') to override it."
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


def from_preset(preset, embeddings=None, cls=None, load_weights=True, **kw):
    """Builds a preset's model; see `RatingModel.from_preset`."""
    config = load(preset)
    name = preset if isinstance(preset, (str, os.PathLike)) else "dict"
    name = os.fspath(name) if isinstance(name, os.PathLike) else name
    if embeddings is None:
        embeddings = config.get("embeddings")
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
    features = config.get("user_features") or []
    missing = [feature for feature in features if feature not in embeddings]
    if missing:
        raise ValueError(
            f"Preset {name!r} also embeds the user features "
            f"{features}: add the columns {missing} to `embeddings` "
            "(their sizes are in "
            "`keras_catembed.datasets.movielens.USER_FEATURES`)."
        )
    model = build_model(config, embeddings, cls, name=name, **kw)
    recipe_config = config.get("recipe")
    if recipe_config is not None:
        from keras_catembed.training import Recipe

        model.recipe = Recipe.from_config(recipe_config)
    weights = config.get("weights")
    if load_weights and weights is not None:
        saved = config.get("embeddings") or {}
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
    return model


def _model_part(model):
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
        if layer.vocabulary is None:
            cardinalities[column] = layer.input_dim
    part["embedding"] = {}
    part["embeddings"] = by_column
    return part, cardinalities


def save_to_preset(model, preset_dir, recipe=None, *, description=None):
    """Writes `model` (and its recipe) as a preset folder.

    The folder holds `config.json` (the model part as `RatingModel` and
    `EntityEmbedding` arguments, the recipe's config, the cardinalities,
    the description) and, for a built model, `model.weights.h5`. Read it
    with `RatingModel.from_preset(preset_dir)` or `catembed train --preset
    preset_dir`, as in keras-hub's `save_to_preset` / `from_preset`.

    Args:
        model: A `keras_catembed.RatingModel`.
        preset_dir: Folder to write (created if missing; its
            `config.json` and `model.weights.h5` are replaced).
        recipe: Optional `keras_catembed.training.Recipe` (or its config).
            Defaults to `model.recipe` where set (`from_preset` and
            `training.train` set it).
        description: Optional string.

    Returns:
        The folder's path.
    """
    from keras_catembed.rating_model import RatingModel
    from keras_catembed.training import Recipe

    if not isinstance(model, RatingModel):
        raise ValueError(
            "`save_to_preset` writes a RatingModel. Received: "
            f"{type(model).__name__}"
        )
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
    text = json.dumps(config, indent=2)  # Fails before anything is written.
    os.makedirs(preset_dir, exist_ok=True)
    weights = os.path.join(preset_dir, WEIGHTS_FILE)
    if model.built:
        model.save_weights(weights, overwrite=True)
    elif os.path.exists(weights):
        os.remove(weights)
    with open(os.path.join(preset_dir, CONFIG_FILE), "w") as file:
        file.write(text + "\n")
    return os.fspath(preset_dir)
