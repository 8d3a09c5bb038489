"""Ranking metrics of a MovieLens model next to the most-popular baseline.

`ranking_rows` scores the top-k lists of a trained model and of
`MostPopular` on a test part; `ranking_table` prints them in aligned
columns (`catembed evaluate --ranking`).
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_catembed.datasets.movielens import Ratings

# The metrics of `ranking_rows`, in table order, with their headings.
COLUMNS = (
    ("precision", "P@{k}"),
    ("recall", "R@{k}"),
    ("ndcg", "NDCG@{k}"),
    ("map", "MAP@{k}"),
    ("mrr", "MRR@{k}"),
    ("hit_rate", "HR@{k}"),
    ("coverage", "coverage"),
)


def ranking_rows(
    model: Any,
    train: Ratings,
    test: Ratings,
    *,
    k: int = 10,
    relevance_threshold: float | None = 4.0,
) -> dict[str, dict[str, float]]:
    """Ranking metrics of `model` and of the most-popular baseline.

    Each test user with a relevant test rating gets `k` movies among all
    movies of the release, leaving out the movies the user rated in
    `train`. See `keras_catembed.evaluation.ranking_metrics`.

    Args:
        model: A trained `RatingModel` on `"user_id"`, `"movie_id"` and
            perhaps user features.
        train: The training `Ratings`: what is left out, and what the
            baseline counts.
        test: The test `Ratings`.
        k: Positive integer. The length of each list.
        relevance_threshold: A test rating at least this is relevant.

    Returns:
        Dict `{"most popular": metrics, "model": metrics}`.
    """
    from keras_catembed.datasets.movielens import inputs
    from keras_catembed.evaluation import MostPopular
    from keras_catembed.evaluation import ranking_metrics

    candidates = np.arange(train.num_movies)
    x_train = inputs(train)
    options: dict[str, Any] = {
        "k": k,
        "exclude": x_train,
        "relevance_threshold": relevance_threshold,
        "candidates": candidates,
        "user_column": "user_id",
        "item_column": "movie_id",
    }
    baseline = MostPopular(
        x_train,
        user_column="user_id",
        item_column="movie_id",
        candidates=candidates,
    )
    return {
        "most popular": ranking_metrics(
            baseline, inputs(test), test.rating, **options
        ),
        "model": ranking_metrics(
            model, inputs(test, model.columns), test.rating, **options
        ),
    }


def ranking_table(rows: Mapping[str, Mapping[str, float]], k: int) -> str:
    """The rows' ranking metrics (`ranking_rows`), in aligned columns."""
    width = max([28, *(len(name) for name in rows)])
    heads = [head.format(k=k) for _, head in COLUMNS]
    lines = [f"{'model':<{width}}" + "".join(f" {h:>9}" for h in heads)]
    for name, values in rows.items():
        lines.append(
            f"{name:<{width}}"
            + "".join(f" {values[key]:>9.4f}" for key, _ in COLUMNS)
        )
    return "\n".join(lines)
