"""Accuracy of capped implicit feedback: `max_pairs_per_id` on ml-1m.

`RatingModel(max_pairs_per_id=k)` keeps a fixed random sample of at most
`k` pairs per id, which bounds the cost of a step at any data size;
`pairs_per_step=m` instead keeps more pairs and reads a moving window of
`m` of them per training step. This measures what each costs in
accuracy, on validation data only: the training part of ml-1m's first
fold (the other four folds), of which a random tenth is held out (drawn
with `--seeds`, which also seed the training; 0 by default). No test
fold is used, so the choice of a cap here can be reported on the test
folds later.

Each configuration trains the `recommended-large` preset (its own
training settings, as `catembed train` uses them) with the given cap;
`mlp-large` (the same model without implicit feedback) is the floor.

Usage:

    KERAS_BACKEND=jax python benchmarks/implicit_cap_accuracy.py \\
        --data-dir ../shared/data/movielens --caps none 8 32 256:8

`--sides user` describes users only (SVD++'s one-sided form,
`implicit={"user_id": "movie_id"}`), which halves the pairs a step reads.

It prints a markdown table and writes
`benchmarks/results/implicit_cap_accuracy.{md,json}`.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import movielens_accuracy  # noqa: E402

# `RatingModel(implicit=...)` for each `--sides`.
SIDES = {
    "both": True,
    "user": {"user_id": "movie_id"},
    "movie": {"movie_id": "user_id"},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--caps",
        nargs="+",
        default=["floor", "none", "8", "32"],
        help=(
            "'floor' (mlp-large), 'none' (every pair), integers, or "
            "'CAP:STEP' (max_pairs_per_id=CAP, pairs_per_step=STEP; "
            "STEP may name a window per column, 'user_id=16,movie_id=4')"
        ),
    )
    parser.add_argument("--epochs", type=int, help="override the preset")
    parser.add_argument(
        "--batch-size", type=int, help="override the preset's batch size"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        help="override the preset's learning rate",
    )
    parser.add_argument(
        "--sides",
        choices=sorted(SIDES),
        default="both",
        help=(
            "which columns implicit feedback describes: both (the preset), "
            "users only (by the movies they rated) or movies only"
        ),
    )
    parser.add_argument(
        "--refresh-after-reads",
        type=float,
        help=(
            "diagnostic: refresh the windows' anchors after the steps have "
            "read this many times the listed pairs (the library's default "
            "otherwise), with compiled calls of at most 8 steps so that "
            "the refreshes can come that often"
        ),
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        help=(
            "seeds of the held-out tenth and of the training: one run per "
            "seed and configuration"
        ),
    )
    parser.add_argument(
        "--out",
        default=os.path.join(HERE, "results", "implicit_cap_accuracy"),
    )
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from keras_catembed import _call_lengths
    from keras_catembed import _pair_windows
    from keras_catembed import training
    from keras_catembed.datasets.movielens import inputs

    if args.refresh_after_reads is not None:
        _pair_windows.REFRESH_AFTER_READS = args.refresh_after_reads
        _call_lengths.MAX_STEPS_PER_EXECUTION = 8
        _call_lengths.SECONDS_PER_EXECUTION = 0.0
    _, (whole, _) = next(movielens_accuracy.folds_1m(args.data_dir))
    # Per seed, the training part and its held-out tenth.
    splits = {}
    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(len(whole))
        held = len(whole) // 10
        splits[seed] = (
            whole.subset(np.sort(order[held:])),
            whole.subset(np.sort(order[:held])),
        )
    results = []
    for seed, cap in [(s, c) for s in args.seeds for c in args.caps]:
        train, validation = splits[seed]
        keras.utils.set_random_seed(seed)
        overrides = {} if args.epochs is None else {"epochs": args.epochs}
        if args.batch_size is not None:
            overrides["batch_size"] = args.batch_size
        if args.learning_rate is not None:
            overrides["learning_rate"] = args.learning_rate
        preset = "mlp-large" if cap == "floor" else "recommended-large"
        cap, _, step = cap.partition(":")
        windows = _results.pairs_per_step(step) if step else None
        if cap not in ("floor", "none"):
            overrides["max_pairs_per_id"] = int(cap)
        if windows:
            overrides["pairs_per_step"] = windows
        if preset != "mlp-large":
            overrides["implicit"] = SIDES[args.sides]
        start = time.perf_counter()
        model, _ = training.train(train, preset, verbose=0, **overrides)
        seconds = time.perf_counter() - start
        prediction = model.predict(
            inputs(validation, model.columns), batch_size=8192, verbose=0
        )
        rmse, mae = movielens_accuracy.errors(prediction, validation.rating)
        results.append(
            {
                "backend": keras.backend.backend(),
                "seed": seed,
                "preset": preset,
                "max_pairs_per_id": (
                    None if cap in ("floor", "none") else int(cap)
                ),
                "pairs_per_step": windows,
                "sides": None if preset == "mlp-large" else args.sides,
                "refresh_after_reads": _pair_windows.REFRESH_AFTER_READS,
                "batch_size": model.recipe.batch_size,
                "learning_rate": model.recipe.learning_rate,
                "max_steps_per_execution": (
                    _call_lengths.MAX_STEPS_PER_EXECUTION
                ),
                "val_rmse": rmse,
                "val_mae": mae,
                "fit_s": seconds,
                "train_rows": len(train),
                "validation_rows": len(validation),
            }
        )
        print(results[-1], flush=True)
        # Written after each configuration, so a long run keeps its figures.
        write(args, results)


def write(args, results):
    lines = [
        "| seed | preset | sides | max_pairs_per_id | pairs_per_step "
        "| val RMSE | val MAE | fit s |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cap = r["max_pairs_per_id"] or (
            "-" if r["preset"] == "mlp-large" else "all"
        )
        lines.append(
            f"| {r['seed']} | {r['preset']} "
            f"| {r.get('sides', 'both') or '-'} | {cap} "
            f"| {_results.steps_cell(r.get('pairs_per_step'))} "
            f"| {r['val_rmse']:.4f} "
            f"| {r['val_mae']:.4f} | {r['fit_s']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    machine = _results.machine_info(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        protocol="ml-1m fold-1 training part, 10% held out (by seed)",
        seeds=args.seeds,
        refresh_after_reads=args.refresh_after_reads,
    )
    _results.write(args.out, table, results, machine)


if __name__ == "__main__":
    main()
