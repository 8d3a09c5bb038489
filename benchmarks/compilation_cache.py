"""Compiled programs shared across folds, and JAX's persistent cache.

Each fold of `keras_catembed.evaluation.cross_validate` builds a new
model, so JAX traces and compiles its programs again, although for
folds of the same shape they are the same programs. The library shares
its training loop's compiled program between models whose programs are
the same, within a process (`keras_catembed.backend.jax_programs`).
JAX's own persistent compilation cache (`jax_compilation_cache_dir`)
keeps every compiled program on disk, keyed by its content: a later
fold, or a later process, loads them instead of compiling.

This script runs the same `cross_validate` of a preset over some of
ml-100k's official folds in four fresh processes, one after the other
(after an untimed one, which reads the libraries from disk first):

- `not shared`: the library's sharing off (`jax_programs.LIMIT = 0`),
  JAX's defaults: every fold compiles everything;
- `no cache`: the library's defaults (its loop shared from the second
  fold on), JAX's defaults;
- `cache, empty`: also JAX's cache, in a new, empty folder (the first
  fold compiles and writes, the later ones read);
- `cache, filled`: the same folder again, as a second run would find it.

The cache is set through JAX's environment variables
(`JAX_COMPILATION_CACHE_DIR`, and `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0`
so that programs of any compile time are kept). It reports each fold's
fit and test time and RMSE (the cache must not change them).

Usage:

    python benchmarks/compilation_cache.py --data-dir ../shared/data/movielens

`--epochs 6` trains the preset for 6 epochs in place of its 25, where
the compilations are more of each fold.

It prints a table and writes
`benchmarks/results/compilation_cache.{md,json}`.
"""

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402

RUNS = ("not shared", "no cache", "cache, empty", "cache, filled")
# JAX's settings of its persistent cache, as environment variables.
CACHE_VARIABLES = (
    "JAX_COMPILATION_CACHE_DIR",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
)


def worker(data_dir, preset, folds, shared, epochs):
    """One process's folds: fit and test times and RMSE of each."""
    from keras_catembed import presets
    from keras_catembed.backend import jax_programs
    from keras_catembed.datasets import movielens

    if not shared:
        jax_programs.LIMIT = 0
    from keras_catembed.evaluation import cross_validate
    from keras_catembed.evaluation.protocols import OfficialFolds

    ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    if epochs is not None:
        preset = presets.load(preset)
        preset["recipe"]["epochs"] = epochs
    results = []
    for fold in folds:
        scores = cross_validate(
            preset, ratings, protocol=OfficialFolds([fold]), seed=0
        )
        results.append(
            {
                "fold": fold,
                "fit_time": float(scores["fit_time"][0]),
                "test_time": float(scores["test_time"][0]),
                "test_rmse": float(scores["test_rmse"][0]),
                # Compilations of training loops so far in the process:
                # shared, and made.
                "loops": dict(jax_programs.counts),
            }
        )
    return results


def run(args, cache_dir, shared=True):
    """Runs the worker in a fresh JAX process; its results."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in CACHE_VARIABLES
    }
    if cache_dir is not None:
        # Programs of any compile time are kept.
        environment.update(zip(CACHE_VARIABLES, (cache_dir, "0"), strict=True))
    arguments = ["--data-dir", args.data_dir, "--preset", args.preset]
    if not shared:
        arguments.append("--not-shared")
    if args.epochs is not None:
        arguments += ["--epochs", args.epochs]
    return _results.run_worker(
        __file__, "jax", [*arguments, "--folds", *args.folds], environment
    )


def markdown(results, folds):
    """The table; the speed-up counts the folds after the first.

    The first fold compiles in every run, and the first timed process
    was slower in its first fold whichever run it was (an order
    effect), so the later folds are the comparison.
    """
    later = "+".join(folds[1:])
    lines = [
        "| run | "
        + " | ".join(f"{fold} fit s" for fold in folds)
        + f" | total fit + test s | {later} fit + test s | its speed-up "
        "over not shared | RMSE " + " / ".join(folds) + " |",
        "|---|" + "---:|" * (len(folds) + 3) + "---|",
    ]
    totals = {
        run: sum(r["fit_time"] + r["test_time"] for r in results[run])
        for run in RUNS
    }
    laters = {
        run: sum(r["fit_time"] + r["test_time"] for r in results[run][1:])
        for run in RUNS
    }
    for run in RUNS:
        lines.append(
            f"| {run} | "
            + " | ".join(f"{r['fit_time']:.2f}" for r in results[run])
            + f" | {totals[run]:.1f} | {laters[run]:.1f} | "
            f"{laters['not shared'] / laters[run]:.2f} | "
            + " / ".join(f"{r['test_rmse']:.4f}" for r in results[run])
            + " |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preset", default="recommended")
    parser.add_argument("--folds", nargs="+", default=["u1", "u2", "u3"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--not-shared", action="store_true", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="the preset's epochs in place of its recipe's",
    )
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "compilation_cache")
    )
    args = parser.parse_args()
    if args.worker:
        results = worker(
            args.data_dir,
            args.preset,
            args.folds,
            not args.not_shared,
            args.epochs,
        )
        print("RESULTS " + json.dumps(results))
        return
    args.data_dir = os.path.abspath(args.data_dir)
    # An untimed process first, so that no timed run is the first to read
    # the libraries from disk.
    warm = argparse.Namespace(**{**vars(args), "folds": args.folds[:1]})
    warm.epochs = 1
    run(warm, None)
    results = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for name in RUNS:
            results[name] = run(
                args,
                None if name in ("not shared", "no cache") else cache_dir,
                shared=name != "not shared",
            )
            print(name, results[name], flush=True)
    table = markdown(results, args.folds)
    print(table)
    machine = _results.machine_info(
        backend="jax",
        preset=args.preset,
        epochs=args.epochs,
        folds=args.folds,
        load_average=list(os.getloadavg()),
        command="python benchmarks/compilation_cache.py "
        + " ".join(sys.argv[1:]),
    )
    _results.write(args.out, table, results, machine)


if __name__ == "__main__":
    main()
