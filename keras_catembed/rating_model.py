"""The `RatingModel`: id columns -> entity embeddings -> MLP -> a rating."""

import collections.abc
import functools
import numbers

import keras
import numpy as np
from keras import ops

from keras_catembed import _checks
from keras_catembed import _fast_fit
from keras_catembed import _frames
from keras_catembed import _implicit
from keras_catembed import _provenance
from keras_catembed import optimizers
from keras_catembed._implicit import ImplicitFeedback
from keras_catembed.entity_embedding import EntityEmbedding


@keras.saving.register_keras_serializable(package="keras_catembed")
class RatingModel(keras.Model):
    """Predicts a rating from any number of categorical id columns.

    Each column gets an `EntityEmbedding`; the vectors are combined by
    `interact` (concatenation by default) and fed to a multilayer perceptron
    with a linear output unit. With two columns and the defaults this is
    exactly the model of Kaggle's "Embeddings" course: one embedding per
    column, concatenation, `Dense(32, "relu")`, `Dense(4, "relu")`,
    `Dense(1)`.

    Two options make it a stronger recommender:

    - `bias_terms=True` adds a learned scalar bias for every id of every
      column to the output (the output unit's own bias is the global bias),
      as in biased matrix factorization.
    - `rating_range=(low, high)` bounds the output with a scaled sigmoid,
      `low + (high - low) * sigmoid(z)`. A range slightly wider than the
      ratings (e.g. `(0.5, 5.5)` for 1-5 stars) lets the extremes be reached.

    - `implicit` adds implicit feedback (the "++" of SVD++): a user is
      also described by the movies they rated, a movie by the users who
      rated it, whatever the ratings were. Each such column's vector gets
      `|N| ** -0.5` times the sum of learned vectors of the ids `N` it
      occurs with in the data given to `adapt`; call `model.adapt(x)` with
      the training inputs before `fit`.

    Inputs are a dict keyed by column name, each value of shape `(batch,)`
    or `(batch, 1)`. Array inputs to `fit`, `evaluate`, `predict` and the
    `*_on_batch` methods are checked before they enter a compiled graph:
    missing or unknown columns, unknown ids, fractional-float, bool or
    string ids, and (in `fit`) NaN or infinite targets raise a `ValueError`
    that names the column (or target row) and the offending value, on every
    backend. Wherever a dict of columns is expected, a pandas `DataFrame`
    works too: the model's columns are taken by name (others are ignored,
    a missing one raises), and `y` may be a `Series`.

    Subclasses can override two extension points:

    - `embed(inputs, training=None)` returns a dict of per-column vectors.
    - `interact(embedded)` combines that dict into one tensor of shape
      `(batch, features)`.

    Register a subclass with `keras.saving.register_keras_serializable` and
    it saves and loads like the base class.

    The output unit computes in float32 under a mixed precision policy, as
    the Keras mixed precision guide advises.

    Args:
        embeddings: Dict mapping each column name to its cardinality (an
            integer: ids are `0..n-1`, size from the `"auto"` rule) or to a
            configured `keras_catembed.EntityEmbedding`.
        hidden_units: Sequence of integers. Width of each hidden layer.
            Defaults to `(32, 4)`.
        activation: Activation of the hidden layers. Defaults to `"relu"`.
        dropout: Float in [0, 1). Dropout after each hidden layer. Defaults
            to `0.0`.
        bias_terms: Boolean. Whether to add per-id bias terms. Defaults to
            `False`.
        rating_range: Optional pair `(low, high)` with `low < high`. Bounds
            the output. Defaults to `None` (a linear output).
        implicit: Optional dict mapping a column to the column whose ids
            describe it (`{"user_id": "movie_id"}`: each user is also
            described by the movies it occurs with), or `True` for a
            two-column model (each column described by the other). The
            implicit vectors have the size of the described column's
            embedding and take its initializer and regularizer. Defaults to
            `None` (no implicit feedback).
        neighborhood: Like `implicit` (a dict or `True`), but each pair is
            weighted by its rating: a user's vector is followed by
            `|R(u)| ** -0.5 * sum((r[u, j] - mean) * z[j])` over the movies
            `j` it rated, with learned vectors `z` of the same size and
            `mean` the mean adapted rating (the neighbourhood term of
            Koren's integrated model), so the column's vector is twice as
            wide. The rating being predicted is left out of its own row's
            sum, so training ratings do not leak into their inputs. Call
            `model.adapt(x, y)` with the training inputs and ratings before
            `fit`. Defaults to `None`.
        max_pairs_per_id: Optional positive integer. Caps the pairs of
            each id of `implicit` and `neighborhood`: an id seen with more
            ids keeps a fixed random sample of this many (drawn in
            `adapt`), and its sum is normalized by the kept count. A step
            then costs at most this many lookups per row, whatever the
            popularity of its ids, and the pairs are held as per-id lists
            (memory: ids times the cap). `None` keeps every pair: as a
            dense matrix when `num_targets * num_sources <= 2**26`, else
            as lists of at most 256 pairs per id (`adapt` warns when it
            leaves pairs out). Defaults to `None`.
        **kwargs: Base model arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Dict of integer id tensors keyed by column name.
        training: Python boolean. Whether dropout is active.

    Returns:
        A float tensor of shape `(batch, 1)`: the predicted ratings.

    Example:

    ```python
    model = keras_catembed.RatingModel(
        {"user_id": 943, "movie_id": 1682},
        bias_terms=True,
        rating_range=(0.5, 5.5),
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit({"user_id": users, "movie_id": movies}, ratings, epochs=5)
    ```

    Reference:
        - [Koren, 2008. Factorization Meets the Neighborhood: a Multifaceted
          Collaborative Filtering Model](https://doi.org/10.1145/1401890.1401944)
        - [Guo & Berkhahn, 2016. Entity Embeddings of Categorical
          Variables](https://arxiv.org/abs/1604.06737)
        - [Koren, Bell & Volinsky, 2009. Matrix Factorization Techniques for
          Recommender Systems](https://doi.org/10.1109/MC.2009.263)
    """

    def __init__(
        self,
        embeddings,
        hidden_units=(32, 4),
        *,
        activation="relu",
        dropout=0.0,
        bias_terms=False,
        rating_range=None,
        implicit=None,
        neighborhood=None,
        max_pairs_per_id=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.columns = _check_columns(embeddings)
        self.hidden_units = _check_hidden_units(hidden_units)
        self.activation = keras.activations.get(activation)
        self.dropout = _checks.rate("dropout", dropout)
        if not isinstance(bias_terms, bool):
            raise ValueError(
                f"`bias_terms` must be a bool. Received: bias_terms="
                f"{bias_terms!r}"
            )
        self.bias_terms = bias_terms
        self.rating_range = _check_rating_range(rating_range)

        self.embedding_layers = {}
        self.bias_layers = {}
        # Columns given as a bare cardinality are saved as that integer.
        self._cardinalities = {}
        for column in self.columns:
            spec = embeddings[column]
            if isinstance(spec, EntityEmbedding):
                layer = spec
            else:
                self._cardinalities[column] = int(spec)
                layer = EntityEmbedding(
                    input_dim=spec,
                    name=f"{column}_embedding",
                    dtype=self.dtype_policy,
                )
            layer._column = column
            self.embedding_layers[column] = layer
            if bias_terms:
                bias = EntityEmbedding(
                    input_dim=layer.input_dim,
                    output_dim=1,
                    vocabulary=layer.vocabulary,
                    num_oov_indices=layer.num_oov_indices,
                    embeddings_initializer="zeros",
                    name=f"{column}_bias",
                    dtype=self.dtype_policy,
                )
                bias._column = column
                self.bias_layers[column] = bias

        self.implicit = _check_implicit(implicit, self.columns)
        self.neighborhood = _check_implicit(
            neighborhood, self.columns, "neighborhood"
        )
        self.max_pairs_per_id = _implicit.check_max_pairs_per_id(
            max_pairs_per_id
        )
        # Each described column gets a table of source-id vectors of its
        # own embedding size, initializer and regularizer.
        self.implicit_layers = {}
        self.neighborhood_layers = {}
        for pairs, layers, rated in (
            (self.implicit, self.implicit_layers, False),
            (self.neighborhood, self.neighborhood_layers, True),
        ):
            for target, source in pairs.items():
                layer = self.embedding_layers[target]
                layers[target] = ImplicitFeedback(
                    num_targets=layer.num_rows,
                    num_sources=self.embedding_layers[source].num_rows,
                    output_dim=layer.output_dim,
                    embeddings_initializer=keras.initializers.get(
                        keras.initializers.serialize(
                            layer.embeddings_initializer
                        )
                    ),
                    embeddings_regularizer=layer.embeddings_regularizer,
                    rated=rated,
                    max_pairs_per_id=self.max_pairs_per_id,
                    name=f"{target}_{'neighborhood' if rated else 'implicit'}",
                    dtype=self.dtype_policy,
                )

        self.hidden_layers = []
        self.dropout_layers = []
        for index, units in enumerate(self.hidden_units):
            self.hidden_layers.append(
                keras.layers.Dense(
                    units,
                    activation=self.activation,
                    name=f"hidden_{index}",
                    dtype=self.dtype_policy,
                )
            )
            if self.dropout > 0:
                self.dropout_layers.append(
                    keras.layers.Dropout(
                        self.dropout,
                        name=f"hidden_{index}_dropout",
                        dtype=self.dtype_policy,
                    )
                )
        compute_dtype = keras.backend.standardize_dtype(
            self.dtype_policy.compute_dtype
        )
        self.output_layer = keras.layers.Dense(
            1,
            name="rating",
            dtype=(
                "float32"
                if compute_dtype in ("float16", "bfloat16")
                else self.dtype_policy
            ),
        )

    def build(self, input_shape=None):
        """Builds every sublayer by tracing `call` on symbolic int ids.

        The input shapes follow from the columns, so `input_shape` may be
        omitted; a given one is checked against the columns.
        """
        if input_shape is not None:
            self._standardize_structure(input_shape, shapes=True)
        _checks.check_weight_bytes(
            f"RatingModel '{self.name}'", self._weight_sizes()
        )
        symbolic = {
            column: keras.KerasTensor((None,), dtype="int32", name=column)
            for column in self.columns
        }
        self.call(symbolic)

    def build_from_config(self, config):
        # Keras's default turns a failed build into a warning and then
        # loads the weights that fit: a silently partial model. A saved
        # model is built from its columns alone, and a failure is raised.
        self.build()

    def _weight_sizes(self):
        """A lower bound of each weight's number of values, before build."""
        sizes = {}
        for column, layer in self.embedding_layers.items():
            sizes[f"the embedding of '{column}'"] = (
                layer.num_rows * layer.output_dim
            )
        for kind, layers in (
            ("implicit", self.implicit_layers),
            ("neighborhood", self.neighborhood_layers),
        ):
            for column, layer in layers.items():
                pairs = layer.num_sources if layer.dense else 2 * layer.width
                sizes[f"the {kind} pairs of '{column}'"] = (
                    layer.num_targets * pairs
                )
                sizes[f"the {kind} table of '{column}'"] = (
                    layer.num_sources * layer.output_dim
                )
        # Each hidden layer reads at least one value per input column.
        width = len(self.columns)
        for index, units in enumerate(self.hidden_units):
            sizes[f"hidden layer {index}"] = width * units
            width = units
        return sizes

    def embed(self, inputs, training=None):
        """Looks up the vector of each column.

        Args:
            inputs: Dict of id tensors of shape `(batch,)`, keyed by column.
            training: Python boolean. Whether entity dropout is active.

        Returns:
            Dict of tensors of shape `(batch, output_dim)`, keyed by column.
            A column with implicit feedback gets the sum of its own vector
            and its implicit-feedback vector; a column with a
            `neighborhood` is followed by its neighbourhood vector (shape
            `(batch, 2 * output_dim)`).
        """
        embedded = {}
        rows = {}

        def rows_of(column):
            if column not in rows:
                layer = self.embedding_layers[column]
                rows[column] = layer._clipped_rows(inputs[column])
            return rows[column]

        for column in self.columns:
            layer = self.embedding_layers[column]
            vector = layer(inputs[column], training=training)
            if column in self.implicit_layers:
                implicit = self.implicit_layers[column](rows_of(column))
                vector = vector + ops.cast(implicit, vector.dtype)
            if column in self.neighborhood_layers:
                source = self.neighborhood[column]
                neighbors = self.neighborhood_layers[column](
                    rows_of(column), rows_of(source)
                )
                vector = ops.concatenate(
                    [vector, ops.cast(neighbors, vector.dtype)], axis=-1
                )
            embedded[column] = vector
        return embedded

    def adapt(self, x, y=None):
        """Records which ids occur together, for the `implicit` columns.

        For each `target: source` pair of `implicit`, each target id is then
        described, besides its own vector, by the normalized sum of learned
        vectors of the source ids it occurs with in `x`; for those of
        `neighborhood`, by the sum weighted by the ratings `y`. Call it
        once with the training data, before `fit`; calling it again
        replaces the pairs. The pairs are saved with the model.

        Args:
            x: Dict of id arrays keyed by column name (or a pandas
                `DataFrame`), like the inputs of `fit` (every column of
                `implicit` and `neighborhood` is needed).
            y: Array of the ratings of `x`'s rows. Required with
                `neighborhood`, unused otherwise.

        Raises:
            ValueError: if the model has no `implicit` or `neighborhood`
                columns, a column is missing, an id is one the column
                cannot embed, or `y` is missing, of another length or not
                finite.
        """
        if not self.implicit and not self.neighborhood:
            raise ValueError(
                "`adapt` records pairs for implicit feedback, but this "
                "RatingModel has none: pass `implicit=` or `neighborhood=` "
                "to the constructor."
            )
        if self.neighborhood and y is None:
            raise ValueError(
                "This RatingModel weighs its `neighborhood` pairs by their "
                "ratings: call `adapt(x, y)` with the training ratings."
            )
        if _frames.is_dataframe(x):
            x = _frames.known_columns(x, self.columns)
        y = _frames.values(y)
        if not isinstance(x, collections.abc.Mapping):
            raise ValueError(
                "`adapt` expects a dict of id arrays keyed by column name. "
                f"Received: {type(x).__name__}"
            )
        needed = sorted(
            set(self.implicit)
            | set(self.implicit.values())
            | set(self.neighborhood)
            | set(self.neighborhood.values())
        )
        missing = [column for column in needed if column not in x]
        if missing:
            raise ValueError(
                f"`adapt` needs the columns {needed}. Missing: {missing}"
            )
        rows = {}
        for column in needed:
            if not _is_array_like(x[column]):
                raise ValueError(
                    f"`adapt` expects arrays. Column {column!r} is a "
                    f"{type(x[column]).__name__}"
                )
            _check_column_shape(column, np.shape(x[column]))
            layer = self.embedding_layers[column]
            layer.check_ids(x[column])
            ids = np.asarray(ops.convert_to_numpy(x[column])).reshape(-1)
            rows[column] = ops.convert_to_numpy(
                layer._rows(ops.convert_to_tensor(ids.astype("int32")))[0]
            )
        sizes = {len(rows[column]) for column in needed}
        if len(sizes) > 1:
            raise ValueError(
                "`adapt` expects columns of one length. Received lengths "
                f"{ {column: len(rows[column]) for column in needed} }"
            )
        for target, source in self.implicit.items():
            self.implicit_layers[target].adapt(rows[target], rows[source])
        if self.neighborhood:
            if not _is_array_like(y):
                raise ValueError(
                    "`adapt` expects `y` to be an array of ratings. "
                    f"Received: {type(y).__name__}"
                )
            ratings = np.asarray(ops.convert_to_numpy(y), "float64")
            ratings = ratings.reshape(-1)
            if ratings.size != sizes.pop():
                raise ValueError(
                    f"`adapt` expects one rating per row: {ratings.size} "
                    f"ratings for {len(rows[needed[0]])} rows"
                )
            for target, source in self.neighborhood.items():
                self.neighborhood_layers[target].adapt(
                    rows[target], rows[source], ratings
                )
        # Compiled functions hold the previous pairs as constants.
        self._reset_compiled()

    def _reset_compiled(self):
        self.train_function = None
        self.test_function = None
        self.predict_function = None
        self.__dict__["_fast_fit_runners"] = {}
        self.__dict__["_step_functions"] = {}
        self.__dict__["_step_modes"] = {}

    def interact(self, embedded):
        """Combines the per-column vectors into one feature tensor.

        The default concatenates them in the order of `embeddings`.
        Override it to build other interactions (dot products, crosses).

        Args:
            embedded: Dict of tensors of shape `(batch, dim)` from `embed`.

        Returns:
            A tensor of shape `(batch, features)`.
        """
        return ops.concatenate(
            [embedded[column] for column in self.columns], axis=-1
        )

    def __call__(self, inputs, *args, **kwargs):
        # Keras converts NumPy inputs to tensors before `call` (int64 ids
        # would wrap to 32 bits on JAX): check them as they are first.
        if isinstance(inputs, collections.abc.Mapping):
            for column, layer in self.embedding_layers.items():
                value = inputs.get(column)
                if not layer._trusted_ids and isinstance(
                    value, (np.ndarray, np.generic, list)
                ):
                    layer.check_ids(value)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None):
        inputs = self._standardize_structure(inputs)
        features = self.interact(self.embed(inputs, training=training))
        for index, dense in enumerate(self.hidden_layers):
            features = dense(features)
            if self.dropout_layers:
                features = self.dropout_layers[index](
                    features, training=training
                )
        logits = self.output_layer(features)
        if self.bias_terms:
            for column in self.columns:
                bias = self.bias_layers[column](inputs[column])
                logits = logits + ops.cast(bias, logits.dtype)
        if self.rating_range is not None:
            low, high = self.rating_range
            logits = low + (high - low) * ops.sigmoid(logits)
        return logits

    def compute_output_shape(self, input_shape):
        first = input_shape[self.columns[0]]
        return (first[0], 1)

    def recommend(
        self,
        users,
        k=10,
        *,
        exclude=None,
        candidates=None,
        user_column=None,
        item_column=None,
    ):
        """Returns the `k` best-scored items for each user, best first.

        Every candidate item is scored for every user, the pairs of
        `exclude` are left out, and the `k` highest predicted ratings are
        kept. The scores equal `predict` on the same pairs, by one of
        three paths:

        - When the model's class does not override `embed`, `call` or
          `__call__`, each user's and each candidate's column vectors are
          computed once, and only `interact` (which may be overridden), the
          hidden layers, the output unit, the biases and the range run over
          the user x item grid. A `neighborhood` between the user and item
          columns is summed whole, and the pairs whose own rating is in the
          adapted data (which the model leaves out of its sums) are scored
          through `predict`.
        - A `keras_catembed.DotRatingModel` with no hidden layers and no
          `neighborhood` is ranked by exact brute-force retrieval
          (`keras_rs.layers.BruteForceRetrieval`, with the `ranking`
          extra installed).
        - Otherwise (an overridden `embed` or `call`), every user-item row
          goes through `predict`, in batches of about 2**20 rows.

        Args:
            users: Array of user ids (of `user_column`), or a dict (or
                pandas `DataFrame`) with that column and, for a model with
                more than two columns, each other column's value per user
                (e.g. the user's age group).
            k: Positive integer. How many items per user. Defaults to 10.
            exclude: Optional dict (or pandas `DataFrame`) with
                `user_column` and `item_column` arrays: pairs never to
                recommend (typically the training ratings). Defaults to
                `None`.
            candidates: Optional array of distinct item ids to choose from.
                Defaults to every id of `item_column` (its vocabulary, or
                `0..n-1`).
            user_column: String. The column of `users`. Defaults to the
                model's first column (required with more than two
                columns).
            item_column: String. The column of the items. Defaults to the
                model's second column (required with more than two
                columns).

        Returns:
            A tuple `(item_ids, scores)` of NumPy arrays of shape
            `(len(users), k)`, best first. Where fewer than `k` candidates
            remain for a user after `exclude`, the last places hold the id
            `-1` and the score NaN.

        Raises:
            ValueError: for an unknown column, a `k` that is not a positive
                integer or exceeds the candidates, ids the model cannot
                embed, or a malformed `exclude`; nothing is computed then.

        Example:

        ```python
        items, scores = model.recommend(
            [196, 186], k=10, exclude={"user_id": u, "movie_id": m}
        )
        ```
        """
        from keras_catembed import _recommend

        return _recommend.recommend(
            self,
            users,
            k,
            exclude=exclude,
            candidates=candidates,
            user_column=user_column,
            item_column=item_column,
        )

    @classmethod
    def from_preset(cls, preset, embeddings=None, **overrides):
        """Creates a model from a preset: a name, or a preset folder.

        See `keras_catembed.presets` for the names. The model part of a
        preset holds `RatingModel` and `EntityEmbedding` arguments; its
        training recipe (`keras_catembed.training.Recipe`) is set as
        `model.recipe`: `model.recipe.fit(model, x, y)` compiles and
        trains the model with it. A folder written by
        `keras_catembed.presets.save_to_preset` may also hold weights,
        which are loaded.

        Args:
            preset: String. A key of `keras_catembed.presets.PRESETS`, or
                the path of a preset folder.
            embeddings: Dict mapping each column name to its cardinality.
                Optional for a preset folder, which records them.
            **overrides: Values replacing those of the preset's model part:
                `RatingModel` arguments (e.g. `hidden_units=[64]`) or
                `EntityEmbedding` arguments for every column (e.g.
                `output_dim=16`). `load_weights=False` skips the weights of
                a preset folder.

        Returns:
            An uncompiled `RatingModel`, with `model.recipe`.

        Example:

        ```python
        model = keras_catembed.RatingModel.from_preset(
            "course", {"user_id": 943, "movie_id": 1682})
        model.recipe.fit(model, x_train, y_train)
        ```
        """
        from keras_catembed import presets

        return presets.from_preset(preset, embeddings, cls, **overrides)

    # Input checks -----------------------------------------------------------

    def _standardize_structure(self, inputs, shapes=False):
        """Checks the column keys and returns a dict of `(batch,)` ids."""
        if not isinstance(inputs, collections.abc.Mapping):
            raise ValueError(
                "RatingModel expects a dict keyed by column name, with "
                f"columns {self.columns}. Received: {type(inputs).__name__}"
            )
        missing = [column for column in self.columns if column not in inputs]
        unknown = [key for key in inputs if key not in self.columns]
        if missing or unknown:
            raise ValueError(
                f"RatingModel expects the columns {self.columns}. Missing: "
                f"{missing}; unknown: {unknown}."
            )
        if shapes:
            return inputs
        standardized = {}
        for column in self.columns:
            value = inputs[column]
            if len(_check_column_shape(column, value.shape)) == 2:
                value = ops.reshape(value, (-1,))
            standardized[column] = value
        return standardized

    def _check_x(self, x, where="predict"):
        """Checks array inputs before they enter a compiled graph.

        `where` names the calling method in the errors.
        """
        if x is None:
            return x
        if _frames.is_dataframe(x):
            x = _frames.columns(x, self.columns, where)
        if not isinstance(x, collections.abc.Mapping):
            if _is_array_like(x):
                self._standardize_structure(x)
            return x
        self._standardize_structure(x, shapes=True)
        for column in self.columns:
            value = x[column]
            if not _is_array_like(value):
                if value is None or not hasattr(value, "shape"):
                    raise ValueError(
                        f"Column '{column}' is "
                        f"{'None' if value is None else type(value).__name__}"
                        ". Expected an array of ids of shape (batch,) or "
                        "(batch, 1)."
                    )
                continue
            shape = _check_column_shape(column, np.shape(value))
            if shape[0] == 0:
                raise ValueError(
                    f"`{where}` received no samples: column '{column}' has "
                    "0 rows. Expected at least one row."
                )
            self.embedding_layers[column].check_ids(value)
        return x

    @staticmethod
    def _check_y(y, name="y"):
        if y is None or not _is_array_like(y):
            return
        values = np.asarray(ops.convert_to_numpy(y))
        if values.dtype.kind not in "iufb":
            raise ValueError(
                f"`{name}` must hold numeric ratings. Received dtype "
                f"{values.dtype}"
            )
        if not (
            values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)
        ):
            raise ValueError(
                f"`{name}` must have shape (n,) or (n, 1): one rating per "
                f"row. Received: shape={values.shape}"
            )
        _check_finite(name, values, "target", "Targets")

    def _check_validation_data(self, validation_data):
        if validation_data is None or not isinstance(
            validation_data, (tuple, list)
        ):
            # A dataset or generator: Keras checks its structure.
            return validation_data
        if not 2 <= len(validation_data) <= 3 or validation_data[1] is None:
            raise ValueError(
                "`validation_data` must be a tuple (x, y) or (x, y, "
                "sample_weight), with `y` the ratings, or a dataset. "
                f"Received a {type(validation_data).__name__} of "
                f"{len(validation_data)} item(s)"
                + (" with y=None" if len(validation_data) > 1 else "")
            )
        x_val = self._check_x(validation_data[0], "fit")
        rest = [
            _frames.values(value, name)
            for value, name in zip(
                validation_data[1:],
                ["validation_data y", "validation_data sample_weight"],
                strict=False,
            )
        ]
        self._check_y(rest[0], "validation_data y")
        if len(rest) == 2:
            _check_sample_weight(rest[1], "validation_data sample_weight")
        return (x_val, *rest)

    def compile(self, optimizer="rmsprop", *args, **kwargs):
        super().compile(optimizer, *args, **kwargs)
        # Compiled steps belong to this compilation.
        self._reset_compiled()
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        sparse = isinstance(inner, optimizers.SparseAdam)
        for layer in _fast_fit.table_layers(self):
            layer._set_row_regularization(sparse)
        for layer in _fast_fit.list_layers(self):
            layer._set_row_regularization(sparse)

    def compile_from_config(self, config):
        # `compile` above only adds to `keras.Model.compile`, so a saved
        # compile config restores as `keras.Model` restores it (Keras skips
        # that for a model with its own `compile`).
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
        *,
        fast="auto",
    ):
        """Trains the model; see `keras.Model.fit` for the arguments.

        Arrays are checked before training (see the class docstring). With
        a dict of in-memory arrays, `fit` then runs a device loop: the data
        stays on the device, each epoch is shuffled there, many steps run
        per compiled call (the model's `steps_per_execution`, or, when that
        is 1, a twentieth of the epoch in the first epoch, which is timed,
        then about a second of steps, at most half the epoch and about
        2**20 samples), and the per-step id checks are skipped. With
        `keras_catembed.optimizers.SparseAdam` each step touches only the
        table rows of its batch. Callbacks, the History, the progress bar
        and validation behave as in `keras.Model.fit` with that
        `steps_per_execution`: the bar and `on_train_batch_end` (with the
        index of each call's last step) advance after every call.

        Args:
            fast: `"auto"` (default) uses the device loop where it applies:
                array inputs without `sample_weight`, `class_weight` or
                `steps_per_epoch`, no eager mode, and no distribution or
                `tf.distribute` strategy; other calls run the stock
                `keras.Model.fit`. `True` requires the device loop (a
                `ValueError` says why it cannot run); `False` always runs
                the stock `fit`.
        """
        _check_batch_size("batch_size", batch_size)
        _check_batch_size("validation_batch_size", validation_batch_size)
        x = self._check_x(x, "fit")
        y = _frames.values(y)
        sample_weight = _frames.values(sample_weight, "sample_weight")
        self._check_y(y)
        _check_sample_weight(sample_weight)
        validation_data = self._check_validation_data(validation_data)
        kwargs = dict(
            batch_size=batch_size,
            epochs=epochs,
            verbose=verbose,
            callbacks=callbacks,
            validation_split=validation_split,
            validation_data=validation_data,
            shuffle=shuffle,
            initial_epoch=initial_epoch,
            validation_batch_size=validation_batch_size,
            validation_freq=validation_freq,
        )
        slow = dict(
            class_weight=class_weight,
            sample_weight=sample_weight,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
        )
        if not (fast is True or fast is False or fast == "auto"):
            raise ValueError(
                f'`fast` must be "auto", True or False. Received: fast={fast!r}'
            )
        reason = None if fast is False else _fast_fit.blocker(self, x, y, slow)
        if fast is True and reason is not None:
            raise ValueError(
                f"`fast=True` needs in-memory array inputs and a plain "
                f"training set-up, but {reason}."
            )
        if fast is False or reason is not None:
            history = self._run("train", x, super().fit, x, y, **kwargs, **slow)
        else:
            history = _fast_fit.fit(self, x, y, **kwargs)
        _unshare_ema_buffers(self)
        _provenance.record(self, x, y, validation_split, validation_data)
        return history

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        *args,
        **kwargs,
    ):
        _check_batch_size("batch_size", batch_size)
        x = self._check_x(x, "evaluate")
        y = _frames.values(y)
        sample_weight = _frames.values(sample_weight, "sample_weight")
        self._check_y(y)
        _check_sample_weight(sample_weight)
        _provenance.warn_overlap(self, x, y)
        return self._run(
            "test",
            x,
            super().evaluate,
            x,
            y,
            batch_size,
            verbose,
            sample_weight,
            *args,
            **kwargs,
        )

    def predict(self, x, batch_size=None, *args, **kwargs):
        _check_batch_size("batch_size", batch_size)
        x = self._check_x(x, "predict")
        return self._run(
            "predict", x, super().predict, x, batch_size, *args, **kwargs
        )

    def train_on_batch(self, x, y=None, sample_weight=None, *args, **kwargs):
        x = self._check_x(x, "train_on_batch")
        y = _frames.values(y)
        sample_weight = _frames.values(sample_weight, "sample_weight")
        self._check_y(y)
        _check_sample_weight(sample_weight)
        return self._run(
            "train",
            x,
            super().train_on_batch,
            x,
            y,
            sample_weight,
            *args,
            **kwargs,
        )

    def test_on_batch(self, x, y=None, sample_weight=None, *args, **kwargs):
        x = self._check_x(x, "test_on_batch")
        y = _frames.values(y)
        sample_weight = _frames.values(sample_weight, "sample_weight")
        self._check_y(y)
        _check_sample_weight(sample_weight)
        return self._run(
            "test",
            x,
            super().test_on_batch,
            x,
            y,
            sample_weight,
            *args,
            **kwargs,
        )

    def predict_on_batch(self, x):
        x = self._check_x(x, "predict_on_batch")
        return self._run("predict", x, super().predict_on_batch, x)

    def _run(self, kind, x, method, *args, **kwargs):
        """Runs a Keras loop, without per-step id checks for checked arrays.

        Keras caches one compiled function per kind (`train`, `test`,
        `predict`); this keeps two, one traced with the in-graph id checks
        (for datasets and generators, which `_check_x` cannot see) and one
        without (for arrays `_check_x` has checked), and installs the one
        the input needs.

        A call that fails leaves the model as it was. Keras's JAX trainer
        detaches the variables' values while its loop runs and donates them
        to each compiled step, so an error inside a step (an in-graph id
        check, say) would otherwise leave every variable empty. Inputs that
        were not checked up front can fail in the graph, so their call
        first copies the variables (and restores them on failure, on every
        backend: a stream that fails at its tenth batch trains nothing).
        """
        trusted = self._checked(x)
        attribute = f"{kind}_function"
        functions = self.__dict__.setdefault("_step_functions", {})
        modes = self.__dict__.setdefault("_step_modes", {})
        if modes.get(kind, trusted) != trusted:
            functions[(kind, modes[kind])] = getattr(self, attribute)
            setattr(self, attribute, functions.pop((kind, trusted), None))
        modes[kind] = trusted
        # JAX caches traces by function, and Keras jits the bound step
        # method: build the unchecked variant from a distinct function.
        step = f"{kind}_step"
        override = (
            trusted
            and keras.backend.backend() == "jax"
            and getattr(self, attribute) is None
        )
        if override:
            self.__dict__[step] = functools.partial(
                getattr(type(self), step), self
            )
        saved = _saved_state(self, copy=not trusted)
        try:
            with _fast_fit.trusted_ids(self, trusted):
                return method(*args, **kwargs)
        except BaseException:
            _restore_state(self, saved)
            raise
        finally:
            if override:
                del self.__dict__[step]

    def _checked(self, x):
        """Whether `_check_x` has checked every column of `x`."""
        return isinstance(x, collections.abc.Mapping) and all(
            _is_array_like(x.get(column)) for column in self.columns
        )

    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        **kwargs,
    ):
        """Exports the model for inference; see `keras.Model.export`.

        Without `input_signature`, the served function takes one dict of
        int64 id vectors of shape `(batch,)`, keyed by column name (raw ids
        for a column with a `vocabulary`), and returns the ratings, shape
        `(batch, 1)`. It works after `fit`, `predict` or loading, and on
        JAX too (through `jax2tf`; TensorFlow must be installed). The
        served graph checks ids: from TensorFlow an unknown id fails the
        call; from JAX its rating is NaN (and ids are read as int32). On
        torch, a SavedModel export raises: export from TensorFlow or JAX.

        Example:

        ```python
        model.export("rating_model")
        served = tf.saved_model.load("rating_model")
        served.serve({"user_id": users, "movie_id": movies})
        ```
        """
        from keras_catembed import _export

        return _export.export(
            self, filepath, format, verbose, input_signature, **kwargs
        )

    # Serialization ----------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        embeddings = {}
        for column in self.columns:
            if column in self._cardinalities:
                embeddings[column] = self._cardinalities[column]
            else:
                embeddings[column] = keras.saving.serialize_keras_object(
                    self.embedding_layers[column]
                )
        config.update(
            {
                "embeddings": embeddings,
                "hidden_units": list(self.hidden_units),
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "bias_terms": self.bias_terms,
                "rating_range": (
                    None
                    if self.rating_range is None
                    else list(self.rating_range)
                ),
                "implicit": dict(self.implicit) or None,
                "neighborhood": dict(self.neighborhood) or None,
                "max_pairs_per_id": self.max_pairs_per_id,
            }
        )
        # Saved only when set, so untrained configs stay as they were.
        if self.training_fingerprint is not None:
            config["training_fingerprint"] = _provenance.to_config(
                self.training_fingerprint
            )
        if self.data_source is not None:
            config["data_source"] = dict(self.data_source)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["embeddings"] = {
            column: (
                keras.saving.deserialize_keras_object(spec)
                if isinstance(spec, dict)
                else spec
            )
            for column, spec in config["embeddings"].items()
        }
        fingerprint = config.pop("training_fingerprint", None)
        data_source = config.pop("data_source", None)
        model = cls(**config)
        model.__dict__["_training_fingerprint"] = _provenance.from_config(
            fingerprint
        )
        model.data_source = data_source
        return model

    # Provenance -------------------------------------------------------------

    @property
    def training_fingerprint(self):
        """A fixed-size summary of the rows `fit` trained on, or None.

        Each `fit` call on in-memory arrays adds its training rows (ids in
        column order and rating; `validation_split` rows excluded): a
        dict of `columns`, `rows` (count), `exact` and `hashes` (the
        8192 smallest distinct 64-bit row hashes, a bottom-k sketch). It
        is saved in the model's config. `training_overlap` and `evaluate`
        use it.
        """
        return self.__dict__.get("_training_fingerprint")

    @property
    def data_source(self):
        """A dict naming the data the model was trained on, or None.

        Free-form JSON values set by the caller (`catembed train` records
        `dataset`, `data_dir`, `split`, `test_fraction`, `seed` and
        `max_rows`), saved in the model's config.
        """
        return self.__dict__.get("_data_source")

    @data_source.setter
    def data_source(self, value):
        self.__dict__["_data_source"] = _provenance.check_data_source(value)

    def training_overlap(self, x, y):
        """Estimates the share of rows `(x, y)` the model was trained on.

        A row counts when its ids and rating equal those of a row `fit`
        trained on. With up to 8192 distinct training rows the answer is
        exact; beyond, it rests on the test rows whose hash falls under
        the fingerprint's largest hash (about `8192 / training rows` of
        them, e.g. 2,000 of 20,000 test rows after training on 80,000).

        Args:
            x: Dict of id arrays keyed by column name.
            y: Array of ratings, one per row.

        Returns:
            A float in [0, 1], or None when the model has no fingerprint
            (it was not trained on arrays) or no row could be tested.
        """
        fingerprint = self.training_fingerprint
        if fingerprint is None:
            return None
        x = self._check_x(x, "training_overlap")
        self._check_y(y)
        return _provenance.overlap(fingerprint, x, y)[0]


def _state_variables(model):
    """Every variable a Keras loop reads or writes, each once."""
    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        variables += list(optimizer.variables)
    variables += list(getattr(model, "metrics_variables", []))
    unique = {}
    for variable in variables:
        unique.setdefault(id(variable), variable)
    return list(unique.values())


def _live(value):
    """Whether `value` holds data (not None, not a donated JAX buffer)."""
    if value is None:
        return False
    is_deleted = getattr(value, "is_deleted", None)
    return not (callable(is_deleted) and is_deleted())


def _saved_state(model, copy):
    """The variables' values before a Keras loop, to restore on failure.

    With `copy`, the values are copied: a compiled step may fail after
    earlier steps changed them, or (JAX) after its inputs were donated.
    Without, on JAX, the values are only referenced, for a loop that fails
    before its first step runs.
    """
    if not model.built:
        return None
    variables = _state_variables(model)
    if copy:
        if keras.backend.backend() == "tensorflow":
            # A TensorFlow read may share the variable's buffer.
            copy = lambda value: np.array(value, copy=True)  # noqa: E731
        else:
            copy = ops.copy
        copies = [copy(variable.value) for variable in variables]
        return variables, copies, True
    if keras.backend.backend() != "jax":
        return None
    return variables, [variable.value for variable in variables], False


def _restore_state(model, saved):
    """Puts back the values `_saved_state` kept, after a failed loop.

    Keras's JAX loop keeps the current values in `_jax_state` and leaves
    the variables empty until the loop ends; a value it has donated to a
    step is deleted. Copies are restored as they are; otherwise each empty
    variable gets the loop's latest value, or the one it had before.
    """
    if keras.backend.backend() != "jax":
        if saved is not None:
            for variable, value in zip(saved[0], saved[1], strict=True):
                variable.assign(value)
        return
    state = getattr(model, "_jax_state", None) or {}
    model._jax_state = None
    model._jax_state_synced = True
    if saved is None:
        return
    latest = {}
    for key, variables in (
        ("trainable_variables", model.trainable_variables),
        ("non_trainable_variables", model.non_trainable_variables),
        ("optimizer_variables", getattr(model.optimizer, "variables", [])),
        ("metrics_variables", model.metrics_variables),
    ):
        for variable, value in zip(
            variables, state.get(key) or [], strict=False
        ):
            latest[id(variable)] = value
    variables, values, copied = saved
    for variable, value in zip(variables, values, strict=True):
        if not copied:
            if _live(getattr(variable, "_value", None)):
                continue
            candidate = latest.get(id(variable))
            value = candidate if _live(candidate) else value
        if _live(value):
            variable.assign(value)


def _unshare_ema_buffers(model):
    """Gives the optimizer's weight averages buffers of their own (JAX).

    With `use_ema=True`, the end of `fit` assigns the averages to the
    weights; on JAX a variable's assignment shares the array, and the next
    compiled call donates the weights' arrays, which would delete the
    averages' too (saving the optimizer would then fail).
    """
    optimizer = getattr(model, "optimizer", None)
    if keras.backend.backend() != "jax" or not getattr(
        optimizer, "use_ema", False
    ):
        return
    weights = {id(variable.value) for variable in model.variables}
    for variable in optimizer.variables:
        if id(variable.value) in weights:
            variable.assign(ops.copy(variable.value))


def _check_implicit(implicit, columns, argument="implicit"):
    """Returns `implicit` as a dict of target column -> source column."""
    if implicit is None or implicit is False:
        return {}
    if implicit is True:
        if len(columns) != 2:
            raise ValueError(
                f"`{argument}=True` pairs the two columns of a two-column "
                f"model; this one has the columns {columns}. Pass a dict "
                "mapping each described column to the column that "
                f"describes it, e.g. {argument}={{'user_id': 'movie_id'}}"
            )
        return {columns[0]: columns[1], columns[1]: columns[0]}
    if not isinstance(implicit, collections.abc.Mapping):
        raise ValueError(
            f"`{argument}` must be None, True or a dict mapping a column to "
            f"another column. Received: {argument}={implicit!r}"
        )
    checked = {}
    for target, source in implicit.items():
        for name in (target, source):
            if name not in columns:
                raise ValueError(
                    f"`{argument}` names the column {name!r}, which is not "
                    f"one of the model's columns {columns}. Received: "
                    f"{argument}={dict(implicit)!r}"
                )
        if target == source:
            raise ValueError(
                f"`{argument}` must pair two different columns. Received "
                f"{target!r}: {source!r}"
            )
        checked[target] = source
    return checked


def _check_batch_size(name, value):
    """Raises unless `value` is None or a positive integer."""
    if value is not None:
        _checks.positive_int(name, value)


def _check_finite(name, values, noun, plural):
    """Raises for entries that are not finite, in float64 or in float32.

    A value finite in float64 but beyond float32 (1e39) becomes infinite
    once the model casts it, and turns every weight into inf or NaN.
    """
    values = np.asarray(values)
    wide = values.astype(np.float64)
    with np.errstate(over="ignore"):
        narrow = wide.astype(np.float32)
    bad = ~np.isfinite(wide) | ~np.isfinite(narrow)
    if not np.any(bad):
        return
    flat = bad.reshape(len(values), -1) if values.ndim else bad.reshape(1, 1)
    row = int(np.argwhere(flat.any(axis=1))[0][0])
    shown = wide.reshape(len(flat), -1)[row].tolist()
    count = int(np.count_nonzero(bad))
    if np.all(np.isfinite(wide)):
        raise ValueError(
            f"`{name}` holds the {noun} {shown} at row {row}, beyond the "
            f"float32 range the model computes in ({count} such "
            f"{noun}{'s' * (count > 1)} in all). {plural} must be finite "
            "float32 numbers (magnitude below about 3.4e38)."
        )
    raise ValueError(
        f"`{name}` holds the non-finite {noun} {shown} at row {row} "
        f"({count} non-finite in all). {plural} must be finite numbers."
    )


def _check_sample_weight(sample_weight, name="sample_weight"):
    """Raises for non-numeric, NaN, infinite or float32-overflowing weights."""
    if sample_weight is None or not _is_array_like(sample_weight):
        return
    values = np.asarray(ops.convert_to_numpy(sample_weight))
    if values.dtype.kind not in "iufb":
        raise ValueError(
            f"`{name}` must hold numbers. Received dtype {values.dtype}"
        )
    if values.ndim == 0:
        raise ValueError(
            f"`{name}` must hold one weight per row. Received a scalar"
        )
    _check_finite(name, values, "weight", "Sample weights")


def _check_column_shape(column, shape):
    """Returns `shape` as a tuple if it is `(batch,)` or `(batch, 1)`."""
    shape = tuple(shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ValueError(
            f"Column '{column}' must have shape (batch,) or (batch, 1). "
            f"Received: shape={shape}"
        )
    return shape


def _is_array_like(value):
    """True for NumPy arrays, lists and concrete backend tensors."""
    if isinstance(value, (np.ndarray, list, tuple)):
        return True
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return False
    return _checks.is_concrete(value) and not hasattr(value, "element_spec")


def _check_columns(embeddings):
    if not isinstance(embeddings, collections.abc.Mapping) or not embeddings:
        raise ValueError(
            "`embeddings` must be a non-empty dict mapping column names to "
            "cardinalities or EntityEmbedding layers. Received: "
            f"embeddings={embeddings!r}"
        )
    for column, spec in embeddings.items():
        if not isinstance(column, str) or not column or "/" in column:
            raise ValueError(
                "Column names in `embeddings` must be non-empty strings "
                f"without '/'. Received the key {column!r}"
            )
        if isinstance(spec, EntityEmbedding):
            continue
        if (
            isinstance(spec, bool)
            or not isinstance(spec, numbers.Integral)
            or spec < 1
        ):
            raise ValueError(
                f"`embeddings['{column}']` must be a positive integer "
                "cardinality or an EntityEmbedding layer. Received: "
                f"{spec!r}"
            )
    return list(embeddings)


def _check_hidden_units(hidden_units):
    if isinstance(hidden_units, numbers.Integral) and not isinstance(
        hidden_units, bool
    ):
        hidden_units = [hidden_units]
    try:
        units = list(hidden_units)
    except TypeError:
        units = None
    if units is None or any(
        isinstance(u, bool) or not isinstance(u, numbers.Integral) or u < 1
        for u in units
    ):
        raise ValueError(
            "`hidden_units` must be a sequence of positive integers. "
            f"Received: hidden_units={hidden_units!r}"
        )
    return [int(u) for u in units]


def _check_rating_range(rating_range):
    if rating_range is None:
        return None
    try:
        low, high = (float(v) for v in rating_range)
    except (TypeError, ValueError):
        low = high = None
    if (
        low is None
        or not (np.isfinite(low) and np.isfinite(high))
        or (low >= high)
    ):
        raise ValueError(
            "`rating_range` must be None or a pair (low, high) of finite "
            f"numbers with low < high. Received: rating_range={rating_range!r}"
        )
    return (low, high)
