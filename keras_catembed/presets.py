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

from keras_catembed._preset_files import build_model
from keras_catembed._preset_files import from_preset
from keras_catembed._preset_files import get
from keras_catembed._preset_files import load
from keras_catembed._preset_files import recipe
from keras_catembed._preset_files import save_to_preset
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
]
