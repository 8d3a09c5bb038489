"""Rating errors and the mean baselines a rating model is compared with."""

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from keras_catembed.datasets.movielens import Ratings


def errors(prediction: ArrayLike, target: ArrayLike) -> dict[str, float]:
    """RMSE and MAE of predictions against ratings.

    Args:
        prediction: Array of predicted ratings, shape `(n,)` or `(n, 1)`.
        target: Array of `n` true ratings.

    Returns:
        Dict `{"rmse": float, "mae": float}`.
    """
    predicted = np.asarray(prediction, "float64").reshape(-1)
    true = np.asarray(target, "float64").reshape(-1)
    if predicted.shape != true.shape:
        raise ValueError(
            "`prediction` and `target` must hold one value per rating. "
            f"Received: {predicted.shape[0]} predictions for "
            f"{true.shape[0]} ratings"
        )
    error = predicted - true
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }


def baselines(train: Ratings, test: Ratings) -> dict[str, dict[str, float]]:
    """RMSE and MAE of the global-mean and per-movie-mean predictors.

    The per-movie mean falls back to the global mean for movies with no
    training rating.

    Args:
        train: The training `keras_catembed.datasets.movielens.Ratings`,
            whose means are the predictions.
        test: The test `Ratings`.

    Returns:
        Dict `{"global mean": errors, "per-movie mean": errors}`, each as
        returned by `errors`.
    """
    mean = float(np.mean(train.rating))
    sums = np.bincount(
        train.movie_id, weights=train.rating, minlength=train.num_movies
    )
    counts = np.bincount(train.movie_id, minlength=train.num_movies)
    movie_mean = np.where(counts > 0, sums / np.maximum(counts, 1), mean)
    return {
        name: errors(prediction, test.rating)
        for name, prediction in (
            ("global mean", np.full(len(test), mean)),
            ("per-movie mean", movie_mean[test.movie_id]),
        )
    }


def table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """The rows' errors on the test part, in aligned columns (text)."""
    width = max([28, *(len(name) for name in rows)])
    lines = [f"{'model':<{width}} {'test RMSE':>9} {'test MAE':>9}"]
    for name, values in rows.items():
        lines.append(
            f"{name:<{width}} {values['rmse']:>9.4f} {values['mae']:>9.4f}"
        )
    return "\n".join(lines)
