"""Streamed ids checked before a backend narrows them to 32 bits.

JAX keeps 32-bit integers unless `jax_enable_x64` is set: Keras converts
each batch of a generator, a `keras.utils.PyDataset` or a `tf.data`
dataset to int32 before the model sees it, so an int64 id beyond the
int32 range would reach the layers wrapped around (`2**32 + 3` as 3), a
valid row and a silently wrong rating. Arrays are checked whole before a
loop (`_inputs.check_x`); a stream is wrapped here so that each batch's
ids are checked on the host as Keras reads it, before that conversion.
Every other check of a streamed id (unknown, fractional) runs in the
graph, as on the other backends.
"""

import collections.abc
import sys
import types
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_catembed import _checks

EXPECTED = "ids in the int32 range"


def narrows_ids() -> bool:
    """Whether the backend reads int64 ids as int32 (JAX without x64)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return not jax.config.read("jax_enable_x64")


class _Check:
    """Checks the ids of one batch; plain data, so workers can pickle it.

    `where` maps each column to the name its layer gives in errors.
    """

    def __init__(self, where: dict[str, str]) -> None:
        self.where = where

    def __call__(self, batch: Any) -> Any:
        x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
        if isinstance(x, collections.abc.Mapping):
            for column, where in self.where.items():
                if column in x:
                    _check_range(where, x[column])
        return batch


def _check_range(where: str, ids: Any) -> None:
    """Raises for the first integer id outside the int32 range.

    Float ids are left to the graph's checks, as on the other backends.
    """
    values = np.asarray(keras.ops.convert_to_numpy(ids))
    if values.dtype.kind in "iu" and values.dtype.itemsize >= 4:
        _checks.check_int32_range(where, values)


class _CheckedPyDataset(keras.utils.PyDataset):  # type: ignore[misc]
    """A `PyDataset` whose batches pass `check`; otherwise the same."""

    def __init__(self, dataset: Any, check: _Check) -> None:
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset = dataset
        self.check = check

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def num_batches(self) -> int | None:
        batches: int | None = self.dataset.num_batches
        return batches

    def __getitem__(self, index: int) -> Any:
        return self.check(self.dataset[index])

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()


def _checked_generator(generator: Iterator[Any], check: _Check) -> Any:
    for batch in generator:
        yield check(batch)


def _tf_checked(dataset: Any, check: _Check) -> Any:
    """`dataset` with an assertion on each batch's int64 ids (in tf.data)."""
    import tensorflow as tf

    def checked(*element: Any) -> Any:
        x = element[0]
        if isinstance(x, collections.abc.Mapping):
            assertions = [
                _tf_assert(tf, where, x[column])
                for column, where in check.where.items()
                if column in x and x[column].dtype in (tf.int64, tf.uint64)
            ]
            with tf.control_dependencies(assertions):
                x = {key: tf.identity(value) for key, value in x.items()}
        return (x, *element[1:]) if len(element) > 1 else x

    return dataset.map(checked)


def _tf_assert(tf: Any, where: str, ids: Any) -> Any:
    flat = tf.reshape(ids, [-1])
    if flat.dtype == tf.uint64:
        outside = flat > tf.constant(_checks.INT32_MAX, tf.uint64)
    else:
        outside = (flat < _checks.INT32_MIN) | (flat > _checks.INT32_MAX)
    first = tf.argmax(tf.cast(outside, tf.int32), output_type=tf.int64)
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(outside)),
        [
            f"{where} received the unknown id",
            tf.gather(flat, first),
            "at position",
            first,
            f"of its batch. Expected {EXPECTED}.",
        ],
    )


def checked(model: Any, data: Any) -> Any:
    """`data`, a stream's batches checked as they are read where needed.

    On a backend that narrows ids (`narrows_ids`), a generator, a
    `PyDataset` or a `tf.data.Dataset` is wrapped so that an int64 id
    beyond the int32 range raises, naming its column, the id and its
    position, instead of being read as another id. Anything else (arrays,
    tuples of arrays, other backends) is returned as it is.
    """
    if data is None or isinstance(data, (tuple, list)) or not narrows_ids():
        return data
    layers = model.embedding_layers
    check = _Check({column: layers[column]._where for column in model.columns})
    if isinstance(data, types.GeneratorType):
        return _checked_generator(data, check)
    if isinstance(data, keras.utils.PyDataset):
        return _CheckedPyDataset(data, check)
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(data, tf.data.Dataset):
        return _tf_checked(data, check)
    return data
