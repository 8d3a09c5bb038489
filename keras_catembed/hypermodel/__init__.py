"""The `RatingHyperModel`: a KerasTuner search space over `RatingModel`s.

This package needs KerasTuner, the optional `[tuner]` extra:
`pip install "keras-catembed[tuner]"`.

Modules: `_hyperparameters` holds the table of hyperparameters
(`HYPERPARAMETERS`), from which `_space` derives the search space, the
names and the checks, and `_docs` the documentation; `_recipe` turns the
training hyperparameters into a `keras_catembed.training.Recipe`, which
compiles and fits a trial; `_tuner` imports KerasTuner (or says how to
install it), and `_hyper_model` is the `RatingHyperModel` class.
"""

from keras_catembed.hypermodel._hyper_model import OBJECTIVE_METRICS
from keras_catembed.hypermodel._hyper_model import RatingHyperModel
from keras_catembed.hypermodel._hyperparameter import Hyperparameter
from keras_catembed.hypermodel._hyperparameters import ACTIVATION_CHOICES
from keras_catembed.hypermodel._hyperparameters import BATCH_SIZE_CHOICES
from keras_catembed.hypermodel._hyperparameters import EMA_MOMENTUM_CHOICES
from keras_catembed.hypermodel._hyperparameters import EMBEDDINGS_INITIALIZERS
from keras_catembed.hypermodel._hyperparameters import EMBEDDINGS_L2_CHOICES
from keras_catembed.hypermodel._hyperparameters import HIDDEN_UNITS_CHOICES
from keras_catembed.hypermodel._hyperparameters import HIDDEN_UNITS_DEFAULTS
from keras_catembed.hypermodel._hyperparameters import HYPERPARAMETERS
from keras_catembed.hypermodel._hyperparameters import MAX_HIDDEN_LAYERS
from keras_catembed.hypermodel._hyperparameters import OPTIMIZER_CHOICES
from keras_catembed.hypermodel._hyperparameters import OUTPUT_DIM_FACTORS
from keras_catembed.hypermodel._hyperparameters import SCHEDULES
from keras_catembed.hypermodel._hyperparameters import output_dim_choices
from keras_catembed.hypermodel._tuner import keras_tuner
from keras_catembed.training import OPTIMIZERS

__all__ = [
    "OBJECTIVE_METRICS",
    "RatingHyperModel",
    "Hyperparameter",
    "ACTIVATION_CHOICES",
    "BATCH_SIZE_CHOICES",
    "EMA_MOMENTUM_CHOICES",
    "EMBEDDINGS_INITIALIZERS",
    "EMBEDDINGS_L2_CHOICES",
    "HIDDEN_UNITS_CHOICES",
    "HIDDEN_UNITS_DEFAULTS",
    "HYPERPARAMETERS",
    "MAX_HIDDEN_LAYERS",
    "OPTIMIZER_CHOICES",
    "OUTPUT_DIM_FACTORS",
    "SCHEDULES",
    "output_dim_choices",
    "OPTIMIZERS",
    "keras_tuner",
]
