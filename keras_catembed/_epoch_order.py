"""Batches of in-memory arrays in a new order every epoch (private).

Keras's own shuffle of arrays on TensorFlow draws its order inside a
`tf.data` pipeline whose seed is fixed once `keras.utils.set_random_seed`
has run, so every epoch of a seeded `fit` repeats the first epoch's
order. `ShuffledBatches` draws each epoch's order from NumPy's global
generator instead (which `set_random_seed` seeds too): seeded runs repeat
exactly and epochs still differ. `ItemAutoencoder.fit` trains on it, and
`RatingModel.fit`'s stock loop on TensorFlow feeds its arrays through it
(`stock_fit_data`).
"""

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np


class ShuffledBatches(keras.utils.PyDataset):
    """Batches of rows of `arrays` (any structure of equally long arrays).

    With `shuffle`, each epoch draws a new order of the rows from a
    generator seeded once from NumPy's global one; otherwise the rows
    keep their order. A batch is `arrays` with each leaf indexed by the
    batch's rows.
    """

    def __init__(self, arrays: Any, batch_size: int, shuffle: bool) -> None:
        super().__init__()
        self.arrays, self.batch_size, self.shuffle = arrays, batch_size, shuffle
        self.count = len(keras.tree.flatten(arrays)[0])
        # The global generator, seeded by keras.utils.set_random_seed.
        seed = int(np.random.randint(2**31))  # noqa: NPY002
        self.generator = np.random.default_rng(seed)
        self.order = self._draw()

    def _draw(self) -> np.ndarray:
        if self.shuffle:
            return self.generator.permutation(self.count)
        return np.arange(self.count)

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        start = index * self.batch_size
        rows = self.order[start : start + self.batch_size]
        return keras.tree.map_structure(lambda a: a[rows], self.arrays)

    def on_epoch_end(self) -> None:
        self.order = self._draw()


def stock_fit_data(
    model: Any, x: Any, y: Any, options: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """`x`, `y` and the options of Keras's `fit` on arrays, reordered.

    On TensorFlow, a shuffled `fit` (`shuffle=True`) of NumPy arrays (a
    dict of id arrays, ratings and optional sample weights; lists become
    arrays) gets a `ShuffledBatches` in their place, so that each epoch
    has its own order. `validation_split` takes the last rows, as Keras
    does, with Keras's check; floats are cast to `keras.config.floatx()`,
    as Keras casts arrays. Calls with `steps_per_epoch` (whose passes
    span epochs), under a `tf.distribute` strategy, or with other inputs
    are returned unchanged.
    """
    weights = options.get("sample_weight")
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if isinstance(weights, (list, tuple)):
        weights = np.asarray(weights)
    if not (
        keras.backend.backend() == "tensorflow"
        and options.get("shuffle") is True
        and options.get("steps_per_epoch") is None
        and isinstance(x, Mapping)
        and all(isinstance(v, np.ndarray) for v in x.values())
        and isinstance(y, np.ndarray)
        and (weights is None or isinstance(weights, np.ndarray))
        and not _distributed(model)
    ):
        return x, y, options
    options = dict(options)
    arrays: Any = (dict(x), _floatx(y))
    if weights is not None:
        arrays = (*arrays, _floatx(weights))
    split = options.pop("validation_split", 0.0) or 0.0
    if split and options.get("validation_data") is None:
        # As Keras splits arrays: the last rows, before any shuffle.
        count = len(y)
        cut = int(math.floor(count * (1.0 - split)))
        if cut in (0, count):
            raise ValueError(
                f"Training data contains {count} samples, which is not "
                "sufficient to split it into a validation and training set "
                f"as specified by `validation_split={split}`. Either "
                "provide more data, or a different value for the "
                "`validation_split` argument."
            )
        options["validation_data"] = keras.tree.map_structure(
            lambda a: a[cut:], arrays
        )
        arrays = keras.tree.map_structure(lambda a: a[:cut], arrays)
    batch_size = options.pop("batch_size", None)
    # Keras validates in batches of `batch_size` unless told otherwise.
    options["validation_batch_size"] = (
        options.get("validation_batch_size") or batch_size
    )
    options.pop("sample_weight", None)
    options["shuffle"] = False
    return ShuffledBatches(arrays, batch_size or 32, True), None, options


def _floatx(values: np.ndarray) -> np.ndarray:
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(keras.config.floatx(), copy=False)
    return values


def _distributed(model: Any) -> bool:
    import tensorflow as tf

    return bool(
        tf.distribute.has_strategy()
        or getattr(model, "_distribute_strategy", None)
    )
