"""Implicit feedback: an entity described by the ids it co-occurs with."""

import keras
import numpy as np
from keras import ops

# Largest `num_targets * num_sources` held as a dense matrix (256 MB).
DENSE_LIMIT = 2**26


@keras.saving.register_keras_serializable(package="keras_catembed")
class ImplicitFeedback(keras.layers.Layer):
    """Sums learned vectors of the source ids each target id was seen with.

    For target row `t` with the set `N(t)` of source rows it occurs with in
    the adapted data, the output is `|N(t)| ** -0.5 * sum(y[s] for s in
    N(t))`, where `y` is a learned `(num_sources, output_dim)` table: the
    implicit-feedback term of SVD++ (Koren, 2008). A target row with no
    pairs gets zeros.

    The pairs are set by `adapt` and saved with the model. Two layouts:

    - dense (when `num_targets * num_sources <= DENSE_LIMIT`): a
      non-trainable `(num_targets, num_sources)` weight matrix, and the
      output is a batch of its rows times the table. At ml-1m's size a
      step was 3.7x (JAX) to 18x (torch) faster than with the sparse
      layout on 2 CPU cores (`benchmarks/implicit_layouts.py`).
    - sparse: the pairs as constant tensors, summed with `segment_sum`
      over every pair at each step (memory grows with the pairs, not with
      the product of the cardinalities). Compiled functions capture them,
      so they must be rebuilt after `adapt` (`RatingModel.adapt` does
      this).

    With `rated=True` the pairs carry ratings: the matrix entry of
    `(t, s)` is `(r[t, s] - mean) * |N(t)| ** -0.5`, where `mean` is the
    mean of the adapted ratings, so the output is a rating-weighted sum (the
    neighbourhood term of Koren's integrated model). The pair of the row
    being predicted is then left out of its own sum (`call` takes the
    source row of each input row), so a training rating never describes
    its own target; a pair absent from the adapted data has no entry, so
    at prediction time nothing is left out. Rated layers need the dense
    layout.

    `RatingModel` creates these layers from its `implicit` and
    `neighborhood` arguments.
    """

    def __init__(
        self,
        num_targets,
        num_sources,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        dense=None,
        rated=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rated = bool(rated)
        self.num_targets = int(num_targets)
        self.num_sources = int(num_sources)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
        )
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )
        if dense is None:
            dense = self.num_targets * self.num_sources <= DENSE_LIMIT
        self.dense = bool(dense)
        if self.rated and not self.dense:
            raise ValueError(
                f"{self.name}: rated pairs need the dense layout, at most "
                f"{DENSE_LIMIT} = num_targets * num_sources. Received "
                f"{self.num_targets} * {self.num_sources} = "
                f"{self.num_targets * self.num_sources}"
            )
        self._adapted = False
        self._pairs = None
        self._tensors = None

    @property
    def adapted(self):
        """Whether the layer holds pairs (from `adapt` or a saved model)."""
        return self._adapted

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            shape=(self.num_sources, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            name="embeddings",
        )
        if self.dense:
            self.pair_weights = self.add_weight(
                shape=(self.num_targets, self.num_sources),
                initializer="zeros",
                trainable=False,
                name="pair_weights",
            )

    def adapt(self, target_rows, source_rows, ratings=None):
        """Records the distinct `(target, source)` row pairs.

        Args:
            target_rows: Integer array of rows in `[0, num_targets)`.
            source_rows: Integer array of the same length, in
                `[0, num_sources)`.
            ratings: Float array of the same length: the rating of each
                pair (averaged over repeated pairs). Required when `rated`,
                ignored otherwise.
        """
        targets = np.asarray(target_rows, dtype="int64").reshape(-1)
        sources = np.asarray(source_rows, dtype="int64").reshape(-1)
        if targets.shape != sources.shape:
            raise ValueError(
                f"{self.name}: expected as many target rows as source rows. "
                f"Received {targets.size} and {sources.size}"
            )
        if self.rated:
            if ratings is None:
                raise ValueError(
                    f"{self.name} weighs pairs by their ratings: pass the "
                    "ratings to `adapt`."
                )
            ratings = np.asarray(ratings, dtype="float64").reshape(-1)
            if ratings.shape != targets.shape:
                raise ValueError(
                    f"{self.name}: expected one rating per pair. Received "
                    f"{ratings.size} ratings for {targets.size} pairs"
                )
            if not np.all(np.isfinite(ratings)):
                bad = int(np.flatnonzero(~np.isfinite(ratings))[0])
                raise ValueError(
                    f"{self.name}: rating {ratings[bad]} at row {bad} is not "
                    "finite. Expected finite ratings."
                )
        if targets.size == 0:
            raise ValueError(f"{self.name}: `adapt` received no rows")
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
        pairs, where = np.unique(
            targets * self.num_sources + sources, return_inverse=True
        )
        if self.rated:
            # The mean rating of each pair, centred on the mean rating.
            centred = np.bincount(
                where, weights=ratings - ratings.mean(), minlength=pairs.size
            ) / np.bincount(where, minlength=pairs.size)
        targets = (pairs // self.num_sources).astype("int32")
        sources = (pairs % self.num_sources).astype("int32")
        counts = np.bincount(targets, minlength=self.num_targets)
        weights = 1.0 / np.sqrt(np.maximum(counts, 1)).astype("float32")
        if not self.dense:
            self._set_pairs(targets, sources, weights[targets])
            return
        if not self.built:
            self.build()
        matrix = np.zeros((self.num_targets, self.num_sources), "float32")
        matrix[targets, sources] = weights[targets] * (
            centred if self.rated else 1.0
        )
        self.pair_weights.assign(matrix)
        self._adapted = True

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
        self._adapted = True

    def call(self, rows, source_rows=None):
        if self.rated and source_rows is None:
            raise ValueError(
                f"{self.name} leaves each row's own pair out: pass the "
                "source rows of the inputs."
            )
        if not self._adapted:
            example = "x_train, y_train" if self.rated else "x_train"
            raise ValueError(
                f"{self.name} holds no pairs yet: call `adapt` on the "
                "model with the training inputs before training or "
                f"predicting (e.g. `model.adapt({example})`)."
            )
        if self.dense:
            pair_weights = ops.cast(
                ops.take(self.pair_weights, rows, axis=0), self.compute_dtype
            )
            embeddings = ops.cast(self.embeddings, self.compute_dtype)
            sums = ops.matmul(pair_weights, embeddings)
            if not self.rated:
                return sums
            own = ops.take_along_axis(
                pair_weights, ops.expand_dims(source_rows, -1), axis=1
            )
            return sums - own * ops.take(embeddings, source_rows, axis=0)
        targets, sources, weights = self._tensors
        vectors = ops.take(self.embeddings, sources, axis=0)
        weights = ops.cast(weights, vectors.dtype)
        sums = ops.segment_sum(
            vectors * ops.expand_dims(weights, -1),
            targets,
            num_segments=self.num_targets,
        )
        return ops.take(sums, rows, axis=0)

    def compute_output_spec(self, rows, source_rows=None):
        return keras.KerasTensor(
            tuple(rows.shape) + (self.output_dim,), dtype=self.compute_dtype
        )

    def save_own_variables(self, store):
        if self.dense:
            return super().save_own_variables(store)
        store["0"] = self.embeddings
        if self._pairs is not None:
            for name, array in zip(
                ("targets", "sources", "weights"), self._pairs, strict=True
            ):
                store[name] = array

    def load_own_variables(self, store):
        if self.dense:
            super().load_own_variables(store)
            pair_weights = ops.convert_to_numpy(self.pair_weights)
            self._adapted = bool(np.any(pair_weights))
            return
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
                "dense": self.dense,
                "rated": self.rated,
            }
        )
        return config
