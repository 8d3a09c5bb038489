"""The `RatingModel`: id columns -> entity embeddings -> MLP -> a rating."""

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_catembed import _checks
from keras_catembed import _grid
from keras_catembed import _inputs
from keras_catembed import _layers
from keras_catembed import _model_encoders
from keras_catembed import _pair_dtype
from keras_catembed import _pairs
from keras_catembed import _preset_files
from keras_catembed import _recommend
from keras_catembed._adapt import PairAdapting
from keras_catembed._export import Exportable
from keras_catembed._forward import RatingForward
from keras_catembed._provenance import TrainingProvenance
from keras_catembed._saving import RatingSaving
from keras_catembed._trainer import RatingTrainer
from keras_catembed.entity_embedding import EntityEmbedding

# Used by `from_preset` and by other modules under these names.
_check_columns = _inputs.check_columns
_check_rating_range = _inputs.check_rating_range


@keras.saving.register_keras_serializable(package="keras_catembed")
class RatingModel(
    RatingForward,
    PairAdapting,
    RatingTrainer,
    RatingSaving,
    TrainingProvenance,
    Exportable,
    keras.Model,
):
    """Predicts a rating from any number of categorical id columns.

    Each column gets an `EntityEmbedding`; `embed` looks up the vectors
    (with their implicit-feedback and neighbourhood terms), `interact`
    combines them (concatenation by default) and a multilayer perceptron
    with a linear output unit (float32 under mixed precision) gives the
    rating. With two columns and the defaults this is the model of
    Kaggle's "Embeddings" course. A subclass may override `embed` and
    `interact`; registered with `keras.saving.register_keras_serializable`
    it saves and loads like this class.

    Inputs are a dict of id columns (or a pandas `DataFrame`, its columns
    taken by name), each of shape `(batch,)` or `(batch, 1)`. Array inputs
    of `fit`, `evaluate`, `predict` and the `*_on_batch` methods are
    checked before any compiled step: a bad column, id or target raises a
    `ValueError` naming it, on every backend (see the "Safety" guide).

    Args:
        embeddings: Dict mapping each column name to its cardinality (an
            integer: ids are `0..n-1`, size from the `"auto"` rule) or to a
            configured `keras_catembed.EntityEmbedding`.
        hidden_units: Sequence of integers. Width of each hidden layer.
            Defaults to `(32, 4)`.
        activation: Activation of the hidden layers. Defaults to `"relu"`.
        dropout: Float in [0, 1). Dropout after each hidden layer. Defaults
            to `0.0`.
        bias_terms: Boolean. Whether to add a learned scalar bias per id of
            every column to the output, as in biased matrix factorization.
            Defaults to `False`.
        rating_range: Optional pair `(low, high)` with `low < high`. Bounds
            the output to `low + (high - low) * sigmoid(z)`; a range a
            little wider than the ratings (`(0.5, 5.5)` for 1-5 stars) lets
            the extremes be reached. Defaults to `None` (a linear output).
        implicit: Optional dict mapping a column to the column whose ids
            describe it (`{"user_id": "movie_id"}`: each user is also
            described by the movies it occurs with), or `True` for a
            two-column model (each column described by the other). The
            implicit vectors have the size of the described column's
            embedding and take its initializer and regularizer. Defaults to
            `None` (no implicit feedback).
        neighborhood: Like `implicit` (a dict or `True`), but each pair is
            weighted by its centred rating (the neighbourhood term of
            Koren's integrated model), and the column's vector is followed
            by that sum, so it is twice as wide. A row's own rating is left
            out of its sum. Call `model.adapt(x, y)` with the training
            inputs and ratings before `fit`. Defaults to `None`.
        max_pairs_per_id: Optional positive integer. Caps the pairs of
            each id of `implicit` and `neighborhood` to a fixed random
            sample of this many (drawn in `adapt`), held as per-id lists,
            so a step costs at most this many lookups per row. `None`
            keeps every pair (a dense matrix when it is small, else lists
            of at most 256 pairs per id). Defaults to `None`.
        pairs_per_step: Optional positive integer, or a dict mapping a
            column that `implicit` or `neighborhood` describes to one
            (`{"user_id": 16, "movie_id": 4}`; a described column left out
            reads every pair). A training step of `implicit` and
            `neighborhood` reads a moving window of this many of each
            id's listed pairs (per-id lists, as with `max_pairs_per_id`)
            and corrects the whole sums of an anchor that `fit` refreshes
            as the tables move; prediction reads every listed pair.
            Bounds the cost of a step however many pairs are kept. A
            column whose ids occur far more often than the other's (the
            movies of a rating table) reads each of its listed pairs far
            more often per epoch, so a smaller window for it saves the
            most time, at some accuracy (measured in the performance
            guide). Defaults to `None` (every step reads every pair).
        pair_dtype: Optional string, `"bfloat16"` to hold the dense pair
            matrices of `implicit` and `neighborhood` in bfloat16 (with a
            transposed copy, in the memory of one float32 matrix) and
            compute the sums of every id at each step with float32
            accumulation: on CPUs with bfloat16 units (AMX,
            AVX512-BF16) and on GPUs several times as fast, at a
            relative rounding of at most `2**-9` of the weights and the
            vectors entering the products. Only for the dense layout
            (no `max_pairs_per_id` or `pairs_per_step`). `"auto"` picks
            bfloat16 where every pair layer is dense and the CPU
            multiplies bfloat16 natively, float32 elsewhere (the model
            keeps the dtype picked). Defaults to `None` (float32).
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
        - [Koren, 2008. Factorization Meets the Neighborhood](https://doi.org/10.1145/1401890.1401944)
        - [Guo & Berkhahn, 2016. Entity Embeddings of Categorical Variables](https://arxiv.org/abs/1604.06737)
    """

    def __init__(
        self,
        embeddings: Mapping[str, int | EntityEmbedding],
        hidden_units: int | Sequence[int] = (32, 4),
        *,
        activation: Any = "relu",
        dropout: float = 0.0,
        bias_terms: bool = False,
        rating_range: tuple[float, float] | None = None,
        implicit: Mapping[str, str] | bool | None = None,
        neighborhood: Mapping[str, str] | bool | None = None,
        max_pairs_per_id: int | None = None,
        pairs_per_step: int | Mapping[str, int | None] | None = None,
        pair_dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.columns = _check_columns(embeddings)
        self.hidden_units = _inputs.check_hidden_units(hidden_units)
        self.activation = keras.activations.get(activation)
        self.dropout = _checks.rate("dropout", dropout)
        self.bias_terms = _inputs.check_bool("bias_terms", bias_terms)
        self.rating_range = _check_rating_range(rating_range)
        dtype = self.dtype_policy
        # Saved files name the weights by these attributes, and the order
        # in which the layers join them orders the optimizer's variables.
        self.embedding_layers, self.bias_layers = {}, {}
        self._cardinalities = _layers.add_tables(
            self.embedding_layers,
            self.bias_layers,
            self.columns,
            embeddings,
            bias_terms,
            dtype,
        )
        self.implicit = _inputs.check_implicit(implicit, self.columns)
        self.neighborhood = _inputs.check_implicit(
            neighborhood, self.columns, "neighborhood"
        )
        self.max_pairs_per_id = _pairs.check_max_pairs_per_id(max_pairs_per_id)
        self.pairs_per_step = _pairs.check_pairs_per_step(
            pairs_per_step,
            list(dict.fromkeys([*self.implicit, *self.neighborhood])),
        )
        self.pair_dtype = _pair_dtype.check("RatingModel", pair_dtype)
        _pair_dtype.check_used(
            "model",
            self.pair_dtype,
            bool(self.implicit or self.neighborhood),
            "`implicit=True` / `neighborhood=True`",
        )
        tables = self.embedding_layers
        self.pair_dtype = _layers.resolved_pair_dtype(
            self.pair_dtype,
            [
                (
                    tables[target],
                    tables[source],
                    _pairs.steps_for(self.pairs_per_step, target),
                )
                for pairs in (self.implicit, self.neighborhood)
                for target, source in pairs.items()
            ],
            self.max_pairs_per_id,
        )
        for name, pairs, rated in (
            ("implicit_layers", self.implicit, False),
            ("neighborhood_layers", self.neighborhood, True),
        ):
            layers = _layers.pair_layers(
                pairs,
                self.embedding_layers,
                rated=rated,
                max_pairs_per_id=self.max_pairs_per_id,
                pairs_per_step=self.pairs_per_step,
                dtype=dtype,
                pair_dtype=self.pair_dtype,
            )
            setattr(self, name, layers)
        self.hidden_layers, self.dropout_layers = [], []
        _layers.add_hidden(
            self.hidden_layers,
            self.dropout_layers,
            self.hidden_units,
            self.activation,
            self.dropout,
            dtype,
        )
        self.output_layer = _layers.output_unit(dtype)
        # Views over the layers above, in a read-only mapping that saved
        # files do not follow: they name the weights by the attributes
        # above.
        self._encoders = _model_encoders.model_encoders(self)

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
        """The fast scorers of `recommend` for this class, fastest first.

        Each with the class whose methods it was proven on; a scorer
        applies to a model whose class keeps those methods.
        """
        return {"grid": (_grid.VectorGrid, RatingModel)}

    @classmethod
    def from_preset(
        cls,
        preset: str,
        embeddings: Mapping[str, int] | None = None,
        **overrides: Any,
    ) -> "RatingModel":
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
                Optional for a preset folder, which records them; given,
                it must size every column the folder was saved with.
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
        model: RatingModel = _preset_files.from_preset(
            preset, embeddings, cls, **overrides
        )
        return model
