"""A user-style RatingModel subclass, importable by fresh processes."""

import keras
from keras import ops

import keras_catembed


@keras.saving.register_keras_serializable(package="keras_catembed_tests")
class DotRatingModel(keras_catembed.RatingModel):
    """Adds the dot product of the first two columns to the concatenation."""

    def interact(self, embedded):
        first, second = (embedded[c] for c in self.columns[:2])
        dot = ops.sum(first * second, axis=-1, keepdims=True)
        return ops.concatenate([super().interact(embedded), dot], axis=-1)
