"""Streamed ids checked before a backend narrows them to 32 bits.

JAX keeps 32-bit integers unless `jax_enable_x64` is set: Keras converts
each batch of a generator, a `keras.utils.PyDataset` or a `tf.data`
dataset to int32 before the model sees it, so an int64 id beyond the
int32 range would reach the layers wrapped around (`2**32 + 3` as 3), a
valid row and a silently wrong rating. Arrays are checked whole before a
loop (`_inputs.check_x`); a stream is wrapped here so that each batch's
ids are checked on the host as Keras reads it, before that conversion.
Every other check of a streamed id (unknown, fractional) runs in the
graph, as on the other backends, except under a `keras.distribution`:
there a step failing on one device would leave the others waiting in
its reductions until XLA ends the process, so each batch's ids are
checked whole on the host, as arrays are.
"""

import collections.abc
import functools
import sys
import types
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_catembed import _checks
from keras_catembed import _ids


def narrows_ids() -> bool:
    """Whether the backend reads int64 ids as int32 (JAX without x64)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return not jax.config.read("jax_enable_x64")


class _Check:
    """Checks the ids of one batch; plain data, so workers can pickle it.

    `rules` maps each column to its layer's `_ids.IdRule`. With `whole`,
    every id is checked as `EntityEmbedding.check_ids` does; otherwise
    only that integer ids fit in int32.
    """

    def __init__(self, rules: dict[str, _ids.IdRule], whole: bool) -> None:
        self.rules = rules
        self.whole = whole

    def __call__(self, batch: Any) -> Any:
        x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
        if isinstance(x, collections.abc.Mapping):
            for column in self.rules:
                if column in x:
                    self.column(column, x[column])
        return batch

    def column(self, column: str, ids: Any) -> None:
        rule = self.rules[column]
        if self.whole:
            rule.check(ids)
            return
        values = np.asarray(keras.ops.convert_to_numpy(ids))
        # Float ids are left to the graph's checks, as on other backends.
        if values.dtype.kind in "iu" and values.dtype.itemsize >= 4:
            _checks.check_int32_range(rule.where, values)

    def needs(self, dtype: Any) -> bool:
        """Whether ids of `dtype` (a `tf.DType`) are checked at all."""
        return self.whole or dtype.name in ("int64", "uint32", "uint64")


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
    """`dataset`, each batch's ids checked in its pipeline.

    The check runs in NumPy (`tf.numpy_function`), so its error carries
    the same words as on the other streams, in an `InvalidArgumentError`.
    """
    import tensorflow as tf

    def checked(*element: Any) -> Any:
        x = element[0]
        if isinstance(x, collections.abc.Mapping):
            x = dict(x)
            for column in check.rules:
                if column in x and check.needs(x[column].dtype):
                    # The ids pass through the check, so no optimization
                    # of the pipeline can drop it.
                    ids = tf.numpy_function(
                        functools.partial(_checked_column, check, column),
                        [x[column]],
                        x[column].dtype,
                    )
                    ids.set_shape(x[column].shape)
                    x[column] = ids
        return (x, *element[1:]) if len(element) > 1 else x

    return dataset.map(checked)


def _checked_column(check: _Check, column: str, ids: np.ndarray) -> np.ndarray:
    check.column(column, ids)
    return ids


def checked(model: Any, data: Any) -> Any:
    """`data`, a stream's batches checked as they are read where needed.

    On a backend that narrows ids (`narrows_ids`), a generator, a
    `PyDataset` or a `tf.data.Dataset` is wrapped so that an int64 id
    beyond the int32 range raises, naming its column, the id and its
    position, instead of being read as another id. On JAX under a
    `keras.distribution`, every id is checked so. Anything else (arrays,
    tuples of arrays, other backends) is returned as it is.
    """
    if data is None or isinstance(data, (tuple, list)):
        return data
    whole = (
        keras.backend.backend() == "jax"
        and keras.distribution.distribution() is not None
    )
    if not (whole or narrows_ids()):
        return data
    layers = model.embedding_layers
    check = _Check(
        {column: _ids.IdRule.of(layers[column]) for column in model.columns},
        whole,
    )
    if isinstance(data, types.GeneratorType):
        return _checked_generator(data, check)
    if isinstance(data, keras.utils.PyDataset):
        return _CheckedPyDataset(data, check)
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(data, tf.data.Dataset):
        return _tf_checked(data, check)
    return data
