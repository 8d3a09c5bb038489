"""Compares a preset with Surprise's SVD and SVD++ on the same folds.

Both libraries train on each fold's training part only and are scored on
its test part, in one process, one after the other, so that their wall
times are comparable. Surprise's algorithms keep their default settings
(those of Surprise's own benchmark table); the preset keeps its fixed
settings. Nothing is chosen on any rating of this run.

Usage:

    KERAS_BACKEND=jax python benchmarks/surprise_comparison.py \\
        --data-dir ../shared/data/movielens

`--folds` takes a subset of the folds (e.g. `--folds u1`). With
`--dataset ml-1m` the folds are the labels of ml-1m's fold column
(`ratings_no_timestamp.csv`, labels 1..5), e.g.

    KERAS_BACKEND=jax python benchmarks/surprise_comparison.py \
        --data-dir ../shared/data/movielens --dataset ml-1m \
        --preset recommended-large --folds 1

It prints the per-fold table and writes
`benchmarks/results/surprise_comparison_<dataset>.{md,json}` (with
`--out`, there instead). It needs the optional `scikit-surprise`
package (`pip install scikit-surprise`).
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

from keras_catembed.datasets import movielens
from keras_catembed.evaluation import cross_validate
from keras_catembed.evaluation.protocols import OfficialFolds

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402


def _surprise_fold(algorithm, train, test):
    """Fits a Surprise algorithm on `train`; RMSE, MAE and times on `test`."""
    import pandas as pd
    import surprise

    frame = pd.DataFrame(
        {"user": train.user_id, "item": train.movie_id, "rating": train.rating}
    )
    reader = surprise.Reader(rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_df(
        frame, reader
    ).build_full_trainset()
    start = time.perf_counter()
    algorithm.fit(trainset)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    predictions = np.array(
        [
            algorithm.predict(user, item).est
            for user, item in zip(
                test.user_id.tolist(), test.movie_id.tolist(), strict=True
            )
        ]
    )
    test_time = time.perf_counter() - start
    error = predictions - test.rating.astype("float64")
    return {
        "test_rmse": float(np.sqrt(np.mean(error**2))),
        "test_mae": float(np.mean(np.abs(error))),
        "fit_time": fit_time,
        "test_time": test_time,
    }


def _folds(dataset, data_dir, names):
    """The ratings, the fold names and a protocol of a list of them."""
    if dataset == "ml-100k":
        ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
        return ratings, names or ["u1", "u2", "u3", "u4", "u5"], OfficialFolds
    path = os.path.join(data_dir, "ml-1m", "ratings_no_timestamp.csv")
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    ratings = movielens.Ratings.from_arrays(
        table[:, 0], table[:, 1], table[:, 2], name="ml-1m"
    )
    labels = table[:, 3]
    names = [int(name) for name in names or sorted(set(labels.tolist()))]
    return (
        ratings,
        names,
        lambda folds: OfficialFolds(folds, fold_column=labels),
    )


def _summary(folds):
    summary = {}
    for name in ("test_rmse", "test_mae", "fit_time", "test_time"):
        values = np.array([fold[name] for fold in folds])
        summary[name] = values.tolist()
        summary[f"mean_{name}"] = float(values.mean())
        summary[f"std_{name}"] = float(values.std())
    summary["total_time"] = float(
        sum(fold["fit_time"] + fold["test_time"] for fold in folds)
    )
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--dataset", choices=["ml-100k", "ml-1m"], default="ml-100k"
    )
    parser.add_argument("--preset", default="recommended")
    parser.add_argument("--out", default=None)
    parser.add_argument("--folds", nargs="*", default=None)
    parser.add_argument(
        "--algorithms", nargs="*", default=["SVD", "SVDpp", "preset"]
    )
    args = parser.parse_args()
    import surprise

    ratings, names, protocol = _folds(args.dataset, args.data_dir, args.folds)
    splits = list(protocol(names).split_data(ratings))

    # Fold by fold, every algorithm in turn: on a shared machine each one
    # then meets about the same load.
    per_fold = {name: [] for name in args.algorithms}
    for fold, (train, test) in zip(names, splits, strict=True):
        for name in args.algorithms:
            if name == "preset":
                scores = cross_validate(
                    args.preset, ratings, protocol=protocol([fold])
                )
                per_fold[name].append(
                    {
                        key: float(scores[key][0])
                        for key in (
                            "test_rmse",
                            "test_mae",
                            "fit_time",
                            "test_time",
                        )
                    }
                )
            else:
                algorithm = getattr(surprise, name)(random_state=0)
                per_fold[name].append(_surprise_fold(algorithm, train, test))
            print(name, fold, per_fold[name][-1], flush=True)
    results = {}
    for name, folds_out in per_fold.items():
        label = (
            f"keras-catembed '{args.preset}'"
            if name == "preset"
            else f"Surprise {name}"
        )
        results[label] = _summary(folds_out)

    lines = [
        f"{args.dataset}, folds {', '.join(map(str, names))}; test RMSE "
        "per fold, mean and total time (fit + test, every fold)",
        "",
        "| model | " + " | ".join(map(str, names)) + " | mean | total time |",
        "|---|" + "---:|" * (len(names) + 2),
    ]
    for label, summary in results.items():
        per_fold = " | ".join(f"{v:.4f}" for v in summary["test_rmse"])
        lines.append(
            f"| {label} | {per_fold} | {summary['mean_test_rmse']:.4f} | "
            f"{summary['total_time']:.0f} s |"
        )
    table = "\n".join(lines)
    print(table)
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        dataset=args.dataset,
        protocol=f"OfficialFolds({names})",
        preset=args.preset,
        surprise=surprise.__version__,
        load_average=list(os.getloadavg()),
    )
    out = args.out or os.path.join(
        HERE, "results", f"surprise_comparison_{args.dataset}"
    )
    _results.write(out, table, results, machine)


if __name__ == "__main__":
    main()
