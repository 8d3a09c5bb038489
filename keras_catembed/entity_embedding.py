"""The `EntityEmbedding` layer: one categorical id column to dense vectors."""

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import _checks
from keras_catembed import _ids
from keras_catembed import backend

MAX_AUTO_OUTPUT_DIM = 600


def auto_output_dim(num_rows: int) -> int:
    """Embedding size for a table of `num_rows` rows (fastai's rule).

    `min(600, round(1.6 * num_rows ** 0.56))`, the rule of thumb used by
    fastai's `emb_sz_rule` for tabular entity embeddings.

    Args:
        num_rows: Integer. Number of rows of the table.

    Returns:
        Integer, at least 1.
    """
    num_rows = _checks.positive_int("num_rows", num_rows)
    size: int = round(1.6 * num_rows**0.56)
    return max(1, min(MAX_AUTO_OUTPUT_DIM, size))


@keras.saving.register_keras_serializable(package="keras_catembed")
class EntityEmbedding(keras.layers.Layer):
    """Learns a dense vector for each id of one categorical column.

    An entity embedding (Guo & Berkhahn, 2016) maps each value of a
    categorical column (a user id, a movie id, a store, a zip code) to a
    learned vector. Unlike `keras.layers.Embedding`, this layer never returns
    a silently wrong row: an id it does not know either raises a
    `ValueError` that names the layer, the id and the valid range, or (with
    `num_oov_indices > 0`) is mapped to one of a few learned
    out-of-vocabulary (OOV) rows. Negative ids never wrap around and float
    ids are never truncated: a float id must hold a whole number.

    Ids come in one of two ways:

    - `input_dim=n`: ids are already indices `0..n-1`.
    - `vocabulary=[...]`: ids are raw integers (e.g. original MovieLens
      movie ids). The layer maps them to rows with `keras.ops` (a sorted
      copy and `searchsorted`), so the mapping runs inside compiled graphs on
      every backend and is saved with the model. Row `i` belongs to
      `vocabulary[i]`.

    The table has `n + num_oov_indices` rows. Unknown ids go to row
    `n + (id mod num_oov_indices)`, which is deterministic.

    Eager calls (and every call on torch) raise the `ValueError`; inside a
    compiled graph the layer adds an assertion with the same message and
    gives NaN vectors for ids it cannot embed, never a silently wrong row
    (see the "Safety" guide for each backend). NumPy ids are checked
    before Keras converts them, so an int64 id beyond the int32 range
    raises on JAX too.

    This layer does no masking.

    Args:
        input_dim: Integer. Number of distinct ids; ids are `0..input_dim-1`.
            Give exactly one of `input_dim` and `vocabulary`. Defaults to
            `None`.
        output_dim: Integer or `"auto"`. Size of each vector. `"auto"` uses
            `min(600, round(1.6 * num_rows ** 0.56))` (fastai's rule) on the
            number of rows, OOV rows included. Defaults to `"auto"`.
        vocabulary: Sequence of distinct integers. The raw ids of the column;
            row `i` holds `vocabulary[i]`. Defaults to `None`.
        num_oov_indices: Integer >= 0. Number of learned rows for unknown
            ids. With 0, unknown ids raise. Defaults to `0`.
        embeddings_initializer: Initializer for the table. Defaults to
            `"uniform"`, as in `keras.layers.Embedding`.
        embeddings_regularizer: Optional regularizer for the table.
            Defaults to `None`.
        embeddings_constraint: Optional constraint for the table. Defaults to
            `None`.
        dropout: Float in [0, 1). Entity dropout: during training, whole
            vectors are zeroed with this probability (the rest scaled by
            `1 / (1 - dropout)`); identity at inference. Defaults to `0.0`.
        **kwargs: Base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Integer tensor of ids, any shape `S`. Floats holding whole
            numbers are accepted; bool and string tensors are not.
        training: Python boolean. Whether entity dropout is active.

    Returns:
        A float tensor of shape `S + (output_dim,)` in the layer's compute
        dtype.

    Raises:
        ValueError: for bad arguments; for fractional, NaN, bool or string
            ids; and for unknown ids when `num_oov_indices=0`.

    Example:

    >>> layer = keras_catembed.EntityEmbedding(
    ...     vocabulary=[10, 20, 30], output_dim=4, num_oov_indices=1)
    >>> layer(np.array([[10, 99]])).shape
    (1, 2, 4)

    Reference:
        - [Guo & Berkhahn, 2016. Entity Embeddings of Categorical
          Variables](https://arxiv.org/abs/1604.06737)
        - [Howard & Gugger, 2020. Fastai: A Layered API for Deep
          Learning](https://arxiv.org/abs/2002.04688) (the size rule)
    """

    def __init__(
        self,
        input_dim: int | None = None,
        output_dim: int | str = "auto",
        *,
        vocabulary: Sequence[int] | None = None,
        num_oov_indices: int = 0,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (input_dim is None) == (vocabulary is None):
            raise ValueError(
                "Give exactly one of `input_dim` and `vocabulary`. Received: "
                f"input_dim={input_dim!r}, vocabulary="
                f"{_ids.short_repr(vocabulary)}"
            )
        self.vocabulary: list[int] | None
        self.input_dim: int | None
        if vocabulary is not None:
            self.vocabulary = _ids.check_vocabulary(vocabulary)
            self.input_dim = None
            num_ids = len(self.vocabulary)
        else:
            self.vocabulary = None
            self.input_dim = _checks.positive_int("input_dim", input_dim)
            num_ids = self.input_dim
        self.num_oov_indices = _checks.non_negative_int(
            "num_oov_indices", num_oov_indices
        )
        self.num_ids = num_ids
        self.num_rows = num_ids + self.num_oov_indices
        if isinstance(output_dim, str) and output_dim == "auto":
            self.output_dim = auto_output_dim(self.num_rows)
        else:
            self.output_dim = _checks.positive_int("output_dim", output_dim)
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
        )
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )
        self.embeddings_constraint = keras.constraints.get(
            embeddings_constraint
        )
        self.dropout = _checks.rate("dropout", dropout)
        self.seed_generator = (
            keras.random.SeedGenerator(name="dropout_seed")
            if self.dropout > 0
            else None
        )
        if self.vocabulary is not None:
            order = np.argsort(np.asarray(self.vocabulary, dtype=np.int64))
            self._sorted_vocabulary = np.asarray(
                self.vocabulary, dtype=np.int32
            )[order]
            self._sorted_rows = order.astype(np.int32)
        # Compiling would drop the id checks on some backends.
        if not backend.current.SUPPORTS_JIT:
            self.supports_jit = False
        # Set by RatingModel so that errors name the input column.
        self._column: str | None = None
        # Whether the regularizer applies to looked-up rows (under a
        # sparse optimizer) instead of the table: `set_row_regularization`.
        self._row_regularization = False

    def build(self, input_shape: Any = None) -> None:
        _checks.check_weight_bytes(
            self._where, {"the table": self.num_rows * self.output_dim}
        )
        self.embeddings = self.add_weight(
            shape=(self.num_rows, self.output_dim),
            name="embeddings",
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
        )
        if self._row_regularization:
            self.embeddings.regularizer = None

    @property
    def _where(self) -> str:
        if self._column is not None:
            return f"Column '{self._column}' (EntityEmbedding '{self.name}')"
        return f"EntityEmbedding '{self.name}'"

    @property
    def _expected(self) -> str:
        if self.vocabulary is not None:
            head = ", ".join(str(v) for v in self.vocabulary[:5])
            more = ", ..." if len(self.vocabulary) > 5 else ""
            return (
                f"one of the {len(self.vocabulary)} ids of the vocabulary "
                f"[{head}{more}]"
            )
        return f"an integer id in [0, {self.num_ids - 1}]"

    def check_ids(self, ids: Any) -> None:
        """Checks concrete ids and raises on any the layer cannot embed.

        This is what eager calls run before the lookup. Call it on data
        before it enters a compiled graph (a `tf.data` pipeline, say), where
        errors can only be raised as graph assertions.

        Args:
            ids: Array-like of ids, any shape.

        Raises:
            ValueError: for bool, string, NaN, infinite or fractional ids,
                ids outside the int32 range, and (with `num_oov_indices=0`)
                unknown ids. The message names the layer (and column), the
                offending id, its position and the valid ids.
        """
        _ids.check_concrete_ids(self, ids)

    def _clipped_rows(self, ids: Any) -> Any:
        """Table rows of ids of any integer dtype, clipped into the table.

        For the other tables of a column (implicit feedback, the
        neighbourhood): unknown ids fail in this layer's own lookup, with
        its message, so a clipped row is never used for one.
        """
        rows, _ = self._rows(ops.cast(ids, "int32"))
        return ops.clip(rows, 0, self.num_rows - 1)

    def checked_rows(
        self, ids: Any, ids_checked: bool = False
    ) -> tuple[Any, Any]:
        """Table rows of ids read for another layer, checked as `call` does.

        For a column whose ids only another layer reads (the source column
        of a neighbourhood): concrete ids are checked here, ids inside a
        compiled graph get `call`'s graph assertions, and with
        `ids_checked` nothing is checked. Returns `(rows, invalid)`: the
        rows, clipped into the table, and inside a graph the mask of ids no
        row stands for (whose assertion XLA may drop), else None.
        """
        return _ids.checked_rows(self, ids, ids_checked)

    def _rows(self, ids: Any) -> tuple[Any, Any]:
        """Maps int32 ids to table rows; returns (rows, known mask)."""
        return _ids.table_rows(self, ids)

    def set_column(self, column: str | None) -> None:
        """Names the input column this layer embeds, in its errors."""
        self._column = column

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        # Keras converts NumPy inputs to tensors before `call`; JAX keeps
        # 32-bit integers, so an int64 id would wrap (2**32 + 3 becomes 3)
        # before `call` could see it. Check the NumPy value first.
        if not kwargs.get("ids_checked") and _ids.is_host_array(inputs):
            self.check_ids(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def call(
        self,
        inputs: Any,
        training: bool | None = None,
        ids_checked: bool = False,
        gathered: tuple[Any, ...] | None = None,
    ) -> Any:
        """Looks up the vector of each id.

        Args:
            inputs: Integer tensor of ids.
            training: Python boolean. Whether entity dropout is active.
            ids_checked: Python boolean. Whether the caller has checked
                every id already (the per-call checks are then skipped).
            gathered: Optional `(rows, positions)`: the table rows a
                sparse training step has gathered (ids checked), and the
                position in `rows` of each id. A third item (the table
                row of each of `rows`) may follow; it is not read here.
        """
        if gathered is not None:
            table, positions = gathered[0], gathered[1]
            return self._finish(
                backend.current.gather_rows(table, positions), training
            )
        dtype = _checks.check_id_dtype(self._where, inputs)
        concrete = not ids_checked and _checks.is_concrete(inputs)
        if concrete:
            self.check_ids(inputs)
        # Unchecked ids inside a compiled graph get graph assertions.
        in_graph = not ids_checked and not concrete
        if not in_graph:
            rows, _ = self._rows(ops.cast(inputs, "int32"))
            outputs = backend.current.lookup(self.embeddings, rows)
            return self._finish(outputs, training)
        rows, invalid = _ids.graph_checked_rows(self, inputs, dtype)
        outputs = backend.current.lookup(self.embeddings, rows)
        # Ids no row stands for get NaN rows besides the assertion.
        outputs = _ids.nan_where_invalid(outputs, invalid)
        return self._finish(outputs, training)

    def _finish(self, outputs: Any, training: bool | None) -> Any:
        """Row regularization, compute dtype and entity dropout."""
        if (
            training
            and self._row_regularization
            and self.embeddings_regularizer is not None
        ):
            self.add_loss(self.embeddings_regularizer(outputs))
        outputs = ops.cast(outputs, self.compute_dtype)
        if training and self.dropout > 0:
            keep = keras.random.dropout(
                ops.ones(ops.shape(outputs)[:-1], dtype=self.compute_dtype),
                self.dropout,
                seed=self.seed_generator,
            )
            outputs = outputs * ops.expand_dims(keep, -1)
        return outputs

    def set_row_regularization(self, enabled: bool) -> None:
        """Applies the regularizer to looked-up rows instead of the table.

        Sparse optimizers update only the rows of a batch; a regularizer on
        the whole table would give every row a gradient at every step. With
        `enabled`, the layer adds `regularizer(rows)` for the rows it looks
        up in training (once per occurrence) and the table's own
        regularizer is switched off.
        """
        self._row_regularization = bool(enabled)
        if self.built:
            self.embeddings.regularizer = (
                None if enabled else self.embeddings_regularizer
            )

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (*input_shape, self.output_dim)

    def compute_output_spec(
        self, inputs: Any, training: bool | None = None, **kwargs: Any
    ) -> Any:
        _checks.check_id_dtype(self._where, inputs)
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )

    def save_own_variables(self, store: Any) -> None:
        super().save_own_variables(store)
        _ids.save_vocabulary(self, store)

    def load_own_variables(self, store: Any) -> None:
        _checks.load_keeping_reason(
            self,
            store,
            lambda: super(EntityEmbedding, self).load_own_variables(
                _ids.checked_vocabulary_store(self, store)
            ),
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "vocabulary": self.vocabulary,
                "num_oov_indices": self.num_oov_indices,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "embeddings_regularizer": keras.regularizers.serialize(
                    self.embeddings_regularizer
                ),
                "embeddings_constraint": keras.constraints.serialize(
                    self.embeddings_constraint
                ),
                "dropout": self.dropout,
            }
        )
        return config
