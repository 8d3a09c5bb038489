"""How many autoencoders should `training.blend` average?

A question for validation ratings only: nothing here reads a test rating,
and nothing here is reported as test.

The data are those of `blend_validation.py`: ml-100k's u1.base
(`--dataset ml-100k`) or the training part of ml-1m's random 90/10
split (`--dataset ml-1m`: `HoldOut(0.1, seed=0)`, or with `--split
seed3` the split of seed 3; its test part is dropped unread), or with
`--split fold1` to `fold5` the training part of that fold of ml-1m's
fold column. A random tenth of it
(`--validation-seed`, 7 by default, used by no committed search) is the
validation part; the blend trains on the rest, the fit part.

One `training.blend(fit, preset, members=--members,
autoencoders=--autoencoders, seed=--seed)` is built and trained. Its
autoencoders share one epoch count, chosen inside the fit part as the
library does. Every member then predicts the validation part, and the
blends of the preset model(s) with the first k autoencoders (k = 1 ..
`--autoencoders`, each sharing `--weight`, clipped to the ratings'
range) are scored: the blend with k autoencoders is exactly what
`training.blend(..., autoencoders=k)` would predict after the same
training. Each k is also scored over a grid of weights (printed and
saved), and the JSON's "chosen" is the rule of the docs applied to it:
the smallest count whose best weight scores within `--within` (0.0005)
of the best cell, at that weight. Chosen on these validation ratings,
the chosen cell's own figure is slightly optimistic.

Usage:

    KERAS_BACKEND=jax python benchmarks/blend_autoencoders.py \\
        --data-dir ../shared/data/movielens --dataset ml-1m \\
        --preset recommended-large --pair-dtype bfloat16

It prints a table and writes
`benchmarks/results/blend_autoencoders_<dataset>.{md,json}` (with
`--split fold2`, `..._<dataset>_fold2.{md,json}`; or `--out`'s path).
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

from keras_catembed import presets
from keras_catembed import training
from keras_catembed.datasets import movielens

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
from blend_validation import rmse  # noqa: E402
from blend_validation import tenth  # noqa: E402
from blend_validation import training_part  # noqa: E402

GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


class MemberTimes(keras.callbacks.Callback):
    """Seconds from the ensemble's `fit` call to each member's end."""

    def __init__(self):
        super().__init__()
        self.start = time.perf_counter()
        self.ends = []

    def on_train_end(self, logs=None):
        self.ends.append(time.perf_counter() - self.start)


def choose(blend_grid, within):
    """The count and weight a grid chooses, by the rule of the docs.

    `blend_grid[k - 1]` maps each weight to the validation RMSE of the
    blend with k autoencoders. The chosen count is the smallest whose
    best weight scores within `within` of the best cell; its weight is
    that best weight.
    """
    best = [min(grid.items(), key=lambda item: item[1]) for grid in blend_grid]
    lowest = min(score for _, score in best)
    for k, (weight, score) in enumerate(best, start=1):
        if score <= lowest + within:
            return {"autoencoders": k, "weight": float(weight), "rmse": score}
    raise AssertionError("the best cell is always within its own reach")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--dataset", choices=("ml-100k", "ml-1m"), default="ml-1m"
    )
    parser.add_argument(
        "--split",
        default="holdout",
        help="ml-1m: carve the validation tenth from the training part of "
        "the random 90/10 split (holdout: seed 0; seed1, seed2, ...: that "
        "seed's) or of one fold (fold1 to fold5) of the fold column",
    )
    parser.add_argument(
        "--within",
        type=float,
        default=0.0005,
        help="the chosen count is the smallest whose best weight scores "
        "within this much of the grid's best cell",
    )
    parser.add_argument("--preset", default="recommended-large")
    parser.add_argument(
        "--patience",
        type=int,
        default=20,
        help="epochs without a better inner validation RMSE before the "
        "choice of the autoencoders' epochs stops",
    )
    parser.add_argument("--pair-dtype", default=None)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--autoencoders", type=int, default=3)
    parser.add_argument("--weight", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-seed", type=int, default=7)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    name = f"blend_autoencoders_{args.dataset}"
    if args.split != "holdout":
        name += f"_{args.split}"
    out = args.out or os.path.join(HERE, "results", name)

    part = training_part(args.dataset, args.data_dir, args.split)
    fit_rows, val_rows = tenth(len(part.rating), args.validation_seed)
    fit, validation = part.subset(fit_rows), part.subset(val_rows)
    target = np.asarray(validation.rating, "float64")
    config = presets.load(args.preset)
    if args.pair_dtype is not None:
        config["model"]["pair_dtype"] = args.pair_dtype

    start = time.perf_counter()
    record = {}
    ensemble = training.blend(
        fit,
        config,
        members=args.members,
        autoencoders=args.autoencoders,
        weight=args.weight,
        patience=args.patience,
        seed=args.seed,
        record=record,
    )
    choosing = time.perf_counter() - start
    times = MemberTimes()
    ensemble.fit(
        movielens.inputs(fit, ensemble.columns),
        fit.rating,
        verbose=0,
        callbacks=[times],
    )
    low, high = ensemble.rating_range
    predictions = [
        np.asarray(
            member.predict(
                movielens.inputs(validation, member.columns),
                batch_size=4096,
                verbose=0,
            ),
            "float64",
        ).reshape(-1)
        for member in ensemble.members
    ]
    models = np.mean(predictions[: args.members], axis=0)
    coders = predictions[args.members :]
    seconds = np.diff([0.0, *times.ends])
    results = {
        "dataset": args.dataset,
        "preset": args.preset,
        "pair_dtype": args.pair_dtype,
        "num_fit": int(fit_rows.size),
        "num_validation": int(val_rows.size),
        "validation_seed": args.validation_seed,
        "seed": args.seed,
        "members": args.members,
        "weight": args.weight,
        "split": args.split,
        "patience": args.patience,
        "autoencoder_epochs": record["epochs"],
        "inner_rmse": record["inner_rmse"],
        "inner_curve": record["inner_curve"],
        "choosing_seconds": choosing,
        "member_seconds": [float(s) for s in seconds],
        "preset_rmse": rmse(models, target),
        "autoencoder_rmse": [rmse(p, target) for p in coders],
        "autoencoder_mean_rmse": [],
        "blend_rmse": [],
        "blend_grid": [],
    }

    def blend(k, w):
        mixed = w * np.mean(coders[:k], axis=0) + (1 - w) * models
        return rmse(np.clip(mixed, low, high), target)

    for k in range(1, args.autoencoders + 1):
        results["autoencoder_mean_rmse"].append(
            rmse(np.mean(coders[:k], axis=0), target)
        )
        results["blend_rmse"].append(blend(k, args.weight))
        results["blend_grid"].append({str(w): blend(k, w) for w in GRID})

    results["within"] = args.within
    results["chosen"] = choose(results["blend_grid"], args.within)

    label = f"{args.members} x {args.preset}"
    lines = [
        f"Validation RMSE, {args.dataset} ({results['num_fit']} fit, "
        f"{results['num_validation']} validation ratings; no test rating); "
        f"autoencoders' epochs {record['epochs']} (chosen in {choosing:.0f} s)",
        "",
        "| model | validation RMSE | its training s |",
        "|---|---:|---:|",
        f"| {label} | {results['preset_rmse']:.4f} | "
        f"{sum(seconds[: args.members]):.0f} |",
    ]
    for k in range(1, args.autoencoders + 1):
        lines.append(
            f"| autoencoder {k} | {results['autoencoder_rmse'][k - 1]:.4f} "
            f"| {seconds[args.members + k - 1]:.0f} |"
        )
    for k in range(1, args.autoencoders + 1):
        lines.append(
            f"| mean of the first {k} autoencoders | "
            f"{results['autoencoder_mean_rmse'][k - 1]:.4f} | |"
        )
    for k in range(1, args.autoencoders + 1):
        lines.append(
            f"| blend: {label} + {k} autoencoder(s), weight {args.weight:g} "
            f"| {results['blend_rmse'][k - 1]:.4f} | |"
        )
    table = "\n".join(lines)
    print(table)
    for k, grid in enumerate(results["blend_grid"], start=1):
        print(k, {w: round(v, 4) for w, v in grid.items()})
    print("chosen:", results["chosen"])
    machine = _results.machine_info(backend=keras.backend.backend())
    _results.write(out, table, results, machine)


if __name__ == "__main__":
    main()
