"""The blend of `docs/movielens.md`, as a `cross_validate` build function.

`builder(...)` returns a function of a training part, as
`keras_catembed.evaluation.cross_validate` takes, that calls
`keras_catembed.training.blend`: a `RatingEnsemble` of `members` models
of the preset and `autoencoders` `ItemAutoencoder`s, weighted `(1 -
weight) / members` and `weight / autoencoders` each, whose number of
epochs is chosen inside the training part (early stopping on a tenth of
it). `cross_validate` then calls the ensemble's `fit`, which adapts and
trains every member on the training part. No test rating is read.

The fixed settings (a weight of 0.3, lambda 100, the paper's 500 hidden
units, Adam at 1e-3 and batches of 64 items) come from
`blend_validation.py`, on a validation tenth of ml-100k's u1.base and of
ml-1m's `HoldOut(0.1, seed=0)` training part. `builder` keeps one
autoencoder at 0.3 as its defaults on purpose, so that the commands of
docs/movielens.md reproduce their tables; `training.blend` itself
defaults to five autoencoders at 0.4 (`blend_autoencoders.py`).
"""

from keras_catembed import training


def builder(
    config,
    members=3,
    autoencoders=1,
    weight=0.3,
    l2=100.0,
    max_epochs=200,
    patience=20,
    autoencoder_epochs=None,
    autoencoder_units=500,
):
    """A `cross_validate` build function of the blend (see the module).

    `builder(...).records` lists, per call, the autoencoder's epochs and
    their validation RMSE.
    """
    records = []

    def build(train):
        record = {}
        records.append(record)
        return training.blend(
            train,
            config,
            members=members,
            autoencoders=autoencoders,
            weight=weight,
            l2=l2,
            max_epochs=max_epochs,
            patience=patience,
            autoencoder_epochs=autoencoder_epochs,
            autoencoder_units=autoencoder_units,
            record=record,
        )

    build.records = records
    return build
