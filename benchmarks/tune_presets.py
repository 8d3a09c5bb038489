"""Searches RatingHyperModel on MovieLens, then scores the best on test folds.

The search sees only the training part of the first fold (ml-100k: u1.base;
ml-1m: every fold but fold 1 of the 5-fold split), with a validation part
carved from it at random; the test folds are never used to choose. The best
hyperparameters are then trained on each fold's training part and scored on
its test part, as in `movielens_accuracy.py`.

Usage:

    KERAS_BACKEND=jax python benchmarks/tune_presets.py --dataset ml-100k \\
        --data-dir ../shared/data/movielens --max-trials 12 --epochs 10

It prints and writes `benchmarks/results/tune_<dataset>.{md,json}`: the
search budget and wall time, every trial's validation RMSE, the best
hyperparameters and their test RMSE per fold.
"""

import argparse
import json
import os
import sys
import time

import keras
import keras_tuner
import numpy as np

from keras_catembed import cli
from keras_catembed.hypermodel import RatingHyperModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import movielens_accuracy  # noqa: E402  (the folds and error measures)


def folds(dataset, data_dir):
    if dataset == "ml-100k":
        return list(
            movielens_accuracy.folds_100k(os.path.join(data_dir, dataset))
        )
    return list(movielens_accuracy.folds_1m(data_dir))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument(
        "--data-dir",
        default=os.path.join(HERE, "..", "..", "shared", "data", "movielens"),
    )
    parser.add_argument("--max-trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--directory", default="/tmp/catembed-tune-presets")
    parser.add_argument("--max-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    all_folds = folds(args.dataset, args.data_dir)
    _, (train_full, _) = all_folds[0]
    train, validation = train_full.random_split(
        args.validation_fraction, seed=args.seed
    )
    hypermodel = RatingHyperModel(
        {"user_id": train.num_users, "movie_id": train.num_movies}
    )
    tuner = keras_tuner.BayesianOptimization(
        hypermodel,
        objective=hypermodel.objective,
        max_trials=args.max_trials,
        directory=args.directory,
        project_name=f"{args.dataset}-e{args.epochs}",
        seed=args.seed,
    )
    start = time.perf_counter()
    tuner.search(
        cli.inputs(train),
        train.rating,
        epochs=args.epochs,
        validation_data=(cli.inputs(validation), validation.rating),
        verbose=0,
    )
    search_seconds = time.perf_counter() - start
    trials = tuner.oracle.get_best_trials(num_trials=args.max_trials)
    best = tuner.get_best_hyperparameters()[0]
    print(f"search: {len(trials)} trials in {search_seconds:.0f} s")
    for trial in trials:
        print(f"  trial {trial.trial_id}: val_rmse {trial.score}")
    print("best:", json.dumps(best.values))

    scores = []
    for index, (fold, (fold_train, fold_test)) in enumerate(all_folds):
        if index >= args.max_folds:
            break
        keras.utils.set_random_seed(index)
        model = hypermodel.build(best)
        fit_start = time.perf_counter()
        model.fit(
            cli.inputs(fold_train),
            fold_train.rating,
            epochs=args.epochs,
            verbose=0,
            **hypermodel.fit_kwargs(best),
        )
        prediction = model.predict(
            cli.inputs(fold_test), batch_size=8192, verbose=0
        )
        rmse, mae = movielens_accuracy.errors(prediction, fold_test.rating)
        seconds = time.perf_counter() - fit_start
        scores.append(
            {"fold": fold, "rmse": rmse, "mae": mae, "seconds": seconds}
        )
        print(f"{fold}: RMSE {rmse:.4f} MAE {mae:.4f} ({seconds:.0f} s)")
    rmse = np.array([s["rmse"] for s in scores])
    summary = {
        "dataset": args.dataset,
        "backend": keras.backend.backend(),
        "max_trials": args.max_trials,
        "epochs": args.epochs,
        "search_seconds": search_seconds,
        "trials": [
            {
                "trial_id": t.trial_id,
                "val_rmse": t.score,
                "hyperparameters": t.hyperparameters.values,
            }
            for t in trials
        ],
        "best": best.values,
        "test": scores,
        "test_rmse_mean": float(rmse.mean()),
        "test_rmse_std": float(rmse.std()),
    }
    out = os.path.join(HERE, "results", f"tune_{args.dataset}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as file:
        json.dump(summary, file, indent=1)
    line = (
        f"| {args.dataset} | {args.max_trials} trials x {args.epochs} epochs "
        f"| {search_seconds / 60:.1f} min | {rmse.mean():.4f} ± "
        f"{rmse.std():.4f} ({len(scores)} folds) |"
    )
    with open(out + ".md", "w") as file:
        file.write(
            "| dataset | search budget | search time | test RMSE |\n"
            "|---|---|---:|---:|\n" + line + "\n\n"
            f"Best hyperparameters: `{json.dumps(best.values)}`\n"
        )
    print(line)
    return summary


if __name__ == "__main__":
    main()
