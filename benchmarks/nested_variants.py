"""Nested choice of the levers around `"recommended"`, then an ensemble.

The levers the library offers beyond `"recommended"` (implicit
feedback): a rating-weighted neighbourhood (`neighborhood=True`) and the
users' age group, gender and occupation as three more id columns. Which
of them help is chosen inside each outer fold, on a validation tenth
carved from that fold's training part only (seed 0): the four variants
(`recommended`, `+neighborhood`, `+demographics`, `+both`) train on the
other nine tenths with the preset's own recipe, and the one with the
lowest validation RMSE is retrained on the whole training part and
scored once on the fold's test part. The retrained model is an average
of `--members` models of seeds 0, 1, ... (the number is fixed before any
run, not chosen); the first member alone is reported too. No test rating
of a fold is used to choose anything, so the test figures and their mean
measure the whole procedure.

With `--time`, each of the four variants also runs with a `"user_day"`
column (8-dim; `Ratings.user_day()`, a vector and a bias per user and
day), so the choice is among eight.

With `--dataset ml-1m` the outer folds are the labels of ml-1m's fold
column (`ratings_no_timestamp.csv`, 1..5; `--folds 1` for one) and the
variants build on `"recommended-large"`; the demographics are ml-1m's
own (`users.dat`, beside the ratings).

Usage:

    KERAS_BACKEND=jax python benchmarks/nested_variants.py \\
        --data-dir ../shared/data/movielens
    KERAS_BACKEND=jax python benchmarks/nested_variants.py \\
        --data-dir ../shared/data/movielens --time \\
        --out benchmarks/results/nested_variants_time_ml-100k
    KERAS_BACKEND=jax python benchmarks/nested_variants.py \\
        --data-dir ../shared/data/movielens --dataset ml-1m --folds 1 \\
        --members 1

`--pair-dtype bfloat16` holds every variant's pairs in bfloat16
(`RatingModel(pair_dtype=...)`, about twice as fast on this CPU).

It prints a table per fold and writes
`benchmarks/results/nested_variants_<dataset>.{md,json}`.
"""

import argparse
import copy
import os
import sys
import time

import keras
import numpy as np

from keras_catembed import presets
from keras_catembed import training
from keras_catembed.datasets import movielens
from keras_catembed.evaluation import errors
from keras_catembed.evaluation.protocols import HoldOut

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import movielens_accuracy  # noqa: E402  (the official folds)

FEATURES = ["age", "gender", "occupation"]


def variants(time=False, preset="recommended"):
    """The configurations, each a preset dict built on `preset`."""
    base = presets.load(preset)
    result = {preset: base}
    neighborhood = copy.deepcopy(base)
    neighborhood["model"]["neighborhood"] = True
    result["+neighborhood"] = neighborhood
    result["+demographics"] = presets.with_columns(base, FEATURES)
    result["+both"] = presets.with_columns(neighborhood, FEATURES)
    if time:
        for name, config in list(result.items()):
            name = "+user_day" if name == preset else name + "+user_day"
            result[name] = presets.with_columns(config, ["user_day"])
    return result


# The preset each data set's variants build on.
PRESETS = {"ml-100k": "recommended", "ml-1m": "recommended-large"}


def predict(model, part):
    x = movielens.inputs(part, model.columns)
    return np.asarray(
        model.predict(x, batch_size=4096, verbose=0), "float64"
    ).reshape(-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--dataset", choices=["ml-100k", "ml-1m"], default="ml-100k"
    )
    parser.add_argument("--folds", nargs="*", default=None)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument(
        "--time",
        action="store_true",
        help="also each variant with a 'user_day' column",
    )
    parser.add_argument(
        "--epochs", type=int, help="override the recipe (quick checks only)"
    )
    parser.add_argument(
        "--pair-dtype",
        choices=["float32", "bfloat16"],
        default=None,
        help="the dtype of every variant's pairs (`pair_dtype`)",
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.dataset == "ml-1m" and args.time:
        parser.error("--time needs timestamps, which ml-1m's copy lacks")
    args.out = args.out or os.path.join(
        HERE, "results", f"nested_variants_{args.dataset}"
    )
    ratings, folds, protocol = movielens_accuracy.official_folds(
        args.dataset, args.data_dir, args.folds
    )
    configs = variants(time=args.time, preset=PRESETS[args.dataset])
    for config in configs.values():
        if args.epochs:
            config["recipe"]["epochs"] = args.epochs
        if args.pair_dtype is not None:
            config["model"]["pair_dtype"] = args.pair_dtype
    results = []
    for fold in folds:
        ((train_part, test_part),) = protocol([fold]).split_data(ratings)
        ((fit_part, validation),) = HoldOut(0.1, seed=0).split_data(train_part)
        start = time.perf_counter()
        scores = {}
        for name, config in configs.items():
            model, _ = training.train(fit_part, config, verbose=0, seed=0)
            scores[name] = errors(
                predict(model, validation), validation.rating
            )["rmse"]
            print(fold, name, "validation", round(scores[name], 4), flush=True)
        chosen = min(scores, key=scores.get)
        search_seconds = time.perf_counter() - start
        start = time.perf_counter()
        members = []
        for seed in range(args.members):
            model, _ = training.train(
                train_part, configs[chosen], verbose=0, seed=seed
            )
            members.append(predict(model, test_part))
        seconds = time.perf_counter() - start
        average = errors(np.mean(members, axis=0), test_part.rating)
        results.append(
            {
                "fold": fold,
                "validation_rmse": scores,
                "chosen": chosen,
                "test_rmse_single": errors(members[0], test_part.rating)[
                    "rmse"
                ],
                "test_rmse": average["rmse"],
                "test_mae": average["mae"],
                "search_seconds": search_seconds,
                "fit_and_test_seconds": seconds,
            }
        )
        print(results[-1], flush=True)
        _write(args, results)


def _write(args, results):
    names = list(results[0]["validation_rmse"])
    lines = [
        f"{args.dataset}, official folds; a variant chosen per fold on a "
        "validation "
        "tenth of its training part (seed 0), then an average of "
        f"{args.members} models (seeds 0..{args.members - 1}) retrained on "
        "the whole training part; test RMSE",
        "",
        "| fold | "
        + " | ".join(f"validation {n}" for n in names)
        + " | chosen | test, one model | test, average | seconds |",
        "|---|" + "---:|" * len(names) + "---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['fold']} | "
            + " | ".join(f"{r['validation_rmse'][n]:.4f}" for n in names)
            + f" | {r['chosen']} | {r['test_rmse_single']:.4f} | "
            f"{r['test_rmse']:.4f} | "
            f"{r['search_seconds'] + r['fit_and_test_seconds']:.0f} |"
        )
    if len(results) > 1:
        single = np.mean([r["test_rmse_single"] for r in results])
        average = np.mean([r["test_rmse"] for r in results])
        seconds = sum(
            r["search_seconds"] + r["fit_and_test_seconds"] for r in results
        )
        lines.append(
            "| mean | "
            + " | ".join("" for _ in names)
            + f" | | {single:.4f} | {average:.4f} | {seconds:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    _results.write(
        args.out,
        table,
        results,
        _results.machine_info(
            backend=keras.backend.backend(),
            members=args.members,
            dataset=args.dataset,
            pair_dtype=args.pair_dtype,
            protocol="nested: choice on HoldOut(0.1, seed=0) of each "
            "outer training part",
        ),
    )


if __name__ == "__main__":
    main()
