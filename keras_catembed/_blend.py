"""The library's most accurate model: preset models and item autoencoders.

`training.blend` builds it for one training part; see its docstring.
"""

import numbers
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

import keras
import numpy as np

from keras_catembed import _checks
from keras_catembed import _preset_columns
from keras_catembed._recipe import Recipe

if TYPE_CHECKING:
    from keras_catembed.datasets.movielens import Ratings

# The autoencoder's training settings (I-AutoRec's paper: Adam at 1e-3,
# batches of 64 items).
AUTOENCODER_RECIPE: dict[str, Any] = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
    "batch_size": 64,
    "ema_momentum": None,
}


def blend(
    train: "Ratings",
    preset: str | os.PathLike[str] | Mapping[str, Any] = "recommended",
    *,
    members: int = 3,
    autoencoders: int = 5,
    weight: float = 0.4,
    l2: float = 100.0,
    max_epochs: int = 200,
    patience: int = 20,
    autoencoder_epochs: int | None = None,
    autoencoder_units: int = 500,
    seed: int | None = None,
    record: dict[str, Any] | None = None,
) -> Any:
    """Builds the blend of `members` preset models and item autoencoders.

    The ensemble averages `members` models of `preset` (each built in
    turn, so each starts from other weights; each with the preset's
    recipe) with weight `(1 - weight) / members` each, and
    `autoencoders` `keras_catembed.ItemAutoencoder`s (also built in
    turn) with weight `weight / autoencoders` each, its predictions
    clipped to the range of `train`'s ratings. The autoencoders' number
    of epochs is chosen once, inside `train`: a first autoencoder trains
    on nine tenths of it (`evaluation.protocols.HoldOut(0.1, seed=1)`)
    with `keras.callbacks.EarlyStopping` on the other tenth (validation
    RMSE, `patience`, at most `max_epochs`), and the blend's
    autoencoders get the best epoch count as their recipe. No other
    rating is read, so the function is a build function of
    `keras_catembed.evaluation.cross_validate` as it is. Given
    `autoencoder_epochs`, the autoencoders train for that many epochs and
    nothing is chosen (no choosing run: the blend is then as fast to
    build as its members are to train).

    The defaults come from validation parts of ml-100k's u1.base and of
    ml-1m (docs/movielens.md, "How many autoencoders"): five
    autoencoders at a weight of 0.4 are within 0.001 of the best count
    and weight on both; `l2` 100 was chosen on such parts too. Those
    parts hold other splits' test ratings (u1.base holds u2 to u5's),
    so a MovieLens test figure with the defaults is clean only on the
    split whose training part they came from.

    Args:
        train: `keras_catembed.datasets.movielens.Ratings`: the training
            part. The tables are sized on its index maps (shared by the
            splits of one data set).
        preset: The members' preset, as for `training.train`. Defaults
            to `"recommended"`.
        members: Positive integer. How many preset models. Defaults to 3.
        autoencoders: Positive integer. How many autoencoders share
            `weight`. Defaults to 5.
        weight: Float in (0, 1). The autoencoders' share. Defaults to
            0.4.
        l2: Non-negative float. Each autoencoder's `l2`. Defaults to 100.
        max_epochs: Positive integer. The most epochs of the choosing
            run. Defaults to 200.
        patience: Positive integer. Epochs without a better validation
            RMSE before the choosing run stops. Defaults to 20.
        autoencoder_epochs: Optional positive integer: the autoencoders'
            epochs, in place of the choosing run (`max_epochs` and
            `patience` then go unused). Defaults to `None` (chosen).
        autoencoder_units: Positive integer. Each autoencoder's
            `hidden_units`. Defaults to 500 (I-AutoRec's).
        seed: Optional integer: `keras.utils.set_random_seed(seed)` runs
            first (CPU runs then repeat exactly). Defaults to `None`.
        record: Optional dict that receives `"epochs"` (the chosen count),
            `"inner_rmse"` (its validation RMSE) and `"inner_curve"` (the
            choosing run's validation RMSE after each epoch); with
            `autoencoder_epochs`, `"epochs"` alone.

    Returns:
        A compiled, untrained `keras_catembed.RatingEnsemble` (loss MSE,
        metric `rmse`). Train it with
        `ensemble.fit(movielens.inputs(train, ensemble.columns),
        train.rating)`: each member adapts and trains with its recipe.

    Example:

    ```python
    ensemble = keras_catembed.training.blend(train, "recommended")
    ensemble.fit(movielens.inputs(train, ensemble.columns), train.rating)
    ensemble.evaluate(movielens.inputs(test, ensemble.columns), test.rating)
    ```
    """
    from keras_catembed import ItemAutoencoder
    from keras_catembed import RatingEnsemble
    from keras_catembed import presets
    from keras_catembed.datasets import movielens

    if not isinstance(train, movielens.Ratings):
        raise ValueError(
            "`train` must be a keras_catembed.datasets.movielens.Ratings. "
            f"Received: train of type {type(train).__name__}"
        )
    members = _checks.positive_int("members", members)
    autoencoders = _checks.positive_int("autoencoders", autoencoders)
    share: Any = weight  # Checked as given, whatever its type.
    if (
        isinstance(share, bool)
        or not isinstance(share, numbers.Real)
        or not 0.0 < float(share) < 1.0
    ):
        raise ValueError(
            "`weight` must be a number in (0, 1), the autoencoders' share. "
            f"Received: weight={weight!r}"
        )
    weight = float(share)
    l2 = _checks.non_negative_float("l2", l2)
    max_epochs = _checks.positive_int("max_epochs", max_epochs)
    patience = _checks.positive_int("patience", patience)
    if autoencoder_epochs is not None:
        autoencoder_epochs = _checks.positive_int(
            "autoencoder_epochs", autoencoder_epochs
        )
    units = _checks.positive_int("autoencoder_units", autoencoder_units)
    if autoencoder_epochs is None and len(train) < 20:
        raise ValueError(
            "`train` must hold at least 20 ratings (a tenth of them choose "
            f"the autoencoder's epochs). Received {len(train)}"
        )
    if seed is not None:
        keras.utils.set_random_seed(_checks.seed("seed", seed))
    config = presets.load(preset)
    low, high = float(np.min(train.rating)), float(np.max(train.rating))

    def autoencoder() -> Any:
        return ItemAutoencoder(
            {"user_id": train.num_users, "movie_id": train.num_movies},
            hidden_units=units,
            l2=l2,
            rating_range=(low, high),
        )

    # What the preset asks of `train`, and its recipe, are checked before
    # the long choice of epochs; neither draws random numbers.
    embeddings = _preset_columns.cardinalities(
        _preset_columns.columns(config), train
    )
    recipe = Recipe.from_config(config["recipe"])
    if autoencoder_epochs is None:
        curve = _autoencoder_curve(train, autoencoder, max_epochs, patience)
        epochs = 1 + min(range(len(curve)), key=curve.__getitem__)
        chosen = {"inner_rmse": curve[epochs - 1], "inner_curve": curve}
    else:
        epochs, chosen = autoencoder_epochs, {}
    if record is not None:
        for key in ("inner_rmse", "inner_curve"):
            record.pop(key, None)  # A reused dict's earlier choice.
        record.update({"epochs": epochs, **chosen})
    models = []
    for _ in range(members):
        model = presets.build_model(config, embeddings)
        model.recipe = recipe.replace()  # Each member its own copy.
        models.append(model)
    for _ in range(autoencoders):
        model = autoencoder()
        model.recipe = Recipe(**AUTOENCODER_RECIPE, epochs=epochs)
        models.append(model)
    each = (1.0 - weight) / members
    ensemble = RatingEnsemble(
        models,
        weights=[each] * members + [weight / autoencoders] * autoencoders,
        rating_range=(low, high),
    )
    ensemble.compile(
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return ensemble


def _autoencoder_curve(
    train: "Ratings", build: Any, max_epochs: int, patience: int
) -> list[float]:
    """An autoencoder's validation RMSE per epoch on a tenth of `train`."""
    from keras_catembed.datasets import movielens
    from keras_catembed.evaluation.protocols import HoldOut

    # Parts of a `Ratings` are `Ratings`.
    (fit, val), *_ = HoldOut(0.1, seed=1).split_data(train)
    fit, val = cast("Ratings", fit), cast("Ratings", val)
    model = build()
    model.compile(
        optimizer=keras.optimizers.Adam(AUTOENCODER_RECIPE["learning_rate"]),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_rmse", patience=patience, mode="min"
    )
    history = model.fit(
        movielens.inputs(fit, model.columns),
        fit.rating,
        batch_size=AUTOENCODER_RECIPE["batch_size"],
        epochs=max_epochs,
        validation_data=(movielens.inputs(val, model.columns), val.rating),
        callbacks=[stop],
        verbose=0,
    )
    return [float(score) for score in history.history["val_rmse"]]
