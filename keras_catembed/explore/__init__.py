"""Look inside learned embeddings: neighbours, 2-D maps, TensorBoard export.

Every function takes a trained model and a column name. For a
`keras_catembed.RatingModel` the column is a key of its `embeddings`; for
any other Keras model it is the name of an `EntityEmbedding` or
`keras.layers.Embedding` layer. Out-of-vocabulary rows are left out: row
`i` of the returned matrix is the vector of id index `i`.
"""

from keras_catembed.explore.maps import _place_labels  # noqa: F401
from keras_catembed.explore.maps import plot_map
from keras_catembed.explore.neighbours import METRICS
from keras_catembed.explore.neighbours import nearest
from keras_catembed.explore.projector import to_projector
from keras_catembed.explore.vectors import embedding_matrix

__all__ = ["embedding_matrix", "nearest", "plot_map", "to_projector"]
