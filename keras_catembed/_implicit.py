"""Implicit feedback: an entity described by the ids it co-occurs with."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_catembed")
class ImplicitFeedback(keras.layers.Layer):
    """Sums learned vectors of the source ids each target id was seen with.

    For target row `t` with the set `N(t)` of source rows it occurs with in
    the adapted data, the output is `|N(t)| ** -0.5 * sum(y[s] for s in
    N(t))`, where `y` is a learned `(num_sources, output_dim)` table: the
    implicit-feedback term of SVD++ (Koren, 2008). A target row with no
    pairs gets zeros.

    The pairs are data, not weights: they are set by `adapt`, saved with
    the model (`save_own_variables`) and held as constant tensors, so
    compiled functions must be rebuilt after `adapt` (`RatingModel.adapt`
    does this).

    `RatingModel` creates these layers from its `implicit` argument.
    """

    def __init__(
        self,
        num_targets,
        num_sources,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_targets = int(num_targets)
        self.num_sources = int(num_sources)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
        )
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )
        self._pairs = None
        self._tensors = None

    @property
    def adapted(self):
        """Whether the layer holds pairs (from `adapt` or a saved model)."""
        return self._pairs is not None

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            shape=(self.num_sources, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            name="embeddings",
        )

    def adapt(self, target_rows, source_rows):
        """Records the distinct `(target, source)` row pairs.

        Args:
            target_rows: Integer array of rows in `[0, num_targets)`.
            source_rows: Integer array of the same length, in
                `[0, num_sources)`.
        """
        targets = np.asarray(target_rows, dtype="int64").reshape(-1)
        sources = np.asarray(source_rows, dtype="int64").reshape(-1)
        if targets.shape != sources.shape:
            raise ValueError(
                f"{self.name}: expected as many target rows as source rows. "
                f"Received {targets.size} and {sources.size}"
            )
        for name, rows, size in (
            ("target", targets, self.num_targets),
            ("source", sources, self.num_sources),
        ):
            bad = (rows < 0) | (rows >= size)
            if bad.any():
                raise ValueError(
                    f"{self.name}: {name} row {int(rows[bad][0])} is outside "
                    f"[0, {size - 1}]"
                )
        pairs = np.unique(targets * self.num_sources + sources)
        targets = (pairs // self.num_sources).astype("int32")
        sources = (pairs % self.num_sources).astype("int32")
        counts = np.bincount(targets, minlength=self.num_targets)
        weights = 1.0 / np.sqrt(np.maximum(counts, 1)).astype("float32")
        self._set_pairs(targets, sources, weights[targets])

    def _set_pairs(self, targets, sources, weights):
        self._pairs = (
            np.asarray(targets, dtype="int32"),
            np.asarray(sources, dtype="int32"),
            np.asarray(weights, dtype="float32"),
        )
        # Converted here, eagerly, so that compiled functions capture them.
        self._tensors = tuple(
            ops.convert_to_tensor(array) for array in self._pairs
        )

    def call(self, rows):
        if self._pairs is None:
            raise ValueError(
                f"{self.name} holds no pairs yet: call `adapt` on the "
                "model with the training inputs before training or "
                "predicting (e.g. `model.adapt(x_train)`)."
            )
        targets, sources, weights = self._tensors
        vectors = ops.take(self.embeddings, sources, axis=0)
        weights = ops.cast(weights, vectors.dtype)
        sums = ops.segment_sum(
            vectors * ops.expand_dims(weights, -1),
            targets,
            num_segments=self.num_targets,
        )
        return ops.take(sums, rows, axis=0)

    def compute_output_spec(self, rows):
        return keras.KerasTensor(
            tuple(rows.shape) + (self.output_dim,), dtype=self.compute_dtype
        )

    def save_own_variables(self, store):
        store["0"] = self.embeddings
        if self._pairs is not None:
            for name, array in zip(
                ("targets", "sources", "weights"), self._pairs, strict=True
            ):
                store[name] = array

    def load_own_variables(self, store):
        self.embeddings.assign(store["0"])
        keys = set(store.keys())
        if {"targets", "sources", "weights"} <= keys:
            self._set_pairs(
                np.asarray(store["targets"]),
                np.asarray(store["sources"]),
                np.asarray(store["weights"]),
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_targets": self.num_targets,
                "num_sources": self.num_sources,
                "output_dim": self.output_dim,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "embeddings_regularizer": keras.regularizers.serialize(
                    self.embeddings_regularizer
                ),
            }
        )
        return config
