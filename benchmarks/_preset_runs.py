"""What the ranking benchmarks share: their MovieLens splits, training the
'recommended' preset on one, and running a script's measurement on each
split and writing the results."""

import os
import sys
import time

import keras

from keras_catembed import training
from keras_catembed.datasets import movielens

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import movielens_accuracy  # noqa: E402

PRESET = "recommended"


def splits(data_dir, datasets):
    """`(dataset, split name, (train, test))` of each of `datasets`.

    ml-100k: the official fold u1; ml-1m: fold 1 of the 5-fold split (see
    `movielens_accuracy.folds_1m`).
    """
    if "ml-100k" in datasets:
        ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
        yield "ml-100k", "u1", ratings.official_split("u1")
    if "ml-1m" in datasets:
        name, split = next(movielens_accuracy.folds_1m(data_dir))
        yield "ml-1m", name, split


def train_preset(train, *, seed, epochs=None):
    """Trains `PRESET` on `train`, seeded; returns `(model, seconds)`.

    `epochs` overrides the preset's number of epochs (its learning-rate
    schedule then spans the shorter run).
    """
    keras.utils.set_random_seed(seed)
    overrides = {} if epochs is None else {"epochs": epochs}
    start = time.perf_counter()
    model, _ = training.train(train, PRESET, verbose=0, **overrides)
    return model, time.perf_counter() - start


def run_and_write(script, args, run, table):
    """Runs `run(dataset, split, train, test)` on each split of `args`.

    Prints each result and the markdown `table(results)`, and writes them
    with the machine to `args.out` (`.json` and `.md`).
    """
    results = []
    for dataset, split, (train, test) in splits(args.data_dir, args.datasets):
        result = run(dataset, split, train, test)
        print(result, flush=True)
        results.append(result)
    text = table(results)
    print(text)
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        keras=keras.__version__,
        command=f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
    )
    _results.write(args.out, text, results, machine)
    return results
