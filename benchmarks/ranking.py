"""Ranking metrics at k: the 'recommended' preset against most-popular.

Protocol:

- ml-100k: the official fold u1 (u1.base -> u1.test).
- ml-1m: fold 1 of the 5-fold split (with a copy that has a `siren_fold`
  column, as in this project's shared data, its fold 1; with an official
  release, a seeded random 5-fold split, as in movielens_accuracy.py).

On each, `RatingModel.from_preset("recommended")` is trained on the
training part with the preset's own settings (`--epochs-1m` shortens the
ml-1m run; the cosine schedule then spans the shorter run), nothing is
chosen on the test part, and `keras_catembed.evaluation.ranking_rows`
scores it and the most-popular baseline: each test user with a test
rating >= 4 gets the k movies scored best among all movies of the
release, the user's training movies left out (see
`keras_catembed.evaluation.ranking_metrics`).

Usage:

    KERAS_BACKEND=jax python benchmarks/ranking.py \\
        --data-dir ../shared/data/movielens

It prints a markdown table and writes it with the raw figures to
`benchmarks/results/ranking.{md,json}`.
"""

import argparse
import os
import sys
import time

import numpy as np

from keras_catembed import _recommend
from keras_catembed import evaluation
from keras_catembed import presets
from keras_catembed.datasets.movielens import inputs
from keras_catembed.evaluation import METRICS

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _preset_runs  # noqa: E402
from _preset_runs import PRESET  # noqa: E402

RELEVANCE_THRESHOLD = 4.0


def sample_users(test, num_users, seed):
    """The test ratings of `num_users` random users with a relevant one.

    Returns `(test part, number of users to choose from)`; all of `test`
    when `num_users` is `None`.
    """
    users = np.unique(test.user_id[test.rating >= RELEVANCE_THRESHOLD])
    if num_users is None or num_users >= users.size:
        return test, users.size
    chosen = np.random.default_rng(seed).choice(users, num_users, replace=False)
    return test.subset(np.flatnonzero(np.isin(test.user_id, chosen))), (
        users.size
    )


def run(dataset, split, train, test, *, k, epochs, num_users, seed):
    model, train_seconds = _preset_runs.train_preset(
        train, seed=seed, epochs=epochs
    )
    rmse = evaluation.errors(
        model.predict(inputs(test, model.columns), batch_size=8192, verbose=0),
        test.rating,
    )["rmse"]
    ranked_test, eligible = sample_users(test, num_users, seed)
    start = time.perf_counter()
    rows = evaluation.ranking_rows(
        model, train, ranked_test, k=k, relevance_threshold=RELEVANCE_THRESHOLD
    )
    rank_seconds = time.perf_counter() - start
    return {
        "dataset": dataset,
        "split": split,
        "train_ratings": len(train),
        "test_ratings": len(test),
        "movies": train.num_movies,
        "preset": PRESET,
        "epochs": epochs or presets.recipe(PRESET).epochs,
        "preset_epochs": presets.recipe(PRESET).epochs,
        "seed": seed,
        "k": k,
        "relevance": f"test rating >= {RELEVANCE_THRESHOLD:g}",
        "users": rows["model"]["users"],
        "users_with_a_relevant_test_rating": int(eligible),
        "users_sampled": num_users is not None and num_users < eligible,
        "model_test_rmse": rmse,
        "model": {m: rows["model"][m] for m in METRICS},
        "most_popular": {m: rows["most popular"][m] for m in METRICS},
        "train_seconds": train_seconds,
        "ranking_seconds": rank_seconds,
        "recommend_path": _recommend.scorer_kind(model).__name__,
    }


def table(results):
    k = results[0]["k"]
    heads = ["P", "R", "NDCG", "MAP", "MRR", "HR"]
    lines = [
        "| data | split | recommender | epochs | users | "
        + " | ".join(f"{h}@{k}" for h in heads)
        + " | coverage |",
        "|---|---|---|---:|---:|" + "---:|" * (len(heads) + 1),
    ]
    for result in results:
        for key, name in (
            ("most_popular", "most popular"),
            ("model", f"{result['preset']} preset"),
        ):
            epochs = result["epochs"] if key == "model" else "-"
            values = " | ".join(
                f"{result[key][m]:.4f}" for m in METRICS if m != "coverage"
            )
            lines.append(
                f"| {result['dataset']} | {result['split']} | {name} | "
                f"{epochs} | {result['users']:,} | {values} | "
                f"{result[key]['coverage']:.4f} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    parser.add_argument(
        "--epochs-1m",
        type=int,
        default=1,
        help="epochs on ml-1m (the preset's 25 take far longer)",
    )
    parser.add_argument(
        "--users-1m",
        type=int,
        default=None,
        help="on ml-1m, rank for this many random test users (default: "
        "every test user with a relevant rating)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "ranking")
    )
    args = parser.parse_args()

    def run_split(dataset, split, train, test):
        is_1m = dataset == "ml-1m"
        return run(
            dataset,
            split,
            train,
            test,
            k=args.k,
            epochs=args.epochs_1m if is_1m else None,
            num_users=args.users_1m if is_1m else None,
            seed=args.seed,
        )

    _preset_runs.run_and_write("ranking.py", args, run_split, table)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
