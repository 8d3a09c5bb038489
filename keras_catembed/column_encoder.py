"""`ColumnEncoder`: everything a model learns about one id column."""

import types
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import _adapt_rows
from keras_catembed import _frames
from keras_catembed import _ids
from keras_catembed import _inputs
from keras_catembed import _layers
from keras_catembed import _pair_dtype
from keras_catembed import _pairs
from keras_catembed import _step
from keras_catembed._implicit import ImplicitFeedback
from keras_catembed.entity_embedding import EntityEmbedding


def _source_table(source: Any, argument: str) -> tuple[str, EntityEmbedding]:
    """The column and table of a source: an encoder, a pair or a config."""
    if isinstance(source, Mapping):
        return _layers.source_from_config(source)
    if isinstance(source, ColumnEncoder):
        return source.column, source.embedding
    if (
        isinstance(source, tuple)
        and len(source) == 2
        and isinstance(source[0], str)
        and isinstance(source[1], EntityEmbedding)
    ):
        if source[1]._column is None:
            # Its errors name the column it reads, as an encoder's table's.
            source[1].set_column(source[0])
        return source
    raise ValueError(
        f"`{argument}` expects the ColumnEncoder of the column whose ids "
        f"describe this one, or None. Received: {source!r}"
    )


@keras.saving.register_keras_serializable(package="keras_catembed")
class ColumnEncoder(keras.layers.Layer):
    """Encodes one id column: its embedding and the terms built on it.

    A column encoder owns everything a model learns about one categorical
    column: its `EntityEmbedding` table, an optional learned bias per id,
    and optional implicit-feedback and neighbourhood sums over the ids of
    another column that each id occurs with (as in SVD++ and Koren's
    integrated model). Called on a dict of id columns, it returns the
    column's vector: the looked-up row, plus the implicit-feedback vector,
    followed by the neighbourhood vector when there is one (twice as
    wide). `RatingModel` keeps one encoder per column (`model.encoders`);
    the layer also composes into functional models of your own.

    Args:
        embedding: The column's cardinality (an integer: ids are `0..n-1`,
            size from the `"auto"` rule) or a configured
            `keras_catembed.EntityEmbedding`.
        column: String. The input column this encoder reads from a dict of
            inputs (and names in its errors).
        bias: Boolean. Whether to learn a scalar per id (`bias_layer`,
            zeros at first), returned beside the vector, to be added to the
            model's output as biased matrix factorization does. Defaults
            to `False`.
        implicit: Optional `ColumnEncoder` of the column whose ids
            describe this one: each id of this column is also described by
            the normalized sum of learned vectors of the source ids it
            occurs with in the data given to `adapt`. Defaults to `None`.
        neighborhood: Like `implicit`, but each pair is weighted by its
            centred rating, and the row being predicted is left out of its
            own sum. Requires `adapt(x, y)` with the ratings. Defaults to
            `None`.
        max_pairs_per_id: Optional positive integer. Caps the pairs kept
            per id of `implicit` and `neighborhood` (a fixed random sample
            drawn in `adapt`). Defaults to `None` (see `RatingModel`).
        pairs_per_step: Optional positive integer. Training steps read a
            moving window of this many of each id's listed pairs (see
            `RatingModel` and `refresh_anchor`). Defaults to `None`.
        pair_dtype: Optional string, `"bfloat16"` to hold the pairs of
            `implicit` and `neighborhood` in bfloat16 and compute every
            id's sums at once with float32 accumulation, or `"auto"` (see
            `RatingModel`). Defaults to `None` (float32).
        **kwargs: Base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Dict of integer id tensors keyed by column name, holding
            `column` and the source columns of `implicit` and
            `neighborhood`.
        training: Python boolean. Whether entity dropout is active.

    Returns:
        A float tensor of shape `(batch, output_dim)` (`output_dim` is
        twice the table's width with a `neighborhood`); with `bias=True`,
        a tuple `(vector, bias)`, the bias of shape `(batch, 1)`.

    Example:

    ```python
    movies = keras_catembed.ColumnEncoder(1682, column="movie_id")
    users = keras_catembed.ColumnEncoder(
        943, column="user_id", implicit=movies
    )
    users.adapt({"user_id": u_train, "movie_id": m_train})
    inputs = {
        "user_id": keras.Input((), dtype="int32", name="user_id"),
        "movie_id": keras.Input((), dtype="int32", name="movie_id"),
    }
    score = keras.ops.sum(users(inputs) * movies(inputs), axis=-1)
    model = keras.Model(inputs, score)
    ```
    """

    def __init__(
        self,
        embedding: int | EntityEmbedding,
        *,
        column: str,
        bias: bool = False,
        implicit: Any = None,
        neighborhood: Any = None,
        max_pairs_per_id: int | None = None,
        pairs_per_step: int | None = None,
        pair_dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(column, str) or not column:
            raise ValueError(
                "`column` expects the name of an input column (a non-empty "
                f"string). Received: {column!r}"
            )
        kwargs.setdefault("name", f"{column}_encoder")
        super().__init__(**kwargs)
        self.column = column
        if isinstance(embedding, EntityEmbedding):
            self.embedding = embedding
        else:
            self.embedding = EntityEmbedding(
                input_dim=embedding,
                name=f"{column}_embedding",
                dtype=self.dtype_policy,
            )
        self.embedding.set_column(column)
        self.bias = _inputs.check_bool("bias", bias)
        self.bias_layer: EntityEmbedding | None = None
        if self.bias:
            self.bias_layer = _layers.bias_table(
                self.embedding, self.dtype_policy
            )
        self.max_pairs_per_id = _pairs.check_max_pairs_per_id(max_pairs_per_id)
        self.pairs_per_step = _pairs.check_count(
            "pairs_per_step", pairs_per_step
        )
        self.pair_dtype = _pair_dtype.check(self.name, pair_dtype)
        _pair_dtype.check_used(
            "encoder",
            self.pair_dtype,
            implicit is not None or neighborhood is not None,
            "a source encoder",
        )
        self.implicit_layer: ImplicitFeedback | None = None
        self.neighborhood_layer: ImplicitFeedback | None = None
        # The sources' tables map their ids to rows; they belong to their
        # own encoders, so this layer holds them in a read-only mapping,
        # which neither Keras's tracking nor its saved files follow.
        sources = {
            kind: _source_table(source, kind)
            for kind, source in (
                ("implicit", implicit),
                ("neighborhood", neighborhood),
            )
            if source is not None
        }
        self.pair_dtype = _layers.resolved_pair_dtype(
            self.pair_dtype,
            [
                (self.embedding, table, self.pairs_per_step)
                for _, table in sources.values()
            ],
            self.max_pairs_per_id,
        )
        for kind, (_, table) in sources.items():
            layer = _layers.pair_layer(
                self.embedding,
                table,
                rated=kind == "neighborhood",
                max_pairs_per_id=self.max_pairs_per_id,
                pairs_per_step=self.pairs_per_step,
                dtype=self.dtype_policy,
                pair_dtype=self.pair_dtype,
            )
            setattr(self, f"{kind}_layer", layer)
        self._sources = types.MappingProxyType(sources)

    @property
    def output_dim(self) -> int:
        """Width of the output: twice the table's with a neighborhood."""
        width: int = self.embedding.output_dim
        return width * (2 if self.neighborhood_layer is not None else 1)

    @property
    def source_columns(self) -> dict[str, str]:
        """The source column of `implicit` and `neighborhood`, by kind."""
        return {kind: column for kind, (column, _) in self._sources.items()}

    @property
    def input_columns(self) -> list[str]:
        """The columns `call` and `adapt` read: its own, then sources."""
        columns = [self.column]
        for source in self.source_columns.values():
            if source not in columns:
                columns.append(source)
        return columns

    def build(self, input_shape: Any = None) -> None:
        for layer in self._own_layers():
            if not layer.built:
                layer.build()

    def _own_layers(self) -> list[Any]:
        layers = [self.embedding, self.bias_layer]
        layers += [self.implicit_layer, self.neighborhood_layer]
        return [layer for layer in layers if layer is not None]

    def encode(
        self,
        inputs: Mapping[str, Any],
        training: bool | None = None,
        step: _step.StepInputs | None = None,
    ) -> Any:
        """The column's vector for a dict of id tensors (see the class).

        `step` is the context of a training loop that has checked the ids
        or gathered the rows a sparse step reads (`RatingModel`'s loops);
        without it the ids are checked here.
        """
        step = step or _step.StepInputs()
        table = self.embedding
        vector = step.invoke(
            table,
            inputs[self.column],
            training=training,
            ids_checked=step.ids_checked,
            gathered=step.rows_of(table),
        )
        if self.implicit_layer is None and self.neighborhood_layer is None:
            return vector
        rows = table._clipped_rows(inputs[self.column])
        if self.implicit_layer is not None:
            layer = self.implicit_layer
            implicit = step.invoke(
                layer,
                rows,
                training=training,
                gathered=step.rows_of(layer),
                pairs_checked=step.ids_checked,
            )
            vector = vector + ops.cast(implicit, vector.dtype)
        if self.neighborhood_layer is not None:
            layer = self.neighborhood_layer
            column, source = self._sources["neighborhood"]
            # The source column may be one no other layer reads (an
            # encoder of its own): its ids are checked here.
            source_rows, invalid = source.checked_rows(
                inputs[column], ids_checked=step.ids_checked
            )
            neighbors = step.invoke(
                layer,
                rows,
                source_rows,
                training=training,
                gathered=step.rows_of(layer),
                pairs_checked=step.ids_checked,
            )
            neighbors = _ids.nan_where_invalid(neighbors, invalid)
            vector = ops.concatenate(
                [vector, ops.cast(neighbors, vector.dtype)], axis=-1
            )
        return vector

    def call(
        self, inputs: Mapping[str, Any], training: bool | None = None
    ) -> Any:
        inputs = self._standardize(inputs)
        vector = self.encode(inputs, training=training)
        if self.bias_layer is None:
            return vector
        return vector, self.bias_layer(inputs[self.column])

    def _standardize(self, inputs: Any) -> dict[str, Any]:
        self._check_columns(inputs, self.name, "a dict of id tensors")
        return {
            column: ops.reshape(inputs[column], (-1,))
            if len(getattr(inputs[column], "shape", ())) == 2
            else inputs[column]
            for column in self.input_columns
        }

    def _check_columns(self, inputs: Any, where: str, expected: str) -> None:
        """Raises unless `inputs` is a mapping holding `input_columns`."""
        if not isinstance(inputs, Mapping):
            raise ValueError(
                f"{where} expects {expected} holding the columns "
                f"{self.input_columns}. Received: {type(inputs).__name__}"
            )
        missing = [c for c in self.input_columns if c not in inputs]
        if missing:
            raise ValueError(
                f"{where} reads the columns {self.input_columns}. "
                f"Missing: {missing}"
            )

    def refresh_anchor(self) -> None:
        """Anchors the `pairs_per_step` windows at the tables as they are.

        `RatingModel.fit` does this every epoch and as the tables move.
        In a model of your own, call it at least every epoch, e.g. with
        `keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_:
        encoder.refresh_anchor())`; the further the tables move from
        their anchor, the noisier a step's sums (right on average all
        the same). Does nothing without `pairs_per_step`.
        """
        for layer in (self.implicit_layer, self.neighborhood_layer):
            if layer is not None:
                layer.refresh_anchor()

    def adapt(self, x: Any, y: Any = None) -> None:
        """Records the pairs of `implicit` and `neighborhood` from data.

        Every column is checked before any layer changes. Calling it again
        replaces the pairs; they are saved with the layer.

        Args:
            x: Dict of id arrays (or a pandas `DataFrame`) holding
                `column` and the source columns.
            y: Array of the ratings of `x`'s rows. Required with a
                `neighborhood`, unused otherwise.

        Raises:
            ValueError: if the encoder has no `implicit` or
                `neighborhood`, a column is missing, an id is one its
                column cannot embed, or `y` is missing, of another length
                or not finite.
        """
        if not self._sources:
            raise ValueError(
                f"`adapt` records pairs for implicit feedback, but "
                f"{self.name} has none: pass `implicit=` or `neighborhood=`."
            )
        if _frames.is_dataframe(x):
            x = _frames.known_columns(x, self.input_columns)
        self._check_columns(x, "`adapt`", "a dict of id arrays")
        tables = {self.column: self.embedding}
        tables.update(dict(self._sources.values()))
        rows = _adapt_rows.rows_by_column(x, tables)
        ratings = None
        if self.neighborhood_layer is not None:
            ratings = _adapt_rows.ratings(y, len(rows[self.column]))
        self._adapt_rows(rows, ratings)

    def _adapt_rows(
        self, rows: Mapping[str, np.ndarray], ratings: np.ndarray | None
    ) -> None:
        """Adapts the pair layers to checked table rows (by column)."""
        for kind, (source, _) in self._sources.items():
            layer = getattr(self, f"{kind}_layer")
            layer.adapt(
                rows[self.column],
                rows[source],
                ratings if kind == "neighborhood" else None,
            )

    def compute_output_spec(
        self, inputs: Any, training: bool | None = None
    ) -> Any:
        batch = self._standardize(inputs)[self.column].shape[0]
        vector = keras.KerasTensor(
            (batch, self.output_dim), dtype=self.compute_dtype
        )
        if self.bias_layer is None:
            return vector
        return vector, keras.KerasTensor((batch, 1), dtype=self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "embedding": keras.saving.serialize_keras_object(
                    self.embedding
                ),
                "column": self.column,
                "bias": self.bias,
                "max_pairs_per_id": self.max_pairs_per_id,
                "pairs_per_step": self.pairs_per_step,
                "pair_dtype": self.pair_dtype,
            }
        )
        for kind, (column, table) in self._sources.items():
            config[kind] = _layers.source_config(column, table)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ColumnEncoder":
        config = dict(config)
        config["embedding"] = keras.saving.deserialize_keras_object(
            config["embedding"]
        )
        return cls(**config)
