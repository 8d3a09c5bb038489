"""Implicit feedback: an entity described by the ids it co-occurs with."""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import _pair_dtype
from keras_catembed import _pair_sums
from keras_catembed import _pair_windows
from keras_catembed import _pairs
from keras_catembed import backend

# Largest `num_targets * num_sources` held as a dense matrix (256 MB).
DENSE_LIMIT = 2**26
# Pairs kept per target row in the lists layout when no cap is given.
DEFAULT_MAX_PAIRS_PER_ID = 256


@keras.saving.register_keras_serializable(package="keras_catembed")
class ImplicitFeedback(keras.layers.Layer):
    """Sums learned vectors of the source ids each target id was seen with.

    For target row `t` with the set `N(t)` of source rows it occurs with in
    the adapted data, the output is `|N(t)| ** -0.5 * sum(y[s] for s in
    N(t))`, where `y` is a learned `(num_sources, output_dim)` table: the
    implicit-feedback term of SVD++ (Koren, 2008). A target row with no
    pairs gets zeros.

    With `max_pairs_per_id=k`, `N(t)` is a fixed random sample of at most
    `k` of the source rows `t` occurs with (drawn in `adapt` with `seed`),
    so a step costs at most `k` lookups per row however popular an id is.

    With `pairs_per_step=m` (lists layout), a training step reads only a
    window of `m` of each row's listed pairs, so a step costs `m` lookups
    per row however long the lists. The layer keeps an anchor: a copy
    `y0` of its table and the whole sums `A(t)` over it, which
    `RatingModel.fit` refreshes (`refresh_anchor`) at the start of every
    epoch and, within one, whenever the steps since the last refresh have
    read about as many pairs as the layer lists. A training
    step computes `A(t) + |N(t)| / m * sum(w * (y[s] - y0[s]))` over the
    window: the whole sum exactly while the table is at its anchor, and
    an unbiased estimate of it (of its gradient too) as the table moves
    away from it. The window moves by `m` at every step (a per-layer
    step counter, saved with the model), so every listed pair is read.
    Prediction and evaluation read every listed pair.

    The pairs are set by `adapt` and saved with the model as non-trainable
    weights. Two layouts:

    - dense (the default when `num_targets * num_sources <= DENSE_LIMIT`
      and no cap is set): a `(num_targets, num_sources)` matrix, and the
      output is a batch of its rows times the table (the fastest at
      ml-1m's size: `benchmarks/implicit_layouts.py`).
    - lists: a `(num_targets, max_pairs_per_id)` matrix of source rows and
      one of weights, padded with zero weights (memory grows with the
      targets times the cap, not with the product of the cardinalities).
      A step gathers the lists of its rows and their vectors. Without a
      cap this layout keeps `DEFAULT_MAX_PAIRS_PER_ID` pairs per id, and
      `adapt` warns when it had to leave pairs out.

    With `pair_dtype="bfloat16"` (dense layout only; `"auto"` picks it
    where it is native), the matrix is held in bfloat16 with a transposed
    copy (the memory of one float32 matrix), and a step computes every
    target row's sum at once (`_pair_sums.every_row`) with float32
    accumulation: fast with AMX or AVX512-BF16, slow where emulated
    (`benchmarks/pair_dtype.py`). The weights and the table's values
    enter the products rounded to 8 bits of mantissa.

    With `rated=True` the pairs carry ratings: the weight of `(t, s)` is
    `(r[t, s] - mean) * |N(t)| ** -0.5`, where `mean` is the mean of the
    adapted ratings, so the output is a rating-weighted sum (the
    neighbourhood term of Koren's integrated model). The pair of the row
    being predicted is then left out of its own sum (`call` takes the
    source row of each input row), so a training rating never describes
    its own target; a pair absent from the adapted data has no entry, so
    at prediction time nothing is left out.

    `RatingModel` makes these layers from `implicit` and `neighborhood`.
    """

    def __init__(
        self,
        num_targets: int,
        num_sources: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        dense: bool | None = None,
        rated: bool = False,
        max_pairs_per_id: int | None = None,
        pairs_per_step: int | None = None,
        seed: int = 0,
        pair_dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
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
        self.max_pairs_per_id = _pairs.check_max_pairs_per_id(max_pairs_per_id)
        self.pairs_per_step = _pairs.check_count(
            "pairs_per_step", pairs_per_step
        )
        self.seed = int(seed)
        reason = _pair_dtype.lists_reason(
            self.num_targets,
            self.num_sources,
            limit=DENSE_LIMIT,
            dense=dense,
            max_pairs_per_id=self.max_pairs_per_id,
            pairs_per_step=self.pairs_per_step,
        )
        self.dense = reason is None if dense is None else bool(dense)
        reason = None if self.dense else reason  # dense=True wins
        checked = _pair_dtype.check(self.name, pair_dtype, reason)
        self.pair_dtype = _pair_dtype.resolve(checked, [reason])
        if self.dense and self.pairs_per_step is not None:
            raise ValueError(
                f"{self.name}: `pairs_per_step` reads a window of each "
                "id's pair list, which the dense layout does not have. "
                f"Received: dense=True, pairs_per_step={pairs_per_step}"
            )
        # Width of the lists layout: the cap, never wider than needed.
        self.width = min(
            self.num_sources,
            self.max_pairs_per_id or DEFAULT_MAX_PAIRS_PER_ID,
        )
        _pairs.check_window(self)
        self._adapted = False
        # The counts' `value_token` when `_adapted` was read from them.
        self._adapted_token: Any = None
        # See `set_row_regularization`.
        self._row_regularization = False

    @property
    def adapted(self) -> bool:
        """Whether the layer holds pairs (from `adapt` or a saved model)."""
        return bool(self.held_adapted())

    def held_adapted(self) -> bool | None:
        """Whether the layer holds pairs; None where a graph hides them.

        Pairs may come, or go, with any new value of the counts (`adapt`,
        `set_weights`, `load_weights`): they are read again, even while a
        graph is traced, whenever the counts were given a new value.
        """
        if not self.built:
            return self._adapted
        token = backend.current.value_token(self.pair_counts)
        if backend.current.same_token(token, self._adapted_token):
            return self._adapted
        counts = backend.current.held_value(self.pair_counts)
        if counts is None:
            return True if self._adapted else None
        self._adapted = bool(np.any(ops.convert_to_numpy(counts)))
        self._adapted_token = token
        return self._adapted

    def build(self, input_shape: Any = None) -> None:
        # The lists layout pads short lists with the row `num_sources`, a
        # zero row that no pair reads: its gradient is always zero, so it
        # stays zero under any optimizer, and a lazy one leaves every real
        # row a batch does not read alone.
        self.embeddings = self.add_weight(
            shape=(self.num_sources + (not self.dense), self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            name="embeddings",
        )
        if self._row_regularization:
            self.embeddings.regularizer = None
        if self.dense:
            self.pair_weights = self.add_weight(
                shape=(self.num_targets, self.num_sources),
                initializer="zeros",
                dtype=self.pair_dtype,
                trainable=False,
                name="pair_weights",
            )
            if self.narrow_pairs:
                # The table's gradient is this matrix times the sums'
                # gradient: a row-major product, fast in a narrow dtype.
                self.pair_weights_t = self.add_weight(
                    shape=(self.num_sources, self.num_targets),
                    initializer="zeros",
                    dtype=self.pair_dtype,
                    trainable=False,
                    name="pair_weights_t",
                )
        else:
            self.embeddings.assign(
                ops.concatenate(
                    [
                        self.embeddings[: self.num_sources],
                        ops.zeros((1, self.output_dim), self.embeddings.dtype),
                    ]
                )
            )
            # Every slot holds the padding row until `adapt` fills it.
            self.pair_sources = self.add_weight(
                shape=(self.num_targets, self.width),
                initializer=keras.initializers.Constant(self.num_sources),
                dtype="int32",
                trainable=False,
                name="pair_sources",
            )
            self.pair_weights = self.add_weight(
                shape=(self.num_targets, self.width),
                initializer="zeros",
                trainable=False,
                name="pair_weights",
            )
        # Pairs kept per target: whether the layer is adapted survives a
        # save even when every weight is zero (constant ratings).
        self.pair_counts = self.add_weight(
            shape=(self.num_targets,),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            name="pair_counts",
        )
        if self.sampled:
            _pair_windows.build(self)

    @property
    def narrow_pairs(self) -> bool:
        """Whether the pairs are held in a dtype narrower than float32."""
        return _pair_dtype.is_narrow(self.pair_dtype)

    @property
    def sampled(self) -> bool:
        """Whether training steps read a window of each list."""
        return self.pairs_per_step is not None and (
            self.pairs_per_step < self.width
        )

    def adapt(
        self, target_rows: Any, source_rows: Any, ratings: Any = None
    ) -> None:
        """Records the distinct `(target, source)` row pairs.

        Everything is checked before any weight changes: a rejected call
        leaves the layer as it was.

        Args:
            target_rows: Integer array of rows in `[0, num_targets)`.
            source_rows: Integer array of the same length, in
                `[0, num_sources)`.
            ratings: Float array of the same length: the rating of each
                pair (averaged over repeated pairs). Required when `rated`,
                ignored otherwise.
        """
        checked = _pairs.check_adapt(self, target_rows, source_rows, ratings)
        pairs = _pairs.weighted(self, *checked)
        if not self.built:
            self.build()
        _pairs.write(self, *pairs)
        _pair_windows.reset(self)
        self._adapted = True
        self._adapted_token = None

    def call(
        self,
        rows: Any,
        source_rows: Any = None,
        training: bool | None = None,
        gathered: tuple[Any, ...] | None = None,
        pairs_checked: bool = False,
    ) -> Any:
        """The weighted sum of the vectors of each row's pairs.

        Args:
            rows: Int tensor of target rows, shape `(batch,)`.
            source_rows: Int tensor of each row's source row (required
                when `rated`: that pair is left out).
            training: Python boolean.
            gathered: Optional `(table_rows, positions[, indices])` from
                a sparse step (lists layout only): the rows of
                `rows_needed`, gathered, each one's position, their rows.
            pairs_checked: Python boolean. Whether the caller checked,
                before the loop, that the layer holds pairs (then a
                compiled graph does not check them again).
        """
        if self.rated and source_rows is None:
            raise ValueError(
                f"{self.name} leaves each row's own pair out: pass the "
                "source rows of the inputs."
            )
        check = _pairs.check_adapted(self, pairs_checked)
        if self.narrow_pairs:
            sums = _pair_sums.every_row(self, rows, source_rows)
        elif self.dense:
            sums = _pair_sums.dense(self, rows, source_rows)
        else:
            sums = _pair_sums.lists(self, rows, source_rows, training, gathered)
        if check is None:
            return sums
        return backend.current.with_dependencies(sums, [check])

    def sums(self, rows: Any) -> Any:
        """The whole weighted sum of each row's pairs (nothing left out).

        What `explore` shows for an id (eager use): for an int tensor of
        target rows, shape `(batch,)`, a float one `(batch, output_dim)`.
        """
        return _pair_sums.whole(self, rows)

    def rows_needed(
        self,
        rows: Any,
        source_rows: Any,
        value: Callable[[Any], Any] = _pair_windows.own_value,
    ) -> Any:
        """The table rows a lists-layout training step reads, flat.

        The sources listed for `rows` (row-major, padding slots included;
        with `pairs_per_step`, each row's window), then, when `rated`, the
        `source_rows` themselves (each row's own pair, left out). A sparse
        training step gathers these rows and passes them back as
        `gathered=(gathered_table, positions, unique_rows)`.

        Args:
            rows: Int tensor of target rows, shape `(batch,)`.
            source_rows: Int tensor of the rows' source rows (used when
                `rated`).
            value: Function giving the current value of one of this
                layer's variables (inside a stateless step, its traced
                value); defaults to the variable's own value.
        """
        if self.sampled:
            sources, _ = _pair_windows.window(self, rows, value)
        else:
            sources = ops.take(value(self.pair_sources), rows, axis=0)
        needed = ops.reshape(sources, (-1,))
        if self.rated:
            needed = ops.concatenate(
                [
                    needed,
                    ops.reshape(ops.cast(source_rows, needed.dtype), (-1,)),
                ]
            )
        return needed

    def listed_pairs(self) -> int:
        """How many pairs the layer holds (eager use)."""
        return int(np.sum(ops.convert_to_numpy(self.pair_counts)))

    def refresh_anchor(self) -> None:
        """Anchors the windows at the table as it is (eager use).

        Copies the table to `anchor` and writes the whole sum of every
        row's pairs over it to `anchor_sums` (one SciPy sparse product for
        a table in host memory, else gathered a bounded slice of rows at
        a time). `RatingModel.fit` calls it as training moves the table.
        """
        _pair_windows.refresh(self)

    def set_row_regularization(self, enabled: bool) -> None:
        """Regularizes the rows a step reads instead of the whole table.

        As `EntityEmbedding` does under a sparse optimizer, so that the
        regularizer does not give every row a gradient at every step.
        Only the lists layout reads rows; the dense layout keeps the
        table's regularizer.
        """
        self._row_regularization = bool(enabled) and not self.dense
        if self.built:
            self.embeddings.regularizer = (
                None
                if self._row_regularization
                else self.embeddings_regularizer
            )

    def compute_output_spec(
        self,
        rows: Any,
        source_rows: Any = None,
        training: bool | None = None,
        gathered: Any = None,
        pairs_checked: bool = False,
    ) -> Any:
        return keras.KerasTensor(
            tuple(rows.shape) + (self.output_dim,), dtype=self.compute_dtype
        )

    def load_own_variables(self, store: Any) -> None:
        _pairs.load_retried(self, store, super().load_own_variables)
        counts = ops.convert_to_numpy(self.pair_counts)
        self._adapted = bool(np.any(counts))
        self._adapted_token = None

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
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
                "max_pairs_per_id": self.max_pairs_per_id,
                "pairs_per_step": self.pairs_per_step,
                "seed": self.seed,
                "pair_dtype": self.pair_dtype,
            }
        )
        return config
