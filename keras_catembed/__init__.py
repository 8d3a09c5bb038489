"""Entity embeddings for categorical ids in Keras 3."""

from keras_catembed import datasets
from keras_catembed import distribution
from keras_catembed import evaluation
from keras_catembed import explore
from keras_catembed import optimizers
from keras_catembed import presets
from keras_catembed import training
from keras_catembed.autoencoder import ItemAutoencoder
from keras_catembed.column_encoder import ColumnEncoder
from keras_catembed.dot_model import DotRatingModel
from keras_catembed.ensemble import RatingEnsemble
from keras_catembed.entity_embedding import EntityEmbedding
from keras_catembed.rating_model import RatingModel

__version__ = "0.1.0"

# RatingHyperModel is left out of __all__: it needs the optional
# keras-tuner, and `from keras_catembed import *` must work without it.
__all__ = [
    "ColumnEncoder",
    "DotRatingModel",
    "EntityEmbedding",
    "ItemAutoencoder",
    "RatingEnsemble",
    "RatingModel",
    "datasets",
    "distribution",
    "evaluation",
    "explore",
    "optimizers",
    "presets",
    "training",
    "__version__",
]


def __getattr__(name: str) -> type:
    # RatingHyperModel needs the optional keras-tuner: import it on use.
    if name == "RatingHyperModel":
        from keras_catembed.hypermodel import RatingHyperModel

        return RatingHyperModel
    raise AttributeError(f"module 'keras_catembed' has no attribute {name!r}")
