"""Training of `ItemAutoencoder` on batches of items (private).

`ItemAutoencoder.fit` trains an `ItemBatchModel` (the autoencoder's own
layers, items' rating vectors in, every user's rating out) on
`ItemBatches`, with `RowValidation` scoring (user, item) rows after
each epoch.
"""

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import _epoch_order

# Rows per batch when the autoencoder scores (user, item) rows itself: a
# batch of at least half as many rows as items encodes every item once,
# so few large batches do the least work.
ROWS_PER_BATCH = 65536


def masked_squared_error(y_true: Any, y_pred: Any) -> Any:
    """Squared error summed over the rated entries (non-zero `y_true`)."""
    rated = ops.cast(ops.not_equal(y_true, 0.0), y_pred.dtype)
    return ops.sum(rated * ops.square(y_true - y_pred), axis=-1)


class ItemBatchModel(keras.Model):
    """Items' rating vectors in, every user's rating of them out."""

    def __init__(self, owner: Any) -> None:
        super().__init__(name=f"{owner.name}_items")
        self.owner_encoder = owner.encoder
        self.owner_vectors = owner.user_vectors
        self.owner_bias = owner.user_bias
        self.__dict__["_decode"] = owner._decode_all
        self.__dict__["_owner"] = owner
        self.built = True

    def call(self, ratings: Any) -> Any:
        return self._decode(self.owner_encoder(ratings))

    def save(self, *args: Any, **kwargs: Any) -> Any:
        # Callbacks such as ModelCheckpoint save the model they train:
        # the autoencoder itself.
        return self._owner.save(*args, **kwargs)

    def save_weights(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner.save_weights(*args, **kwargs)


class ItemBatches(_epoch_order.ShuffledBatches):
    """Batches of items' rating vectors, as inputs and as targets.

    With `shuffle`, each epoch draws a new order of the items (see
    `_epoch_order`: Keras's own shuffle of arrays on TensorFlow repeats
    one order every epoch once a seed is set).
    """

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = super().__getitem__(index)
        return rows, rows


class RowValidation(keras.callbacks.Callback):
    """Evaluates the row model on validation rows after each epoch."""

    def __init__(self, owner: Any, data: tuple[Any, Any]) -> None:
        super().__init__()
        self.owner, self.data = owner, data

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        scores = self.owner.evaluate(
            *self.data, batch_size=ROWS_PER_BATCH, verbose=0, return_dict=True
        )
        if logs is not None:
            logs.update({f"val_{key}": value for key, value in scores.items()})
