"""Runs one small `RatingHyperModel` search; the subprocess tests start it.

`tests/test_hypermodel.py` also imports its data and search helpers. As a
script, the process uses the `KERAS_BACKEND` of its environment, and in
distributed mode the `KERASTUNER_*` variables. It appends the id of every
trial it starts to `--log`, one per line, and with `--block-at-trial N` it
writes `--sentinel` during the N-th trial that it trains (counting from 1)
and then sleeps until it is killed.
"""

import argparse
import pathlib
import sys
import time

import keras
import keras_tuner
import numpy as np

from keras_catembed.hypermodel import RatingHyperModel

NUM_USERS = 30
NUM_ITEMS = 40
BATCH_SIZE = 64


def make_ratings(num_rows=5 * BATCH_SIZE, seed=0):
    """Ratings `(x, y)` from 1 to 5 stars of a rank-2 taste model.

    Every call shares the users' and items' latent factors; `seed` picks
    which (user, item) pairs are rated. The default size is a whole number
    of batches: on JAX, a smaller last batch compiles the training step a
    second time.
    """
    factors = np.random.default_rng(0)
    users = factors.normal(size=(NUM_USERS, 2))
    items = factors.normal(size=(NUM_ITEMS, 2))
    rng = np.random.default_rng(seed)
    user_ids = rng.integers(0, NUM_USERS, num_rows)
    item_ids = rng.integers(0, NUM_ITEMS, num_rows)
    affinity = np.sum(users[user_ids] * items[item_ids], axis=1)
    ratings = np.clip(np.round(3.0 + affinity), 1, 5).astype("float32")
    return {"user_id": user_ids, "item_id": item_ids}, ratings


def small_hypermodel():
    """A hypermodel that searches 4 hyperparameters and trains fast.

    It searches both embedding sizes, `hidden_units_0` and the learning
    rate. Few searched hyperparameters keep `BayesianOptimization` fast:
    its acquisition step costs seconds on the full space.
    """
    return RatingHyperModel(
        {"user_id": NUM_USERS, "item_id": NUM_ITEMS},
        num_hidden_layers=1,
        activation="relu",
        dropout=0.0,
        embeddings_l2=0.0,
        entity_dropout=0.0,
        embeddings_initializer="uniform",
        bias_terms=False,
        ema_momentum=0.0,
        bounded_output=False,
        implicit=False,
        neighborhood=False,
        optimizer="adam",
        table_decay=0.0,
        schedule="constant",
        batch_size=BATCH_SIZE,
    )


class BlockAtTrial(keras.callbacks.Callback):
    """Writes a sentinel file during the N-th training run, then sleeps."""

    # A class attribute, because the tuner deep-copies callbacks per trial.
    runs_started = 0

    def __init__(self, trial_number, sentinel):
        super().__init__()
        self.trial_number = trial_number
        self.sentinel = sentinel

    def on_train_begin(self, logs=None):
        BlockAtTrial.runs_started += 1

    def on_train_batch_end(self, batch, logs=None):
        if BlockAtTrial.runs_started == self.trial_number:
            pathlib.Path(self.sentinel).write_text(str(self.trial_number))
            time.sleep(600)


def logging_tuner(tuner_class, log):
    """A subclass of `tuner_class` that logs each trial id it starts."""

    class LoggingTuner(tuner_class):
        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            with open(log, "a") as file:
                file.write(f"{trial.trial_id}\n")

    return LoggingTuner


def run_search(
    directory,
    log,
    max_trials=4,
    project="search",
    block_at_trial=0,
    sentinel=None,
):
    """Runs (or resumes, with `overwrite=False`) one small random search."""
    hypermodel = small_hypermodel()
    search = logging_tuner(keras_tuner.RandomSearch, log)(
        hypermodel,
        objective=hypermodel.objective,
        max_trials=max_trials,
        seed=1,
        directory=directory,
        project_name=project,
        overwrite=False,
    )
    callbacks = []
    if block_at_trial:
        callbacks.append(BlockAtTrial(block_at_trial, sentinel))
    x, y = make_ratings()
    x_val, y_val = make_ratings(num_rows=2 * BATCH_SIZE, seed=1)
    search.search(
        x,
        y,
        epochs=1,
        validation_data=(x_val, y_val),
        callbacks=callbacks,
        verbose=0,
    )
    return search


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--directory", required=True)
    parser.add_argument("--project", default="search")
    parser.add_argument("--max-trials", type=int, default=4)
    parser.add_argument("--log", required=True)
    parser.add_argument("--block-at-trial", type=int, default=0)
    parser.add_argument("--sentinel")
    args = parser.parse_args(argv)
    run_search(
        args.directory,
        args.log,
        max_trials=args.max_trials,
        project=args.project,
        block_at_trial=args.block_at_trial,
        sentinel=args.sentinel,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
