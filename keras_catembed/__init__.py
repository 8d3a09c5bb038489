"""Entity embeddings for categorical ids in Keras 3."""

from keras_catembed.entity_embedding import EntityEmbedding
from keras_catembed.rating_model import RatingModel

__version__ = "0.1.0"

__all__ = ["EntityEmbedding", "RatingModel", "__version__"]
