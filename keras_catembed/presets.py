"""Named RatingModel configurations, each with its training recipe.

A preset is a dict with:

- a `"model"` part: keyword arguments of `keras_catembed.RatingModel`
  other than `embeddings` (`hidden_units`, `activation`, `dropout`,
  `bias_terms`, `rating_range`, `implicit`, and optionally
  `neighborhood`, `max_pairs_per_id`, `pairs_per_step` and
  `pair_dtype`), plus `"embedding"`: keyword
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
  `Ratings.user_features()`), and `"time_columns"`: names of
  `keras_catembed.datasets.movielens.TIME_COLUMNS` (`"user_day"`, from
  `Ratings.user_day()`) that it adds likewise.

Use them through `RatingModel.from_preset` (which sets `model.recipe`),
`keras_catembed.training.train` and the `--preset` option of the
`catembed` command. `save_to_preset` writes a model (and its recipe) as a
preset folder: `config.json` and, for a built model, `model.weights.h5`;
`from_preset` and `catembed train --preset PATH` read such a folder.
`with_columns` adds user features or time columns to a preset.

The first version of this module described the embeddings with
`embedding_dim`, `embeddings_l2`, `entity_dropout` and
`embeddings_initializer_stddev`, and the recipe as `"training"`; such
presets still load, with a `DeprecationWarning` (`upgrade` translates
them).
"""

import os
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from keras_catembed import _preset_columns
from keras_catembed import _preset_files
from keras_catembed._preset_files import get
from keras_catembed._preset_files import load
from keras_catembed._preset_files import recipe
from keras_catembed._preset_legacy import upgrade
from keras_catembed._preset_table import CONFIG_FILE
from keras_catembed._preset_table import EMBEDDING_KEYS
from keras_catembed._preset_table import FORMAT
from keras_catembed._preset_table import LARGE
from keras_catembed._preset_table import LEGACY_KEYS
from keras_catembed._preset_table import MODEL_KEYS
from keras_catembed._preset_table import PRESETS
from keras_catembed._preset_table import WEIGHTS_FILE
from keras_catembed._preset_table import recommended_for
from keras_catembed._recipe import Recipe
from keras_catembed.rating_model import RatingModel

__all__ = [
    "CONFIG_FILE",
    "EMBEDDING_KEYS",
    "FORMAT",
    "LARGE",
    "LEGACY_KEYS",
    "MODEL_KEYS",
    "PRESETS",
    "WEIGHTS_FILE",
    "build_model",
    "from_preset",
    "get",
    "load",
    "recipe",
    "recommended_for",
    "save_to_preset",
    "upgrade",
    "with_columns",
]


def build_model(
    config: Mapping[str, Any],
    embeddings: Mapping[str, Any],
    cls: Any = None,
    *,
    name: str = "preset",
    **overrides: Any,
) -> Any:
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
    return _preset_files.build_model(
        config, embeddings, cls or RatingModel, name=name, **overrides
    )


def from_preset(
    preset: str | os.PathLike[str] | Mapping[str, Any],
    embeddings: Mapping[str, Any] | None = None,
    cls: Any = None,
    load_weights: bool = True,
    **overrides: Any,
) -> Any:
    """Builds a preset's model; see `RatingModel.from_preset`."""
    return _preset_files.from_preset(
        preset, embeddings, cls or RatingModel, load_weights, **overrides
    )


def save_to_preset(
    model: Any,
    preset_dir: str | os.PathLike[str],
    recipe: Recipe | Mapping[str, Any] | None = None,
    *,
    description: str | None = None,
) -> str:
    """Writes `model` (and its recipe) as a preset folder.

    The folder holds `config.json` (the model part as `RatingModel` and
    `EntityEmbedding` arguments, its dtype policy when not float32, the
    recipe's config, every column's number of ids, the description) and,
    for a built model, `model.weights.h5` with what `model.save` keeps of
    its training: the fingerprint of the rows it was trained on (so that
    `evaluate` still warns about overlap) and its `data_source`. Read it
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
    if not isinstance(model, RatingModel):
        raise ValueError(
            "`save_to_preset` writes a RatingModel. Received: "
            f"{type(model).__name__}"
        )
    return _preset_files.save_to_preset(
        model, preset_dir, recipe, description=description
    )


def with_columns(
    preset: str | os.PathLike[str] | Mapping[str, Any],
    columns: Iterable[str],
    *,
    output_dim: int = 8,
) -> dict[str, Any]:
    """A preset dict that also embeds some MovieLens columns.

    Each column is added to the preset's `"user_features"` (a name of
    `keras_catembed.datasets.movielens.USER_FEATURES`) or `"time_columns"`
    (a name of `movielens.TIME_COLUMNS`) with an `output_dim`-dim
    embedding of its own; the preset's other columns keep their settings.
    With more than two columns a model names its implicit-feedback and
    neighbourhood pairs, so `implicit=True` (`neighborhood=True`) becomes
    `{"user_id": "movie_id", "movie_id": "user_id"}`: the same
    aggregations as before. `keras_catembed.training.train` sizes the new
    columns from the ratings; `catembed train --add-columns` calls this.

    Args:
        preset: A name in `PRESETS`, a preset folder (its settings; not its
            weights) or a preset dict.
        columns: Names of user features or time columns (a string for
            one).
        output_dim: Positive integer. The embedding size of each added
            column. Defaults to `8`.

    Returns:
        A new preset dict; `preset` is not changed.

    Raises:
        ValueError: for no columns or one that is neither a user feature
            nor a time column, naming it and the known ones.

    Example:

    ```python
    config = presets.with_columns("recommended", ["user_day"])
    model, history = keras_catembed.training.train(train, config)
    ```
    """
    return _preset_columns.with_columns(preset, columns, output_dim=output_dim)
