"""`RatingEnsemble`: a fixed weighted average of rating models."""

import collections.abc
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_catembed import _checks
from keras_catembed import _ensemble_checks
from keras_catembed import _export
from keras_catembed import _inputs
from keras_catembed import _member_grids
from keras_catembed import _provenance
from keras_catembed import _recommend
from keras_catembed._recipe import Recipe


@keras.saving.register_keras_serializable(package="keras_catembed")
class RatingEnsemble(keras.Model):
    """Averages the predicted ratings of several models, with fixed weights.

    Models that make different errors average to a lower error than each
    one: several seeds of one `RatingModel`, or a `RatingModel` and an
    `ItemAutoencoder`. The weights are fixed when the ensemble is built
    (choose them on validation ratings, never on test ones); they are
    scaled to sum to 1.

    The members take dicts of id columns; the ensemble takes the union of
    their columns (`columns`) and gives each member the ones it reads
    (its `columns` attribute, or all of them). `predict` and `evaluate`
    run each member's input checks first, so bad ids raise each member's
    own error before any compiled step, and `evaluate` warns when the
    rows overlap a member's training rows.

    `fit(x, y)` trains every member in turn on the same rows: a member
    with a `recipe` attribute (as `training.train` and `from_preset`
    models have, or one you set) with its recipe's `fit`, which compiles
    it if needed; others with their own `fit`, so compile them first. A
    member with implicit feedback or a neighbourhood is adapted to the
    rows first. Every member's checks run before any member trains. The
    ensemble is saved and loaded as one `.keras` file (the members'
    weights, adapted pairs and recipes; not their optimizers, so compile
    a loaded member without a recipe before `fit`).

    Args:
        members: Non-empty sequence of Keras models that map a dict of id
            columns to ratings of shape `(batch, 1)` or `(batch,)`.
        weights: Optional sequence of positive numbers, one per member.
            Defaults to `None` (equal weights).
        rating_range: Optional `(low, high)`: the average is clipped to
            it. Defaults to `None`.
        **kwargs: Base `keras.Model` arguments, such as `name`.

    Example:

    ```python
    members = [
        keras_catembed.training.train(train, "recommended", seed=s)[0]
        for s in (0, 1, 2)
    ]
    ensemble = keras_catembed.RatingEnsemble(members, rating_range=(1, 5))
    ensemble.compile(loss="mse", metrics=[keras.metrics.RootMeanSquaredError()])
    ensemble.evaluate(x_test, y_test)
    ```
    """

    def __init__(
        self,
        members: Sequence[keras.Model],
        weights: Sequence[float] | None = None,
        rating_range: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.members = _ensemble_checks.members(members)
        self.member_weights = _ensemble_checks.weights(
            weights, len(self.members)
        )
        self.rating_range = _inputs.check_rating_range(rating_range)
        columns: list[str] = []
        for member in self.members:
            for column in getattr(member, "columns", None) or ():
                if column not in columns:
                    columns.append(column)
        self.columns = columns
        # No variables of its own: the members build theirs when called.
        self.built = True

    def compile(self, optimizer: Any = None, **kwargs: Any) -> None:
        """As `keras.Model.compile`, for `evaluate`: no optimizer needed.

        The members train with their own optimizers (see `fit`), so the
        ensemble's defaults to `None`.
        """
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config: Any) -> None:
        # `compile` above only changes a default, so a saved compile
        # config restores as `keras.Model` restores it (Keras skips that
        # for a model with its own `compile`).
        self.compile(**keras.saving.deserialize_keras_object(config))

    @property
    def losses(self) -> list[Any]:
        # The members' penalties belong to their own training: the loss
        # `evaluate` reports is the compiled loss of the average alone.
        return []

    def _inputs_of(self, member: keras.Model, inputs: Any) -> Any:
        columns = getattr(member, "columns", None)
        if columns is None or not isinstance(inputs, collections.abc.Mapping):
            return inputs
        return {column: inputs[column] for column in columns}

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self._average(
            member(self._inputs_of(member, inputs), training=False)
            for member in self.members
        )

    def _average(self, ratings: Any) -> Any:
        """The members' ratings, in member order, averaged and clipped."""
        total = None
        for rating, weight in zip(ratings, self.member_weights, strict=True):
            rating = weight * ops.reshape(ops.cast(rating, "float32"), (-1, 1))
            total = rating if total is None else total + rating
        if self.rating_range is not None:
            total = ops.clip(total, *self.rating_range)
        return total

    def _checked(self, x: Any, where: str) -> Any:
        """`x` after each member's own checks of its columns."""
        return _ensemble_checks.inputs(self, x, where)

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: Any = "auto",
        steps: int | None = None,
        callbacks: Any = None,
    ) -> Any:
        """Predicts ratings of `x`; on arrays, member by member.

        With a dict of NumPy arrays (or lists, or a `DataFrame`), and no
        `steps` or `callbacks`, each member predicts all rows with its own
        `predict`, in batches of `batch_size` rows (or more for a member
        with a larger batch of its own: an `ItemAutoencoder` takes at
        least 65536 rows, each batch encoding every item once; `verbose`
        then shows one progress bar per member), and the weighted sum is
        returned as a NumPy array of shape `(rows, 1)`, clipped to
        `rating_range`. Other inputs, and a subclass that overrides
        `call`, go through Keras's own loop, whose batches run every
        member; so does `evaluate`.
        """
        if batch_size is not None:
            _inputs.check_batch_size("batch_size", batch_size)
        x = self._checked(x, "predict")
        if (
            steps is not None
            or callbacks
            or not _member_grids._keeps(
                self, RatingEnsemble, ("call", "__call__", "predict_step")
            )
            or not isinstance(x, collections.abc.Mapping)
            or not all(isinstance(v, np.ndarray) for v in x.values())
        ):
            return super().predict(x, batch_size, verbose, steps, callbacks)
        ratings = []
        for member in self.members:
            rows = getattr(member, "_predict_rows", None)
            size = batch_size if rows is None else max(batch_size or 0, rows)
            ratings.append(
                member.predict(
                    self._inputs_of(member, x), batch_size=size, verbose=verbose
                )
            )
        return ops.convert_to_numpy(self._average(ratings))

    def evaluate(
        self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        _checks.require_compiled(self)
        x = self._checked(x, "evaluate")
        _inputs.check_y(y)
        _inputs.check_labelled_rows(self, x, y, kwargs.get("sample_weight"))
        for member in self.members:
            _provenance.warn_overlap(member, self._inputs_of(member, x), y)
        return super().evaluate(x, y, *args, **kwargs)

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        *,
        verbose: Any = "auto",
        validation_data: Any = None,
        callbacks: Any = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Trains each member on `(x, y)` in turn (see the class).

        Args:
            x: Dict of id arrays holding every member's columns.
            y: The ratings, one per row.
            verbose: Passed to each member's fit.
            validation_data: Optional `(x_val, y_val)`, passed to each
                member's fit (with the member's columns).
            callbacks: Passed to each member's fit (callbacks that keep
                state, such as `EarlyStopping`, belong in one member's
                own fit instead).
            **kwargs: Other arguments of the members' `fit`, such as
                `epochs` and `batch_size` (a member with a recipe keeps
                its recipe's).

        Returns:
            The list of the members' `History` objects.
        """
        x = self._checked(x, "fit")
        if y is None:
            raise ValueError(
                "`fit` needs the ratings `y` (one per row). Received: y=None"
            )
        _inputs.check_y(y)
        _inputs.check_labelled_rows(self, x, y, kwargs.get("sample_weight"))
        # Every check of every member first: none trains unless all would.
        _ensemble_checks.fit_members(self, x, y, validation_data, kwargs)
        histories = []
        for member in self.members:
            member_x = self._inputs_of(member, x)
            member_val = validation_data
            if validation_data is not None:
                member_val = (
                    self._inputs_of(member, validation_data[0]),
                    *validation_data[1:],
                )
            if getattr(member, "implicit", None) or getattr(
                member, "neighborhood", None
            ):
                member.adapt(member_x, y)
            options = {
                "verbose": verbose,
                "validation_data": member_val,
                "callbacks": callbacks,
                **kwargs,
            }
            recipe = getattr(member, "recipe", None)
            if recipe is not None:
                # The recipe's own epochs and batch size.
                for key in ("epochs", "batch_size"):
                    options.pop(key, None)
                histories.append(recipe.fit(member, member_x, y, **options))
            else:
                histories.append(member.fit(member_x, y, **options))
        return histories

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

        As `RatingModel.recommend`, with the ensemble's scores: every
        candidate is scored for every user, the pairs of `exclude` are
        left out, and the `k` highest predicted ratings are kept. The
        scores equal `predict` on the same pairs. Each member scores the
        user x item grid by its own fastest exact path (a `RatingModel`'s
        column vectors computed once, an `ItemAutoencoder`'s item codes
        computed once, `predict` for any other model); the ensemble adds
        them with its weights and applies its range. When the class
        overrides `call`, every row goes through `predict` instead.

        Every member must read `user_column` and `item_column`. Every id
        is checked by each member that embeds its column, and every
        member that reads adapted pairs or stored ratings must hold them,
        before anything is scored.

        Args:
            users: Array of user ids (of `user_column`), or a dict (or
                pandas `DataFrame`) with that column and, for an ensemble
                of more than two columns, each other column's value per
                user.
            k: Positive integer. How many items per user. Defaults to 10.
            exclude: Optional dict (or pandas `DataFrame`) with
                `user_column` and `item_column` arrays: pairs never to
                recommend (typically the training ratings). Defaults to
                `None`.
            candidates: Optional array of distinct item ids to choose from.
                Defaults to the ids that every member embedding
                `item_column` holds.
            user_column: String. The column of `users`. Defaults to the
                ensemble's first column (required with more than two
                columns).
            item_column: String. The column of the items. Defaults to the
                ensemble's second column (required with more than two
                columns).

        Returns:
            A tuple `(item_ids, scores)` of NumPy arrays of shape
            `(len(users), k)`, best first. Where fewer than `k` candidates
            remain for a user after `exclude`, the last places hold the id
            `-1` and the score NaN.

        Raises:
            ValueError: as `RatingModel.recommend`, and for a member that
                does not read both columns or holds no ratings yet;
                nothing is computed then.

        Example:

        ```python
        items, scores = ensemble.recommend(
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
        """`recommend`'s fast scorer: the members' grids, weighted."""
        return {"grid": (_member_grids.EnsembleGrid, RatingEnsemble)}

    def export(
        self,
        filepath: Any,
        format: str = "tf_saved_model",
        verbose: bool | None = None,
        input_signature: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Exports the ensemble for inference, as `RatingModel.export`.

        Without `input_signature`, the served function takes one dict of
        int64 id vectors of shape `(batch,)`, keyed by the ensemble's
        `columns`, and returns the averaged ratings, shape `(batch, 1)`,
        equal to `predict`. The members' graphs check their ids as in
        `RatingModel.export` (TensorFlow fails the call; from JAX an
        unknown id's rating is NaN). It runs on TensorFlow and JAX; on
        torch a SavedModel export raises (export from TensorFlow or JAX).
        Every member must be trained, and an `ItemAutoencoder` must hold
        its ratings, before the export.

        Example:

        ```python
        ensemble.export("blend")
        served = tf.saved_model.load("blend")
        served.serve({"user_id": users, "movie_id": movies})
        ```
        """
        return _export.export(
            self, filepath, format, verbose, input_signature, **kwargs
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "members": [
                    keras.saving.serialize_keras_object(m) for m in self.members
                ],
                # The recipes members train with (a saved model loses
                # attributes that are not its own settings).
                "recipes": [
                    None if r is None else r.get_config()
                    for r in (getattr(m, "recipe", None) for m in self.members)
                ],
                "weights": list(self.member_weights),
                "rating_range": self.rating_range,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RatingEnsemble":
        config = dict(config)
        config["members"] = [
            keras.saving.deserialize_keras_object(m) for m in config["members"]
        ]
        recipes = config.pop("recipes", None) or [None] * len(config["members"])
        for member, recipe in zip(config["members"], recipes, strict=True):
            if recipe is not None:
                member.recipe = Recipe.from_config(recipe)
        if config.get("rating_range") is not None:
            config["rating_range"] = tuple(config["rating_range"])
        return cls(**config)
