"""Which blend is the most accurate within SVD++'s time on ml-100k?

A question for validation ratings only: nothing here reads a test rating,
and nothing here is reported as test.

The data are those of `blend_validation.py`: ml-100k's u1.base (or
another official fold's base, `--split u2` to `u5`), split into a fit
part and a random validation tenth (`--validation-seed`, 7 by default,
used by no committed search). On them:

- Surprise's SVD++ (`random_state=0`) fits the fit part and predicts the
  validation part: its time (fit plus prediction) is the budget's unit.
- The preset (`--preset`, with `--add-columns`) trains with
  `training.train` for each epoch count of `--epochs`, twice (seeds 0
  and 1). The second run's time is the one counted, since a
  cross-validation's later folds reuse the first fold's compiled loop
  (JAX).
- `--autoencoders` `ItemAutoencoder`s per size of `--hidden` train for
  the largest of `--autoencoder-epochs` epochs (Adam at 1e-3, batches of
  64 items, `l2` 100), each predicting the validation part at every
  count of `--autoencoder-epochs`; the time to each count is counted
  from the `fit` call (its compilation included).

Every blend of one preset model (epochs E) with the first k autoencoders
(size h, epochs A), the autoencoders sharing a weight w of a grid, is
scored, clipped to [1, 5]: its RMSE is the mean of the blend's with
either preset run (two seeds weigh less on the luck of one). Its time
is the preset model's fit time and the autoencoders', plus their
predictions. The chosen blend is the one with the lowest validation
RMSE among those whose time is at most `--budget` (1.0 by default: no
longer than SVD++) times SVD++'s: the configuration and weight are
chosen on these validation ratings, so the chosen figure is slightly
optimistic.

Usage:

    KERAS_BACKEND=jax python benchmarks/fast_blend_validation.py \\
        --data-dir ../shared/data/movielens

It prints the chosen blend and writes
`benchmarks/results/fast_blend_validation_ml-100k.{md,json}` (with
`--split u2`, `..._ml-100k_u2.{md,json}`; or `--out`'s path).

A nested choice per fold: run it once per fold's base, then
`surprise_comparison.py --blend-choices` trains each fold's own choice
on that fold's base and scores it on its test part. No fold's choice
then sees that fold's test ratings (a tenth of u1.base holds about 2,000
ratings of each of u2.test to u5.test, so u1's choice alone is not a
clean choice for the other folds).
"""

import argparse
import itertools
import os
import sys
import time

import keras
import numpy as np

from keras_catembed import ItemAutoencoder
from keras_catembed import presets
from keras_catembed import training
from keras_catembed.datasets import movielens

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
from blend_validation import rmse  # noqa: E402
from blend_validation import tenth  # noqa: E402
from blend_validation import training_part  # noqa: E402
from surprise_comparison import _surprise_fold  # noqa: E402

GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


class Snapshots(keras.callbacks.Callback):
    """An autoencoder's validation predictions at chosen epoch counts."""

    def __init__(self, model, x, counts):
        super().__init__()
        self.autoencoder, self.x, self.counts = model, x, set(counts)
        self.start = time.perf_counter()
        self.times, self.predictions = {}, {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.counts:
            self.times[epoch + 1] = time.perf_counter() - self.start
            start = time.perf_counter()
            self.predictions[epoch + 1] = np.asarray(
                self.autoencoder.predict(self.x, verbose=0), "float64"
            ).ravel()
            # The prediction is not training time.
            self.start += time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preset", default="recommended")
    parser.add_argument("--add-columns", nargs="*", default=["user_day"])
    parser.add_argument("--epochs", type=int, nargs="+", default=[6, 8, 10])
    parser.add_argument("--autoencoders", type=int, default=3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[250, 500])
    parser.add_argument(
        "--autoencoder-epochs",
        type=int,
        nargs="+",
        default=[10, 15, 20, 25, 30, 40, 50],
    )
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--validation-seed", type=int, default=7)
    parser.add_argument(
        "--split",
        choices=["u1", "u2", "u3", "u4", "u5"],
        default="u1",
        help="the official fold whose base the validation tenth is carved from",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    name = "fast_blend_validation_ml-100k"
    if args.split != "u1":
        name += f"_{args.split}"
    out = args.out or os.path.join(HERE, "results", name)

    part = training_part("ml-100k", args.data_dir, args.split)
    fit_rows, val_rows = tenth(len(part.rating), args.validation_seed)
    fit, validation = part.subset(fit_rows), part.subset(val_rows)
    target = np.asarray(validation.rating, "float64")

    import surprise

    svdpp = _surprise_fold(surprise.SVDpp(random_state=0), fit, validation)
    svdpp_time = svdpp["fit_time"] + svdpp["test_time"]
    print("SVD++", svdpp, flush=True)

    config = presets.with_columns(presets.load(args.preset), args.add_columns)
    models = {}
    for epochs in args.epochs:
        runs = []
        for seed in (0, 1):
            start = time.perf_counter()
            model, _ = training.train(
                fit, config, epochs=epochs, seed=seed, verbose=0
            )
            fit_time = time.perf_counter() - start
            start = time.perf_counter()
            predictions = np.asarray(
                model.predict(
                    movielens.inputs(validation, model.columns), verbose=0
                ),
                "float64",
            ).ravel()
            runs.append(
                {
                    "fit_time": fit_time,
                    "test_time": time.perf_counter() - start,
                    "rmse": rmse(predictions, target),
                    "predictions": predictions,
                }
            )
        models[epochs] = runs
        print(
            f"preset, {epochs} epochs",
            [(round(r["rmse"], 4), round(r["fit_time"], 2)) for r in runs],
            flush=True,
        )

    coders = {}
    for hidden in args.hidden:
        coders[hidden] = []
        for number in range(args.autoencoders):
            keras.utils.set_random_seed(100 + number)
            model = ItemAutoencoder(
                {"user_id": fit.num_users, "movie_id": fit.num_movies},
                hidden_units=hidden,
                l2=100.0,
                rating_range=(1.0, 5.0),
            )
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            x_val = movielens.inputs(validation, model.columns)
            snapshots = Snapshots(model, x_val, args.autoencoder_epochs)
            model.fit(
                movielens.inputs(fit, model.columns),
                fit.rating,
                batch_size=64,
                epochs=max(args.autoencoder_epochs),
                callbacks=[snapshots],
                verbose=0,
            )
            start = time.perf_counter()
            model.predict(x_val, verbose=0)
            coders[hidden].append(
                {
                    "times": snapshots.times,
                    "test_time": time.perf_counter() - start,
                    "predictions": snapshots.predictions,
                    "rmse": {
                        count: rmse(values, target)
                        for count, values in snapshots.predictions.items()
                    },
                }
            )
            print(
                f"autoencoder {hidden} #{number}",
                {k: round(v, 4) for k, v in coders[hidden][-1]["rmse"].items()},
                flush=True,
            )

    blends = []
    for epochs, hidden, count in itertools.product(
        args.epochs, args.hidden, args.autoencoder_epochs
    ):
        bases = [run["predictions"] for run in models[epochs]]
        timed = models[epochs][1]
        for k in range(1, args.autoencoders + 1):
            used = coders[hidden][:k]
            mean = np.mean([c["predictions"][count] for c in used], axis=0)
            seconds = (
                timed["fit_time"]
                + timed["test_time"]
                + sum(c["times"][count] + c["test_time"] for c in used)
            )
            for weight in GRID:
                scores = [
                    rmse(
                        np.clip((1 - weight) * base + weight * mean, 1, 5),
                        target,
                    )
                    for base in bases
                ]
                blends.append(
                    {
                        "epochs": epochs,
                        "hidden_units": hidden,
                        "autoencoders": k,
                        "autoencoder_epochs": count,
                        "weight": weight,
                        "seconds": seconds,
                        "rmse": float(np.mean(scores)),
                        "rmse_per_seed": scores,
                    }
                )
    allowed = [b for b in blends if b["seconds"] <= args.budget * svdpp_time]
    chosen = min(allowed, key=lambda b: b["rmse"]) if allowed else None
    print("chosen", chosen, "budget", args.budget * svdpp_time)

    lines = [
        f"Validation RMSE, ml-100k {args.split}.base (fit part "
        f"{len(fit.rating)}, validation {len(target)} ratings; no test "
        f"rating). SVD++: {svdpp['test_rmse']:.4f} in {svdpp_time:.1f} s "
        f"(fit and prediction); budget {args.budget:g} x that = "
        f"{args.budget * svdpp_time:.1f} s",
        "",
        "| model | validation RMSE | seconds |",
        "|---|---:|---:|",
    ]
    for epochs, runs in models.items():
        lines.append(
            f"| preset, {epochs} epochs (seeds 0 and 1; seed 1's time) | "
            f"{runs[0]['rmse']:.4f}, {runs[1]['rmse']:.4f} | "
            f"{runs[1]['fit_time'] + runs[1]['test_time']:.1f} |"
        )
    for hidden, runs in coders.items():
        for count in args.autoencoder_epochs:
            lines.append(
                f"| autoencoder {hidden} units, {count} epochs (mean of "
                f"{len(runs)} alone) | "
                f"{np.mean([r['rmse'][count] for r in runs]):.4f} | "
                f"{np.mean([r['times'][count] for r in runs]):.1f} |"
            )
    best = {}
    for b in allowed:
        key = (b["epochs"], b["hidden_units"], b["autoencoders"])
        if key not in best or b["rmse"] < best[key]["rmse"]:
            best[key] = b
    for (epochs, hidden, k), b in sorted(best.items()):
        lines.append(
            f"| blend: preset {epochs} epochs + {k} x {hidden} units "
            f"({b['autoencoder_epochs']} epochs), weight {b['weight']:g}, "
            f"within budget | {b['rmse']:.4f} | {b['seconds']:.1f} |"
        )
    if chosen is not None:
        lines += [
            "",
            f"Chosen: preset {chosen['epochs']} epochs + "
            f"{chosen['autoencoders']} x {chosen['hidden_units']} units "
            f"({chosen['autoencoder_epochs']} epochs), weight "
            f"{chosen['weight']:g}: {chosen['rmse']:.4f} in "
            f"{chosen['seconds']:.1f} s",
        ]
    print("\n".join(lines))
    result = {
        "args": vars(args),
        "svdpp": svdpp,
        "budget_seconds": args.budget * svdpp_time,
        "preset": {
            str(epochs): [
                {k: v for k, v in run.items() if k != "predictions"}
                for run in runs
            ]
            for epochs, runs in models.items()
        },
        "autoencoders": {
            str(hidden): [
                {
                    "times": run["times"],
                    "test_time": run["test_time"],
                    "rmse": run["rmse"],
                }
                for run in runs
            ]
            for hidden, runs in coders.items()
        },
        "blends": blends,
        "chosen": chosen,
    }
    _results.write(
        out,
        "\n".join(lines),
        result,
        _results.machine_info(backend=keras.backend.backend()),
    )


if __name__ == "__main__":
    main()
