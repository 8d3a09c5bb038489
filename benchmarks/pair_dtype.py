"""bfloat16 pair products (`RatingModel(pair_dtype="bfloat16")`) on ml-1m.

For each variant of `"recommended-large"` (as `nested_variants.py` names
them) and each pair dtype, one model trains with the preset's recipe on
ml-1m fold 1's training part less a validation tenth (`HoldOut(0.1,
seed=0)`, the part on which `nested_variants.py` chose), and is scored on
that tenth. No test rating is read. Reported: validation RMSE and MAE,
the whole `training.train` call (construction, `adapt`, compilation and
every epoch) and the median epoch after the first (the steady state).

    KERAS_BACKEND=jax python benchmarks/pair_dtype.py \
        --data-dir ../shared/data/movielens

`--backends jax torch tensorflow` runs each backend in its own process
(`--epochs 2` for a timing-only comparison: its RMSE is not the
recipe's). `--batch-sizes` and `--learning-rates` train every
combination in place of the recipe's own: bfloat16 products compute
every id's sums at each step, so their cost per epoch falls with the
number of steps.
"""

import argparse
import copy
import os
import statistics
import sys
import time

import keras

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import _timing  # noqa: E402
import movielens_accuracy  # noqa: E402
import nested_variants  # noqa: E402

from keras_catembed import training  # noqa: E402
from keras_catembed.evaluation import errors  # noqa: E402
from keras_catembed.evaluation.protocols import HoldOut  # noqa: E402


def measure(
    data_dir,
    variants,
    pair_dtypes,
    epochs,
    batch_sizes=(None,),
    learning_rates=(None,),
):
    """Trains every variant in every pair dtype; one result each.

    And at every batch size and learning rate given (None: the recipe's).
    """
    ratings, _, protocol = movielens_accuracy.official_folds(
        "ml-1m", data_dir, [1]
    )
    ((train_part, _),) = protocol([1]).split_data(ratings)
    ((fit_part, validation),) = HoldOut(0.1, seed=0).split_data(train_part)
    configs = nested_variants.variants(preset="recommended-large")
    results = []
    grid = [
        (name, batch_size, learning_rate, pair_dtype)
        for name in variants
        for batch_size in batch_sizes
        for learning_rate in learning_rates
        for pair_dtype in pair_dtypes
    ]
    for name, batch_size, learning_rate, pair_dtype in grid:
        config = copy.deepcopy(configs[name])
        config["model"]["pair_dtype"] = pair_dtype
        recipe = config["recipe"]
        own = (recipe["batch_size"], recipe["learning_rate"])
        if epochs is not None:
            recipe["epochs"] = epochs
        if batch_size is not None:
            recipe["batch_size"] = batch_size
        if learning_rate is not None:
            recipe["learning_rate"] = learning_rate
        epoch_times = _timing.epoch_timer(from_epoch_begin=True)
        start = time.perf_counter()
        model, _ = training.train(
            fit_part, config, verbose=0, seed=0, callbacks=[epoch_times]
        )
        seconds = time.perf_counter() - start
        score = errors(
            nested_variants.predict(model, validation), validation.rating
        )
        results.append(
            {
                "backend": keras.backend.backend(),
                "variant": name,
                "pair_dtype": pair_dtype,
                "batch_size": recipe["batch_size"],
                "learning_rate": recipe["learning_rate"],
                "recipe": (recipe["batch_size"], recipe["learning_rate"])
                == own,
                "epochs": len(epoch_times.seconds),
                "validation_rmse": score["rmse"],
                "validation_mae": score["mae"],
                "train_seconds": seconds,
                "first_epoch_seconds": epoch_times.seconds[0],
                "steady_epoch_seconds": statistics.median(
                    epoch_times.seconds[1:] or epoch_times.seconds
                ),
            }
        )
        print(results[-1], flush=True)
    return results


def add_speedups(results):
    """Each result's float32 time over its own, same backend and variant."""

    def key(r):
        # Results of earlier runs have no batch size or learning rate.
        return (
            r["backend"],
            r["variant"],
            r.get("batch_size"),
            r.get("learning_rate"),
        )

    base = {key(r): r for r in results if r["pair_dtype"] == "float32"}
    # The recipe's own batch size and learning rate, per pair dtype.
    recipe = {
        (r["backend"], r["variant"], r["pair_dtype"]): r
        for r in results
        if r.get("recipe", True)
    }
    for r in results:
        reference = base.get(key(r))
        for name in ("train_seconds", "steady_epoch_seconds"):
            r[name.replace("seconds", "speedup")] = (
                None if reference is None else reference[name] / r[name]
            )
        own = recipe.get((r["backend"], r["variant"], r["pair_dtype"]))
        r["train_speedup_vs_recipe"] = (
            None if own is None else own["train_seconds"] / r["train_seconds"]
        )
    return results


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def _table(results):
    lines = [
        "| backend | variant | pair dtype | batch size | learning rate | "
        "epochs | validation RMSE | validation MAE | whole train s | "
        "vs float32 | vs the recipe's | first epoch s | steady epoch s | "
        "vs float32 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['variant']} | {r['pair_dtype']} | "
            f"{r.get('batch_size', '-')} | {r.get('learning_rate', '-')} | "
            f"{r['epochs']} | {r['validation_rmse']:.4f} | "
            f"{r['validation_mae']:.4f} | {r['train_seconds']:.1f} | "
            f"{_ratio(r['train_speedup'])} | "
            f"{_ratio(r['train_speedup_vs_recipe'])} | "
            f"{r['first_epoch_seconds']:.2f} | "
            f"{r['steady_epoch_seconds']:.2f} | "
            f"{_ratio(r['steady_epoch_speedup'])} |"
        )
    return "\n".join(lines)


def _list(option, values):
    """`option` and its values as arguments, or nothing for the default."""
    return [] if values == [None] else [option, *map(str, values)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--variants",
        nargs="*",
        default=["recommended-large", "+both"],
        help="names of nested_variants.variants (recommended-large, "
        "+neighborhood, +demographics, +both)",
    )
    parser.add_argument(
        "--pair-dtypes", nargs="*", default=["float32", "bfloat16"]
    )
    parser.add_argument("--epochs", type=int, default=None)
    for option, kind, what in (
        ("--batch-sizes", int, "batch size"),
        ("--learning-rates", float, "peak learning rate"),
    ):
        parser.add_argument(
            option,
            nargs="*",
            type=kind,
            default=[None],
            help=f"in place of the recipe's {what}, each in turn",
        )
    parser.add_argument(
        "--backends",
        nargs="*",
        default=None,
        help="run each in its own process (default: this process's)",
    )
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    grid = (
        args.data_dir,
        args.variants,
        args.pair_dtypes,
        args.epochs,
        args.batch_sizes,
        args.learning_rates,
    )
    arguments = [
        "--data-dir",
        args.data_dir,
        "--variants",
        *args.variants,
        "--pair-dtypes",
        *args.pair_dtypes,
        *(["--epochs", args.epochs] if args.epochs is not None else []),
        *_list("--batch-sizes", args.batch_sizes),
        *_list("--learning-rates", args.learning_rates),
    ]
    if args.worker:
        import json

        results = measure(*grid)
        print("RESULTS " + json.dumps(results), flush=True)
        return
    if args.backends:
        results = []
        for backend in args.backends:
            results += _results.run_worker(__file__, backend, arguments)
    else:
        results = measure(*grid)
    out = args.out or os.path.join(HERE, "results", "pair_dtype_ml-1m")
    machine = _results.machine_info(
        epochs=args.epochs,
        batch_sizes=args.batch_sizes,
        learning_rates=args.learning_rates,
        protocol="ml-1m fold-1 training part less HoldOut(0.1, seed=0); "
        "scored on that tenth",
        load_average=list(os.getloadavg()),
    )
    table = _table(add_speedups(results))
    print(table)
    _results.write(out, table, results, machine)


if __name__ == "__main__":
    main()
