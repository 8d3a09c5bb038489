"""`RatingModel.recommend`: scoring every row through `predict` vs the grid.

The 'recommended' preset (implicit feedback and a neighbourhood) is
trained for `--epochs` epochs on a MovieLens training part (ml-100k's u1
or ml-1m's fold 1), then, in the same process, `recommend` ranks every
movie for the same users (their training movies left out) by both paths:

- `predict`: every user-movie row through `model.predict` (each row
  recomputes the implicit and neighbourhood sums of its user and movie);
- `grid`: each user's and each movie's vectors once, then only the head
  over the user x movie grid (the default for such a model).

The two must return the same items; the script checks it and records the
largest score difference. Training quality does not matter here, so a
short training is enough.

Usage:

    KERAS_BACKEND=jax python benchmarks/recommend.py \\
        --data-dir ../shared/data/movielens

It writes `benchmarks/results/recommend.{md,json}`.
"""

import argparse
import os
import sys
import time

import numpy as np

from keras_catembed import _recommend
from keras_catembed.datasets import movielens

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _preset_runs  # noqa: E402
from _preset_runs import PRESET  # noqa: E402


def timed(model, users, exclude, path, k):
    start = time.perf_counter()
    items, scores = _recommend.recommend(
        model, users, k, exclude=exclude, path=path
    )
    return items, scores, time.perf_counter() - start


def run(dataset, split, train, *, epochs, num_users, k, seed):
    model, _ = _preset_runs.train_preset(train, seed=seed, epochs=epochs)
    exclude = movielens.inputs(train)
    users = np.unique(train.user_id)
    chosen = np.random.default_rng(seed).choice(
        users, min(num_users, users.size), replace=False
    )
    # A first small call of each path, so that neither pays for tracing.
    for path in ("predict", "grid"):
        timed(model, chosen[:2], exclude, path, k)
    old_items, old_scores, old_seconds = timed(
        model, chosen, exclude, "predict", k
    )
    new_items, new_scores, new_seconds = timed(
        model, chosen, exclude, "grid", k
    )
    _, _, all_seconds = timed(model, users, exclude, "grid", k)
    return {
        "dataset": dataset,
        "split": split,
        "preset": PRESET,
        "epochs": epochs,
        "movies": int(train.num_movies),
        "k": k,
        "users_timed": int(chosen.size),
        "predict_seconds": old_seconds,
        "grid_seconds": new_seconds,
        "speedup": old_seconds / new_seconds,
        "same_items": bool(np.array_equal(old_items, new_items)),
        "max_score_difference": float(
            np.nanmax(np.abs(old_scores - new_scores))
        ),
        "all_users": int(users.size),
        "grid_seconds_all_users": all_seconds,
    }


def table(results):
    lines = [
        "| data | users | predict s | grid s | speed-up | same items | "
        "max score diff | grid s, all users |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['dataset']} | {r['users_timed']} | "
            f"{r['predict_seconds']:.2f} | {r['grid_seconds']:.2f} | "
            f"{r['speedup']:.1f}x | {r['same_items']} | "
            f"{r['max_score_difference']:.1e} | "
            f"{r['grid_seconds_all_users']:.2f} ({r['all_users']:,}) |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "recommend")
    )
    args = parser.parse_args()

    def run_split(dataset, split, train, test):
        return run(
            dataset,
            split,
            train,
            epochs=args.epochs,
            num_users=args.users,
            k=args.k,
            seed=args.seed,
        )

    _preset_runs.run_and_write("recommend.py", args, run_split, table)


if __name__ == "__main__":
    main()
