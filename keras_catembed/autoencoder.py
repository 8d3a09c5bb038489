"""`ItemAutoencoder`: each item described by its ratings (I-AutoRec)."""

import collections.abc
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import _checks
from keras_catembed import _ids
from keras_catembed import _inputs
from keras_catembed import _item_batches
from keras_catembed import _member_grids
from keras_catembed import _recommend
from keras_catembed import _stored_ratings
from keras_catembed.entity_embedding import EntityEmbedding

# Largest `num_items * num_users` held as the dense matrix of ratings
# (256 MB in float32).
MATRIX_LIMIT = 2**26


@keras.saving.register_keras_serializable(package="keras_catembed")
class ItemAutoencoder(keras.Model):
    """An item autoencoder that predicts ratings of (user, item) rows.

    I-AutoRec (Sedhain et al., 2015): item `i` is described by its vector
    of ratings over the users, `r[i]` (0 where a user did not rate it).
    An encoder `h = sigmoid(r[i] @ W + b)` and a decoder per user,
    `rating(u, i) = dot(h, v[u]) + c[u]`, are trained to reconstruct the
    rated entries of `r[i]` (squared error), with an L2 penalty of
    `l2 / 2` on `W` and on the users' vectors `v`. It describes an item
    by who rated it and how, where `RatingModel` learns a vector per id,
    so the two make different errors: `RatingEnsemble` averages them.

    The model reads the ratings it was fitted on: `fit(x, y)` stores them
    (as non-trainable weights, saved with the model) and trains on them
    in batches of items, so `batch_size` counts items (64 by default, as
    in the paper) and an epoch is one pass over the items, one item
    batch per compiled call (`compile`'s `steps_per_execution` is not
    used for them).
    `predict(x)` and `evaluate(x, y)` take (user, item) rows, as for
    `RatingModel`, in batches of 65536 rows unless `batch_size` says
    otherwise: a batch of at least half as many rows as there are items
    encodes every item once, where a small batch encodes each row's item
    (a row at a time costs `num_users * hidden_units` multiplications).
    Training always minimizes I-AutoRec's loss (the
    squared error of the rated entries plus the penalty); the loss and
    metrics given to `compile` score rows in `evaluate` and for
    `validation_data`, without the penalty. `evaluate` warns when its
    rows are ratings the model stores (and so reads as inputs).
    Predictions are float32 under any dtype policy. `adapt(x, y)`
    replaces the stored ratings without training: new ratings of an item
    then change its prediction.

    A row whose user or item has no stored rating gets the mean of the
    stored ratings. The model keeps the whole `(num_items, num_users)`
    matrix: at most `MATRIX_LIMIT` entries (ml-1m holds 22 million).

    `fit`'s `validation_data` are (user, item) rows with their ratings:
    the model is evaluated on them after each epoch (`val_loss` and
    `val_` metrics), so `keras.callbacks.EarlyStopping` can choose the
    number of epochs (give it `mode="min"`: the callbacks see the item
    batches' model, which does not know the metric's direction); the L2
    penalty alone does not stop I-AutoRec from overfitting.

    Args:
        embeddings: Dict of two columns and their cardinalities (ids
            `0..n-1`): the users' column first, then the items'.
        hidden_units: Positive integer. The size of the code `h`.
            Defaults to `500`.
        l2: Non-negative float. The penalty `lambda` of the paper, per
            item (the training loss is a mean over items). Defaults to
            `100.0`.
        rating_range: Optional `(low, high)`: predictions are clipped to
            it. Defaults to `None`.
        **kwargs: Base `keras.Model` arguments, such as `name`.

    Example:

    ```python
    model = keras_catembed.ItemAutoencoder(
        {"user_id": 943, "movie_id": 1682}, rating_range=(1, 5)
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(x_train, y_train, epochs=18)
    model.predict(x_test)
    ```
    """

    # Rows per batch of `predict` and `evaluate` on arrays by default, and
    # the fewest a `RatingEnsemble` predicts it in.
    _predict_rows = _item_batches.ROWS_PER_BATCH

    def __init__(
        self,
        embeddings: Mapping[str, int],
        *,
        hidden_units: int = 500,
        l2: float = 100.0,
        rating_range: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            not isinstance(embeddings, collections.abc.Mapping)
            or len(embeddings) != 2
        ):
            raise ValueError(
                "`embeddings` expects a dict of two columns and their "
                "cardinalities, the users' first, e.g. {'user_id': 943, "
                f"'movie_id': 1682}}. Received: {embeddings!r}"
            )
        for column, cardinality in embeddings.items():
            _checks.column_name(column)
            _checks.positive_int(f"embeddings['{column}']", cardinality)
        self.columns = list(embeddings)
        self.user_column, self.item_column = self.columns
        self.num_users = int(embeddings[self.user_column])
        self.num_items = int(embeddings[self.item_column])
        self.hidden_units = _checks.positive_int("hidden_units", hidden_units)
        self.l2 = _checks.non_negative_float("l2", l2)
        self.rating_range = _inputs.check_rating_range(rating_range)
        if self.num_users * self.num_items > MATRIX_LIMIT:
            raise ValueError(
                "ItemAutoencoder keeps the dense matrix of ratings, at most "
                f"{MATRIX_LIMIT} entries. Received: {self.num_users} users "
                f"x {self.num_items} items = "
                f"{self.num_users * self.num_items}"
            )
        # The loss is a mean over items: lambda / 2 per item.
        penalty = keras.regularizers.L2(self.l2 / (2.0 * self.num_items))
        self.item_ratings = EntityEmbedding(
            self.num_items,
            self.num_users,
            embeddings_initializer="zeros",
            trainable=False,
            name=f"{self.item_column}_ratings",
        )
        self.item_ratings.set_column(self.item_column)
        self.encoder = keras.layers.Dense(
            self.hidden_units,
            activation="sigmoid",
            kernel_regularizer=penalty,
            name="encoder",
        )
        self.user_vectors = EntityEmbedding(
            self.num_users,
            self.hidden_units,
            embeddings_initializer="glorot_uniform",
            embeddings_regularizer=penalty,
            name=f"{self.user_column}_decoder",
        )
        self.user_vectors.set_column(self.user_column)
        self.user_bias = EntityEmbedding(
            self.num_users,
            1,
            embeddings_initializer="zeros",
            name=f"{self.user_column}_bias",
        )
        self.user_bias.set_column(self.user_column)
        self.item_ratings.build()
        self.encoder.build((None, self.num_users))
        self.user_vectors.build()
        self.user_bias.build()
        self.known_users = self.add_weight(
            shape=(self.num_users,),
            initializer="zeros",
            trainable=False,
            name="known_users",
        )
        self.known_items = self.add_weight(
            shape=(self.num_items,),
            initializer="zeros",
            trainable=False,
            name="known_items",
        )
        self.mean_rating = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="mean_rating"
        )
        self.built = True
        # The item-batch model `fit` trains: the same layers, kept out of
        # Keras's tracking (it owns no weights of its own).
        self.__dict__["_item_model"] = None

    @property
    def embedding_layers(self) -> dict[str, EntityEmbedding]:
        """The layer that checks each column's ids."""
        return {
            self.user_column: self.user_vectors,
            self.item_column: self.item_ratings,
        }

    @property
    def adapted(self) -> bool:
        """Whether `fit` or `adapt` has stored ratings."""
        return bool(np.any(keras.ops.convert_to_numpy(self.known_items)))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        inputs = _inputs.standardize_structure(self.columns, inputs)
        users, items = inputs[self.user_column], inputs[self.item_column]
        code = self._item_codes(items, training)
        vectors = self.user_vectors(users)
        rating = ops.sum(code * vectors, axis=-1, keepdims=True)
        rating = rating + self.user_bias(users)
        known = ops.take(
            self.known_users, self.user_vectors._clipped_rows(users)
        ) * ops.take(self.known_items, self.item_ratings._clipped_rows(items))
        rating = ops.where(
            ops.expand_dims(known, -1) > 0,
            rating,
            ops.cast(self.mean_rating, rating.dtype),
        )
        if self.rating_range is not None:
            rating = ops.clip(rating, *self.rating_range)
        # Ratings in float32 whatever the dtype policy computes in.
        return ops.cast(rating, "float32")

    def _item_codes(self, items: Any, training: bool | None) -> Any:
        """The code `h` of each row's item.

        A batch of at least half as many rows as there are items encodes
        every item once and gathers the codes: `num_items` encodings of
        the stored matrix instead of one per row (the same values, up to
        float rounding). `evaluate` on many rows, `fit`'s validation and
        a `RatingEnsemble`'s large batches take this way.
        """

        def each_row() -> Any:
            return self.encoder(self.item_ratings(items, training=training))

        def every_item() -> Any:
            rows, invalid = self.item_ratings.checked_rows(items)
            table = ops.cast(
                self.item_ratings.embeddings, self.item_ratings.compute_dtype
            )
            codes = ops.take(self.encoder(table), rows, axis=0)
            return _ids.nan_where_invalid(codes, invalid)

        if training or isinstance(items, keras.KerasTensor):
            return each_row()
        size = ops.shape(items)[0]
        if isinstance(size, int):
            return every_item() if 2 * size >= self.num_items else each_row()
        if keras.backend.backend() == "tensorflow":
            # A batch dimension only known when the graph runs.
            return ops.cond(2 * size >= self.num_items, every_item, each_row)
        # A symbolic dimension (JAX's export): any batch size.
        return each_row()

    def _decode_all(self, code: Any) -> Any:
        """Every user's rating of a batch of items' codes."""
        vectors = ops.cast(self.user_vectors.embeddings, code.dtype)
        bias = ops.cast(self.user_bias.embeddings, code.dtype)
        return ops.matmul(code, ops.transpose(vectors)) + ops.transpose(bias)

    def _check_fit_data(
        self, x: Any, y: Any, argument: str = ""
    ) -> tuple[Any, Any]:
        """`fit`'s checked `(x, y)`; raises naming `argument` if refused.

        `RatingEnsemble` calls it before any member trains.
        """
        try:
            return _stored_ratings.checked(self, x, y, "fit")
        except ValueError as error:
            if not argument:
                raise
            raise ValueError(f"`{argument}`: {error}") from error

    def _rows(self, column: str, x: Any) -> np.ndarray:
        return _stored_ratings.rows(self, column, x)

    def adapt(self, x: Any, y: Any) -> None:
        """Stores the ratings the model reads: row `i` of item `i`.

        Args:
            x: Dict of id arrays of the two columns.
            y: The ratings, one per row (non-zero: 0 marks no rating). A
                (user, item) pair given twice keeps its last rating.
        """
        _stored_ratings.store(
            self, *_stored_ratings.checked(self, x, y, "adapt")
        )

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: Any = None,
        validation_data: Any = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
    ) -> Any:
        """Stores the ratings of `(x, y)` and trains on them (see class).

        Args:
            x: Dict of id arrays of the two columns.
            y: The ratings, one per row.
            batch_size: Items per step. Defaults to 64.
            epochs: Number of passes over the items.
            verbose: As for `keras.Model.fit`.
            callbacks: Keras callbacks; they see the item-batch loss and,
                with `validation_data`, the row metrics `val_*`. Their
                `self.model` is the model of item batches, which shares
                this model's weights; its `save` and `save_weights` save
                this model (so `keras.callbacks.ModelCheckpoint` works).
            validation_data: Optional `(x_val, y_val)` rows, evaluated
                after each epoch with the compiled loss and metrics.
            shuffle: Whether to shuffle the items each epoch.
            initial_epoch: As for `keras.Model.fit`.

        Returns:
            A `keras.callbacks.History`.
        """
        _checks.require_compiled(self)
        _inputs.check_batch_size("batch_size", batch_size)
        x, y = self._check_fit_data(x, y)
        if validation_data is not None:
            if (
                not isinstance(validation_data, (tuple, list))
                or len(validation_data) != 2
            ):
                raise ValueError(
                    "`validation_data` expects a pair `(x_val, y_val)` of "
                    f"rows and ratings. Received: {type(validation_data)}"
                )
            x_val, y_val = validation_data
            validation_data = self._check_fit_data(
                x_val, y_val, "validation_data"
            )
        _checks.positive_int("epochs", epochs)
        _checks.non_negative_int("initial_epoch", initial_epoch)
        hooks = list(callbacks or [])
        for hook in hooks:
            if not isinstance(hook, keras.callbacks.Callback):
                raise ValueError(
                    "`callbacks` expects Keras callbacks. Received: "
                    f"{type(hook).__name__}"
                )
        if validation_data is not None:
            hooks.insert(0, _item_batches.RowValidation(self, validation_data))
        model = self._item_batch_model()
        stored = [v.numpy() for v in _stored_ratings.variables(self)]
        try:
            batches = _item_batches.ItemBatches(
                _stored_ratings.store(self, x, y), batch_size or 64, shuffle
            )
            return model.fit(
                batches,
                epochs=epochs,
                verbose=verbose,
                callbacks=hooks,
                initial_epoch=initial_epoch,
            )
        except BaseException:
            # The ratings the model read before a failed call.
            for variable, value in zip(
                _stored_ratings.variables(self), stored, strict=True
            ):
                variable.assign(value)
            raise

    def fit_rows(self, x: Any) -> int:
        """Examples one epoch of `fit` on `x` batches: its rated items.

        `Recipe` sizes its learning-rate schedule with it.
        """
        items = self._rows(self.item_column, x)
        return int(np.unique(items).size)

    @property
    def losses(self) -> list[Any]:
        # The L2 penalty trains the item-batch model (whose layers carry
        # it); `evaluate` and `val_loss` report the compiled loss alone.
        return []

    def _item_batch_model(self) -> keras.Model:
        model = self.__dict__["_item_model"]
        settings = {
            "optimizer": self.optimizer,
            "run_eagerly": self.run_eagerly,
            "jit_compile": self.jit_compile,
        }
        if model is None or any(
            getattr(model, key) is not value and getattr(model, key) != value
            for key, value in settings.items()
        ):
            model = _item_batches.ItemBatchModel(self)
            model.compile(loss=_item_batches.masked_squared_error, **settings)
            self.__dict__["_item_model"] = model
        return model

    def predict(
        self, x: Any, batch_size: int | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        """Predicts ratings of (user, item) rows, as `keras.Model.predict`.

        `batch_size` defaults to 65536 rows for a dict of arrays (Keras's
        own default is 32): a batch of at least half as many rows as
        there are items encodes every item once, so large batches do the
        least work. Other arguments are Keras's.
        """
        self._require_adapted("predict")
        x = _inputs.check_x(self, x, "predict")
        batch_size = self._rows_per_batch(x, batch_size)
        return super().predict(x, batch_size, *args, **kwargs)

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Scores (user, item) rows, as `keras.Model.evaluate`.

        With the compiled loss and metrics, without the L2 penalty; warns
        when the rows are ratings the model stores. `batch_size` defaults
        to 65536 rows for a dict of arrays, as for `predict`.
        """
        _checks.require_compiled(self)
        self._require_adapted("evaluate")
        x = _inputs.check_x(self, x, "evaluate")
        _inputs.check_y(y)
        _inputs.check_labelled_rows(self, x, y, kwargs.get("sample_weight"))
        _stored_ratings.warn_overlap(self, x, y)
        batch_size = self._rows_per_batch(x, batch_size)
        return super().evaluate(x, y, batch_size, *args, **kwargs)

    def _rows_per_batch(self, x: Any, batch_size: int | None) -> int | None:
        """`predict`'s and `evaluate`'s batch size: large for arrays.

        Keras's default of 32 rows would encode each row's item on its
        own; a batch of `_predict_rows` rows encodes every item once (see
        `_item_codes`).
        """
        if batch_size is None and isinstance(x, collections.abc.Mapping):
            return self._predict_rows
        return batch_size

    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude: Any = None,
        candidates: Any = None,
        user_column: str | None = None,
        item_column: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns the `k` best-scored items for each user, best first.

        As `RatingModel.recommend`: every candidate item is scored for
        every user, the pairs of `exclude` are left out, and the `k`
        highest predicted ratings are kept. Each candidate's code is
        computed once from its stored ratings, so the scores (equal to
        `predict` on the same pairs) are one matrix product; under a
        dtype policy that computes in less than float32, every pair goes
        through `predict` instead.

        Args:
            users: Array of user ids, or a dict (or pandas `DataFrame`)
                with the users' column.
            k: Positive integer. How many items per user. Defaults to 10.
            exclude: Optional dict (or `DataFrame`) with both columns:
                pairs never to recommend (typically the training ratings).
            candidates: Optional array of distinct item ids. Defaults to
                every item id `0..num_items-1`.
            user_column: String. The column of `users`. Defaults to the
                users' column (the model's first).
            item_column: String. The column ranked. Defaults to the items'
                column. Swap the two to rank users for items.

        Returns:
            A tuple `(item_ids, scores)` of NumPy arrays of shape
            `(len(users), k)`, best first (id `-1` and score NaN where
            fewer than `k` candidates remain).

        Raises:
            ValueError: before the model holds ratings, or as
                `RatingModel.recommend` for bad arguments.
        """
        ranked: tuple[np.ndarray, np.ndarray] = _recommend.recommend(
            self,
            users,
            k,
            exclude=exclude,
            candidates=candidates,
            user_column=user_column,
            item_column=item_column,
        )
        return ranked

    def _recommend_scorers(
        self,
    ) -> dict[str, tuple[type[_recommend.Scorer], type]]:
        """`recommend`'s fast scorer: the candidates' codes, once."""
        return {"grid": (_member_grids.AutoencoderGrid, ItemAutoencoder)}

    def _require_adapted(self, where: str) -> None:
        if not self.adapted:
            raise ValueError(
                f"`{where}` needs the model's ratings: call `fit(x, y)` or "
                "`adapt(x, y)` first."
            )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "embeddings": {
                    self.user_column: self.num_users,
                    self.item_column: self.num_items,
                },
                "hidden_units": self.hidden_units,
                "l2": self.l2,
                "rating_range": self.rating_range,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ItemAutoencoder":
        config = dict(config)
        if config.get("rating_range") is not None:
            config["rating_range"] = tuple(config["rating_range"])
        return cls(**config)
