"""How far `nearest(center=...)` spreads cosine scores of implicit feedback.

The 'recommended' preset (implicit feedback on both columns) is trained
for `--epochs` epochs on ml-100k's u1.base (the test part is not read).
For a few well-known movies, the cosine scores of the 10 nearest movies
(among those with at least 20 training ratings) are measured three ways:

- `plain`: the vectors as the model uses them;
- `mean_only`: less the mean vector of the candidates (the former
  `center=True`);
- `centred`: `center=True`, less the mean and the mean's direction.

Usage:

    KERAS_BACKEND=jax python benchmarks/center_spread.py \\
        --data-dir ../shared/data/movielens

It writes `benchmarks/results/center_spread.{md,json}`.
"""

import argparse
import os
import sys

import keras
import numpy as np

from keras_catembed import cli
from keras_catembed import explore
from keras_catembed.datasets import movielens

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402

# ml-100k movie ids (0-based indices): Toy Story, Star Wars, Fargo,
# Return of the Jedi, Raiders of the Lost Ark.
QUERIES = (0, 49, 99, 180, 173)
MIN_RATINGS = 20


def spreads(matrix, allowed, query):
    """Top-10 cosine scores of `query` with the vectors of `matrix`."""
    mask = allowed.copy()
    mask[query] = False
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(matrix[query])
    scores = (matrix @ matrix[query]) / np.maximum(norms, 1e-12)
    return np.sort(scores[mask])[::-1][:10]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "center_spread")
    )
    args = parser.parse_args()
    ratings = movielens.load_ratings("ml-100k", data_dir=args.data_dir)
    train, _ = ratings.official_split("u1")
    model, _ = cli.train_model(
        train, "recommended", verbose=0, epochs=args.epochs, seed=args.seed
    )
    counts = np.bincount(train.movie_id, minlength=train.num_movies)
    allowed = counts >= MIN_RATINGS
    matrix = explore.embedding_matrix(model, "movie_id")
    used = allowed.copy()
    results = []
    for query in QUERIES:
        used[:] = allowed
        used[query] = True
        mean_only = matrix - matrix[used].mean(axis=0)
        _, centred = explore.nearest(
            model,
            "movie_id",
            query,
            k=10,
            candidates=allowed,
            center=True,
        )
        row = {"movie": str(ratings.titles[query]), "query": query}
        for name, scores in (
            ("plain", spreads(matrix, allowed, query)),
            ("mean_only", spreads(mean_only, allowed, query)),
            ("centred", centred),
        ):
            row[name] = {
                "top1": float(scores[0]),
                "top10": float(scores[-1]),
            }
        print(row, flush=True)
        results.append(row)
    lines = [
        "| movie | plain top-1 .. top-10 | mean only | centred |",
        "|---|---|---|---|",
    ]
    for row in results:
        cells = [
            f"{row[n]['top1']:.3f} .. {row[n]['top10']:.3f}"
            for n in ("plain", "mean_only", "centred")
        ]
        lines.append(f"| {row['movie']} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    machine = _results.machine_info(
        backend=keras.backend.backend(),
        keras=keras.__version__,
        epochs=args.epochs,
        min_ratings=MIN_RATINGS,
        command="python benchmarks/center_spread.py " + " ".join(sys.argv[1:]),
    )
    _results.write(args.out, text, results, machine)


if __name__ == "__main__":
    main()
