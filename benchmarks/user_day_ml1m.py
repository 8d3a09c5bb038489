"""The day column on a data set that never helped choose it (ml-1m).

The `"user_day"` column (`Ratings.user_day()`: a vector and a bias per
user and day, timeSVD++'s day-specific user effect) was first tried by
hand on a tenth of ml-100k's u1.base, which holds the test ratings of
u2..u5. This script asks the same question of other ratings: ml-1m's
users 1..2999, the part of ml-1m shipped with timestamps
(`ratings_users0001-2999_with_timestamps.dat`, 487,650 ratings). Nothing
in this project was chosen on them.

For each seed of `--seeds`, one random tenth of those ratings is the test
part (`HoldOut(0.1, seed=s)`); a preset (`--preset`, by default
`"recommended-large"`, unchanged) and the same preset with the column
(`presets.with_columns(preset, ["user_day"])`, 8-dim: the setting of
`nested_variants.py --time`, fixed before this run) each train once on
the other nine tenths, seeded with `s`, and are scored once on the test
part. Nothing is chosen on these figures: they confirm or refute a
decision made before.

Usage:

    KERAS_BACKEND=jax python benchmarks/user_day_ml1m.py \\
        --data-dir ../shared/data/movielens

It prints a table and writes `benchmarks/results/user_day_ml1m.{md,json}`.
"""

import argparse
import os
import sys
import tempfile
import time

import keras
import numpy as np

from keras_catembed import presets
from keras_catembed.datasets import movielens
from keras_catembed.evaluation import cross_validate
from keras_catembed.evaluation.protocols import HoldOut

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402

TIMESTAMPED = "ratings_users0001-2999_with_timestamps.dat"


def load_timestamped(data_dir):
    """ml-1m's users 1..2999 with their timestamps, as `Ratings`."""
    source = os.path.join(os.path.abspath(data_dir), "ml-1m")
    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "ml-1m")
        os.mkdir(target)
        # The loader reads `ratings.dat` and `movies.dat` of a release.
        os.symlink(
            os.path.join(source, TIMESTAMPED),
            os.path.join(target, "ratings.dat"),
        )
        os.symlink(
            os.path.join(source, "movies.dat"),
            os.path.join(target, "movies.dat"),
        )
        return movielens.load_ratings("ml-1m", data_dir=folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preset", default="recommended-large")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "user_day_ml1m")
    )
    args = parser.parse_args()
    ratings = load_timestamped(args.data_dir)
    configs = {
        args.preset: presets.load(args.preset),
        f"{args.preset} + user_day": presets.with_columns(
            args.preset, ["user_day"]
        ),
    }
    results = []
    for seed in args.seeds:
        for name, config in configs.items():
            start = time.perf_counter()
            scores = cross_validate(
                config, ratings, protocol=HoldOut(0.1, seed=seed), seed=seed
            )
            result = {
                "seed": seed,
                "model": name,
                "test_rmse": float(scores["test_rmse"][0]),
                "test_mae": float(scores["test_mae"][0]),
                "fit_time": float(scores["fit_time"][0]),
                "seconds": time.perf_counter() - start,
            }
            print(result, flush=True)
            results.append(result)
    table = markdown(results)
    print(table)
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        keras=keras.__version__,
        dataset=f"ml-1m users 1..2999 ({len(ratings):,} ratings)",
        protocol="HoldOut(0.1, seed=s), one model per seed",
        command="python benchmarks/user_day_ml1m.py " + " ".join(sys.argv[1:]),
    )
    _results.write(args.out, table, results, machine)


def markdown(results):
    seeds = sorted({r["seed"] for r in results})
    models = list(dict.fromkeys(r["model"] for r in results))
    lines = [
        "| model | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean | mean fit time (s) |",
        "|---|" + "---:|" * (len(seeds) + 2),
    ]
    for model in models:
        rows = [r for r in results if r["model"] == model]
        rmse = [
            next(r["test_rmse"] for r in rows if r["seed"] == s) for s in seeds
        ]
        lines.append(
            f"| {model} | "
            + " | ".join(f"{v:.4f}" for v in rmse)
            + f" | {np.mean(rmse):.4f} | "
            f"{np.mean([r['fit_time'] for r in rows]):.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
