"""Presets on the sparse path: SparseAdam with lazy table decay vs dense Adam.

Each preset trains with dense Adam and an L2 penalty on its embedding
tables (`RatingModel.from_preset(name)` with `presets.recipe(name)`). The
sparse variant drops the penalty and trains with
`recipe.replace(optimizer="sparse_adam", table_decay=d)`: `SparseAdam`
touches only the rows of each batch, and the tables' decoupled weight
decay reaches the skipped rows lazily.

Protocol, per preset and data set (ml-100k: u1; ml-1m: the first fold of
the file's fold column):

1. validation: the training part with a random tenth held out (seed 0).
   The dense preset and the sparse variant at each `--decays` rate train
   on the rest and are scored on the held-out tenth; the rate with the
   lowest validation RMSE is chosen. No test rating is used;
2. test: the dense preset and the sparse variant at the chosen rate train
   on the whole training part and are scored on its test part.

Fit times are whole `fit` calls (compilation included). One seed.

Usage:

    KERAS_BACKEND=jax python benchmarks/sparse_presets.py \\
        --data-dir ../shared/data/movielens --preset recommended \\
        --dataset ml-100k

It writes `benchmarks/results/sparse_presets_<preset>.{md,json}`.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np

from keras_catembed import RatingModel
from keras_catembed import presets
from keras_catembed.datasets import movielens
from keras_catembed.datasets.movielens import inputs

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import movielens_accuracy  # noqa: E402


def split(dataset, data_dir):
    """The (training part, test part, protocol) of a data set."""
    if dataset == "ml-100k":
        ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
        base, test = ratings.official_split("u1")
        return base, test, "ml-100k u1"
    name, (base, test) = next(movielens_accuracy.folds_1m(data_dir))
    return base, test, f"ml-1m {name} of the file's fold column"


def train(preset, decay, train_part, test_part, sizes, seed=0):
    """Test RMSE and whole-fit seconds of one variant.

    `decay=None` is the dense preset; a number is the sparse variant.
    """
    keras.utils.set_random_seed(seed)
    embeddings = {"user_id": sizes[0], "movie_id": sizes[1]}
    # A preset that embeds the users' features gets their columns too.
    for feature in presets.load(preset).get("user_features", ()):
        embeddings[feature] = movielens.USER_FEATURES[feature]
    recipe = presets.recipe(preset)
    if decay is None:
        model = RatingModel.from_preset(preset, embeddings)
    else:
        model = RatingModel.from_preset(
            preset, embeddings, embeddings_regularizer=None
        )
        recipe = recipe.replace(optimizer="sparse_adam", table_decay=decay)
    x = inputs(train_part, model.columns)
    start = time.perf_counter()
    if model.neighborhood:
        model.adapt(x, train_part.rating)
    elif model.implicit:
        model.adapt(x)
    recipe.fit(model, x, train_part.rating, verbose=0)
    fit_time = time.perf_counter() - start
    prediction = model.predict(
        inputs(test_part, model.columns), batch_size=8192, verbose=0
    )
    error = np.asarray(prediction, "float64").reshape(-1) - test_part.rating
    return float(np.sqrt(np.mean(error**2))), fit_time


def label(decay):
    if decay is None:
        return "preset (dense Adam)"
    return f"SparseAdam, decay {decay:g}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preset", default="recommended")
    parser.add_argument(
        "--dataset", choices=["ml-100k", "ml-1m"], default="ml-100k"
    )
    parser.add_argument(
        "--decays", nargs="+", type=float, default=[0.0, 0.3, 1.0, 3.0, 10.0]
    )
    parser.add_argument(
        "--out", help="output path without extension (default: results/...)"
    )
    args = parser.parse_args(argv)
    out = args.out or os.path.join(
        HERE, "results", f"sparse_presets_{args.preset}"
    )
    base, test, protocol = split(args.dataset, args.data_dir)
    sizes = (base.num_users, base.num_movies)
    fit_part, validation = base.random_split(0.1, seed=0)
    validation_rows = []
    for decay in [None, *args.decays]:
        rmse, seconds = train(args.preset, decay, fit_part, validation, sizes)
        validation_rows.append(
            {
                "variant": label(decay),
                "decay": decay,
                "rmse": rmse,
                "fit_s": seconds,
            }
        )
        print(json.dumps(validation_rows[-1]), flush=True)
        _partial(out, validation_rows, [])
    sparse = [r for r in validation_rows if r["decay"] is not None]
    chosen = min(sparse, key=lambda r: r["rmse"])["decay"]
    test_rows = []
    for decay in [None, chosen]:
        rmse, seconds = train(args.preset, decay, base, test, sizes)
        test_rows.append(
            {
                "variant": label(decay),
                "decay": decay,
                "rmse": rmse,
                "fit_s": seconds,
            }
        )
        print(json.dumps(test_rows[-1]), flush=True)
        _partial(out, validation_rows, test_rows)
    result = {
        "preset": args.preset,
        "protocol": protocol,
        "validation": validation_rows,
        "chosen_decay": chosen,
        "test": test_rows,
        "sparse_minus_dense": test_rows[1]["rmse"] - test_rows[0]["rmse"],
    }
    table = markdown(result)
    print(table)
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        keras=keras.__version__,
        device=_device(),
    )
    _results.write(out, table, result, machine)
    os.remove(out + ".partial.json")


def markdown(result):
    """The tables of one preset's `result` (as saved in the JSON)."""
    lines = [
        f"Preset '{result['preset']}' on {result['protocol']}; validation: "
        "a random tenth of the training part (trained on the rest); test: "
        "trained on the whole training part. Whole fit call (adapt "
        "included).",
        "",
        "| variant | validation RMSE | fit s |",
        "|---|---:|---:|",
        *(
            f"| {r['variant']} | {r['rmse']:.4f} | {r['fit_s']:.0f} |"
            for r in result["validation"]
        ),
        "",
        f"Chosen on validation: decay {result['chosen_decay']:g}",
        "",
        "| variant | test RMSE | fit s |",
        "|---|---:|---:|",
        *(
            f"| {r['variant']} | {r['rmse']:.4f} | {r['fit_s']:.0f} |"
            for r in result["test"]
        ),
        "",
        f"Sparse minus dense on test: {result['sparse_minus_dense']:+.4f}",
    ]
    return "\n".join(lines)


def _partial(out, validation_rows, test_rows):
    """The runs so far, in `<out>.partial.json` (removed at the end)."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".partial.json", "w") as file:
        json.dump({"validation": validation_rows, "test": test_rows}, file)


def _device():
    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    return "cpu"


if __name__ == "__main__":
    main()
