"""The blend of `docs/movielens.md`: preset seeds and an item autoencoder.

`builder(...)` returns a function of a training part, as
`keras_catembed.evaluation.cross_validate` takes: it builds a
`RatingEnsemble` of `members` models of the preset (each built in turn
from the fold's seed, so each starts from other weights) and one
`ItemAutoencoder`, weighted `(1 - weight) / members` each and `weight`.
`cross_validate` then calls the ensemble's `fit`, which adapts and trains
every member on the training part.

The autoencoder's number of epochs is chosen inside the training part:
a first autoencoder trains on nine tenths of it (`HoldOut(0.1, seed=1)`)
with `keras.callbacks.EarlyStopping` on the other tenth (`val_rmse`,
`patience`, at most `max_epochs`); the member then trains on the whole
training part for the best epoch count. No test rating is read.

The fixed settings (a weight of 0.3, lambda 100, the paper's 500 hidden
units, Adam at 1e-3 and batches of 64 items) come from
`blend_validation.py`, on a validation tenth of ml-100k's u1.base and of
ml-1m's `HoldOut(0.1, seed=0)` training part.
"""

import keras

from keras_catembed import ItemAutoencoder
from keras_catembed import RatingEnsemble
from keras_catembed import presets
from keras_catembed.datasets import movielens
from keras_catembed.evaluation.protocols import HoldOut
from keras_catembed.training import Recipe

AUTOENCODER_RECIPE = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
    "batch_size": 64,
    "ema_momentum": None,
}


def autoencoder_epochs(train, l2, max_epochs, patience, record):
    """The best epoch count of an autoencoder on a tenth of `train`."""
    (fit, val), *_ = HoldOut(0.1, seed=1).split_data(train)
    model = _autoencoder(train, l2)
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
    scores = history.history["val_rmse"]
    best = min(range(len(scores)), key=scores.__getitem__)
    record.update({"epochs": best + 1, "inner_rmse": scores[best]})
    return best + 1


def _autoencoder(train, l2):
    return ItemAutoencoder(
        {"user_id": train.num_users, "movie_id": train.num_movies},
        l2=l2,
        rating_range=(1, 5),
    )


def builder(
    config, members=3, weight=0.3, l2=100.0, max_epochs=200, patience=20
):
    """A `cross_validate` build function of the blend (see the module).

    `builder(...).records` lists, per call, the autoencoder's epochs.
    """
    records = []

    def build(train):
        record = {}
        epochs = autoencoder_epochs(train, l2, max_epochs, patience, record)
        records.append(record)
        models = []
        for _ in range(members):
            model = presets.build_model(
                config,
                {"user_id": train.num_users, "movie_id": train.num_movies},
            )
            model.recipe = Recipe.from_config(config["recipe"])
            models.append(model)
        autoencoder = _autoencoder(train, l2)
        autoencoder.recipe = Recipe(**AUTOENCODER_RECIPE, epochs=epochs)
        share = (1.0 - weight) / members
        ensemble = RatingEnsemble(
            [*models, autoencoder],
            weights=[share] * members + [weight],
            rating_range=(1, 5),
        )
        ensemble.compile(
            loss="mse",
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        )
        return ensemble

    build.records = records
    return build
