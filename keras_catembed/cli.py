"""The `catembed` command: train, evaluate and explore MovieLens models.

Run `catembed --help` (or `python -m keras_catembed --help`). The Keras
backend comes from `KERAS_BACKEND`, as everywhere in Keras.
"""

import argparse
import json
import math
import os
import re
import sys

import numpy as np

from keras_catembed import presets

COLUMNS = ("user_id", "movie_id")
SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub", "random", "temporal")


class CommandError(Exception):
    """An error reported as one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are `CommandError`s.

    `main` prints them as the one line `catembed: error: ...` (exit
    status 2), like every other mistake, instead of argparse's usage block.
    """

    def error(self, message):
        raise CommandError(f"{message} (see {self.prog} --help)")


class _ShowVersion(Exception):
    """Raised by `--version`; `main` prints the version."""


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="print the version of keras-catembed and exit",
        )

    def __call__(self, parser, namespace, values, option_string=None):
        raise _ShowVersion()


def _add_data_arguments(parser, from_model=False):
    if from_model:
        # Defaults to what `catembed train` recorded in the model.
        parser.add_argument(
            "--dataset",
            default=None,
            help="MovieLens release, e.g. ml-100k, ml-1m (default: the one "
            "the model was trained on, as catembed train records it)",
        )
        parser.add_argument(
            "--data-dir",
            default=None,
            help="folder or zip holding the release; nothing is downloaded "
            "(default: the one the model was trained from, if recorded)",
        )
    else:
        parser.add_argument(
            "--dataset",
            default="ml-100k",
            help="MovieLens release, e.g. ml-100k, ml-1m (default: ml-100k)",
        )
        parser.add_argument(
            "--data-dir",
            default=None,
            help="folder or zip holding the release; nothing is downloaded",
        )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="fail instead of downloading when nothing is cached",
    )


def _add_split_arguments(parser):
    parser.add_argument(
        "--split",
        default=None,
        choices=SPLITS,
        help="held-out part: an official ml-100k fold, 'random' or "
        "'temporal' (default: u1 for ml-100k, else random)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="test share of a random split (default: 0.2)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of the split, the initial weights, the shuffling "
        "and dropout; the same seed repeats a CPU run exactly (default: 0)",
    )


def _build_parser():
    parser = _Parser(
        prog="catembed",
        description="Entity-embedding rating models on MovieLens.",
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a model and compare it with baselines",
        description="Train a RatingModel on a MovieLens release and print "
        "RMSE and MAE on the held-out part next to the global-mean and "
        "per-movie-mean baselines.",
    )
    _add_data_arguments(train)
    _add_split_arguments(train)
    train.add_argument(
        "--preset",
        default="auto",
        choices=["auto", *sorted(presets.PRESETS)],
        help="model and training configuration (default: auto, the "
        "recommended preset for the size of the training set)",
    )
    train.add_argument(
        "--epochs", type=int, help="override the preset: passes over the data"
    )
    train.add_argument(
        "--batch-size", type=int, help="override the preset: ratings per step"
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        help="override the preset: Adam's (peak) learning rate, > 0",
    )
    train.add_argument(
        "--embedding-dim",
        help="override the preset: an integer or 'auto'",
    )
    train.add_argument(
        "--hidden-units",
        help="override the preset: comma-separated widths, '' for none",
    )
    train.add_argument(
        "--ema-momentum",
        type=float,
        help="keep a moving average of the weights with this momentum "
        "(e.g. 0.999) and use it as the final weights",
    )
    train.add_argument(
        "--dropout",
        type=float,
        help="override the preset: dropout rate in [0, 1)",
    )
    train.add_argument(
        "--bias-terms",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the preset",
    )
    train.add_argument(
        "--rating-range",
        help="override the preset: 'low,high', or 'none' for a linear output",
    )
    train.add_argument(
        "--implicit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the preset: implicit feedback (users described by "
        "the movies they rated, movies by their raters)",
    )
    train.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="train on the first N training rows only (quick runs)",
    )
    train.add_argument(
        "--similar",
        metavar="TITLE",
        help="also list the 10 movies nearest to this title (among movies "
        "with at least 20 ratings)",
    )
    train.add_argument(
        "--save",
        metavar="PATH",
        help="write the trained model to this .keras file (its folder must "
        "exist); written before --plot and --similar run",
    )
    train.add_argument(
        "--plot",
        metavar="PATH",
        help="write a 2-D map of the movie embeddings (PNG, or another "
        "format matplotlib writes, by the suffix)",
    )
    train.add_argument(
        "--history-plot",
        metavar="PATH",
        help="write a chart of the training and test RMSE per epoch (PNG, "
        "or another format matplotlib writes, by the suffix)",
    )
    train.add_argument(
        "--verbose",
        type=int,
        default=None,
        choices=(0, 1, 2),
        help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line "
        "per epoch (default: 1 on a terminal, else 2)",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a saved model on a held-out part",
        description="Print the test RMSE and MAE of a model saved by "
        "catembed train next to the baselines; with --ranking, also the "
        "ranking metrics of its top-k lists next to the most-popular "
        "baseline (needs the [ranking] extra).",
    )
    evaluate.add_argument(
        "--model", required=True, help="a .keras file saved by catembed train"
    )
    _add_data_arguments(evaluate)
    _add_split_arguments(evaluate)
    evaluate.add_argument(
        "--ranking",
        action="store_true",
        help="also print precision, recall, NDCG, MAP, MRR and hit rate at "
        "k and catalogue coverage of each test user's top-k movies (the "
        "user's training movies left out), next to recommending the most "
        "rated training movies",
    )
    evaluate.add_argument(
        "-k",
        type=int,
        default=None,
        help="length of each recommendation list for --ranking (default: 10)",
    )
    evaluate.add_argument(
        "--relevance-threshold",
        type=float,
        default=4.0,
        help="for --ranking, a test movie is relevant to its user when "
        "rated at least this (default: 4.0)",
    )

    similar = commands.add_parser(
        "similar", help="movies whose embeddings are nearest to a movie"
    )
    similar.add_argument(
        "--model", required=True, help="a .keras file saved by catembed train"
    )
    _add_data_arguments(similar, from_model=True)
    similar.add_argument(
        "--movie", required=True, help='a title, e.g. "Toy Story (1995)"'
    )
    similar.add_argument(
        "-k",
        type=int,
        default=10,
        help="how many movies to list (default: 10)",
    )
    similar.add_argument(
        "--metric",
        default="cosine",
        choices=("cosine", "euclidean", "dot"),
        help="how nearness is measured between embeddings (default: cosine)",
    )
    similar.add_argument(
        "--center",
        action="store_true",
        help="subtract the mean vector of the candidate movies (those "
        "with --min-ratings ratings) before measuring; spreads out cosine "
        "scores that all sit near 1, as with implicit feedback",
    )
    similar.add_argument(
        "--min-ratings",
        type=int,
        default=20,
        help="list only movies with at least this many ratings (default: "
        "20; rarely rated movies have noisy vectors)",
    )

    recommend = commands.add_parser(
        "recommend",
        help="the movies a model predicts a user will rate highest",
        description="List the k movies with the highest predicted rating "
        "for one user, among the movies the user has not rated in the "
        "loaded release.",
    )
    recommend.add_argument(
        "--model", required=True, help="a .keras file saved by catembed train"
    )
    _add_data_arguments(recommend)
    recommend.add_argument(
        "--user",
        required=True,
        type=int,
        help="the user's id in the release (e.g. 196 in ml-100k)",
    )
    recommend.add_argument(
        "-k",
        type=int,
        default=10,
        help="how many movies to list (default: 10)",
    )
    recommend.add_argument(
        "--min-ratings",
        type=int,
        default=20,
        help="recommend only movies with at least this many ratings "
        "(default: 20)",
    )

    plot = commands.add_parser(
        "plot", help="2-D map of the movie embeddings (PNG)"
    )
    plot.add_argument(
        "--model", required=True, help="a .keras file saved by catembed train"
    )
    _add_data_arguments(plot, from_model=True)
    plot.add_argument(
        "--out",
        default="embedding_map.png",
        metavar="PATH",
        help="image to write; its folder must exist (default: "
        "embedding_map.png)",
    )
    plot.add_argument(
        "--num-labels",
        type=int,
        default=30,
        help="label this many of the most rated movies (default: 30)",
    )

    projector = commands.add_parser(
        "projector", help="export embeddings for TensorBoard's projector"
    )
    projector.add_argument(
        "--model", required=True, help="a .keras file saved by catembed train"
    )
    _add_data_arguments(projector, from_model=True)
    projector.add_argument(
        "--log-dir",
        required=True,
        help="folder to write the vectors, metadata and projector config "
        "into (created if missing); open it with tensorboard --logdir",
    )
    projector.add_argument(
        "--column",
        default="movie_id",
        choices=COLUMNS,
        help="whose embeddings to export (default: movie_id)",
    )
    tune = commands.add_parser(
        "tune",
        help="search hyperparameters with KerasTuner",
        description="Search RatingHyperModel's hyperparameters on the "
        "training part of a split; the validation data is carved from the "
        "training part, never from the test part. Resumes the search in "
        "--directory unless --overwrite is given. Needs the [tuner] extra.",
    )
    _add_data_arguments(tune)
    _add_split_arguments(tune)
    tune.add_argument(
        "--tuner",
        default="bayesian",
        choices=sorted(TUNERS),
        help="KerasTuner tuner (default: bayesian)",
    )
    tune.add_argument(
        "--max-trials",
        type=int,
        default=10,
        help="number of hyperparameter sets to try, >= 1 (not used by "
        "hyperband; default: 10)",
    )
    tune.add_argument(
        "--epochs",
        type=int,
        default=5,
        help="epochs per trial (Hyperband: its max_epochs; default: 5)",
    )
    tune.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="share of the training part held out to score trials "
        "(default: 0.1)",
    )
    tune.add_argument(
        "--directory",
        default="catembed-tuning",
        help="folder of the search's state, to resume it (default: "
        "catembed-tuning)",
    )
    tune.add_argument(
        "--project-name",
        default=None,
        help="subfolder of --directory for this search (default: "
        "DATASET-SPLIT, e.g. ml-100k-u1)",
    )
    tune.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh instead of resuming",
    )
    tune.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fix a hyperparameter (VALUE read as JSON, e.g. "
        "bias_terms=true); repeatable",
    )
    tune.add_argument(
        "--best-out",
        metavar="PATH",
        help="write the best hyperparameters to this .json file, and the "
        "best model beside it (.keras)",
    )
    return parser


TUNERS = {
    "random": "RandomSearch",
    "bayesian": "BayesianOptimization",
    "hyperband": "Hyperband",
    "grid": "GridSearch",
}


# The loader's advice names its Python arguments; the CLI's user has
# options instead.
_LOADER_WORDS = (
    (re.compile(r"load_ratings\([^)]*data_dir=\.\.\.\)"), "--data-dir FOLDER"),
    (re.compile(r"Received: data_dir="), "Received: --data-dir "),
    (re.compile(r"`data_dir`"), "--data-dir"),
    (re.compile(r"and download=False"), "and --no-download was given"),
    (re.compile(r"Pass download=True"), "Run without --no-download"),
)


def _load(args):
    from keras_catembed.datasets import movielens

    try:
        return movielens.load_ratings(
            args.dataset, data_dir=args.data_dir, download=not args.no_download
        )
    except (ValueError, OSError) as error:
        message = str(error)
        for pattern, words in _LOADER_WORDS:
            message = pattern.sub(words, message)
        raise CommandError(message) from error


def _split(ratings, args):
    split = args.split or ("u1" if ratings.name == "ml-100k" else "random")
    if split == "random":
        return split, ratings.random_split(args.test_fraction, seed=args.seed)
    if split == "temporal":
        return split, ratings.temporal_split()
    return split, ratings.official_split(split)


def inputs(ratings, columns=("user_id", "movie_id")):
    """The model inputs of a `Ratings`: a dict keyed by column name.

    Args:
        ratings: A `keras_catembed.datasets.movielens.Ratings`.
        columns: The model's columns (`model.columns`): `"user_id"`,
            `"movie_id"` and names of `movielens.USER_FEATURES`, which are
            looked up for each rating's user in `ratings.user_features()`.
            Defaults to `("user_id", "movie_id")`.

    Returns:
        Dict of arrays of one id per rating, keyed by column.
    """
    from keras_catembed.datasets import movielens

    x = {"user_id": ratings.user_id, "movie_id": ratings.movie_id}
    unknown = [
        c for c in columns if c not in x and c not in movielens.USER_FEATURES
    ]
    if unknown:
        raise ValueError(
            f"No MovieLens input is named {unknown[0]!r}. Expected columns "
            f"among {['user_id', 'movie_id', *movielens.USER_FEATURES]}"
        )
    if any(column in movielens.USER_FEATURES for column in columns):
        features = ratings.user_features()
        for column in columns:
            if column in features:
                x[column] = features[column][ratings.user_id]
    return {column: x[column] for column in columns}


def baselines(train, test):
    """RMSE and MAE of the global-mean and per-movie-mean predictors.

    The per-movie mean falls back to the global mean for movies with no
    training rating.
    """
    import numpy as np

    mean = float(np.mean(train.rating))
    sums = np.bincount(
        train.movie_id, weights=train.rating, minlength=train.num_movies
    )
    counts = np.bincount(train.movie_id, minlength=train.num_movies)
    movie_mean = np.where(counts > 0, sums / np.maximum(counts, 1), mean)
    results = {}
    for name, prediction in (
        ("global mean", np.full(len(test), mean)),
        ("per-movie mean", movie_mean[test.movie_id]),
    ):
        results[name] = _errors(prediction, test.rating)
    return results


def _errors(prediction, target):
    import numpy as np

    error = np.asarray(prediction, "float64").reshape(-1) - target
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }


def _table(rows):
    """The rows' errors on the test part, in aligned columns."""
    width = max([28, *(len(name) for name in rows)])
    lines = [f"{'model':<{width}} {'test RMSE':>9} {'test MAE':>9}"]
    for name, values in rows.items():
        lines.append(
            f"{name:<{width}} {values['rmse']:>9.4f} {values['mae']:>9.4f}"
        )
    return "\n".join(lines)


def _model_overrides(args):
    overrides = {}
    if args.embedding_dim is not None:
        overrides["embedding_dim"] = (
            "auto"
            if args.embedding_dim == "auto"
            else _positive_int("--embedding-dim", args.embedding_dim)
        )
    if args.hidden_units is not None:
        text = args.hidden_units.strip()
        overrides["hidden_units"] = (
            [_positive_int("--hidden-units", v) for v in text.split(",")]
            if text
            else []
        )
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    if args.bias_terms is not None:
        overrides["bias_terms"] = args.bias_terms
    if args.implicit is not None:
        overrides["implicit"] = args.implicit
    if args.rating_range is not None:
        if args.rating_range.lower() == "none":
            overrides["rating_range"] = None
        else:
            parts = args.rating_range.split(",")
            if len(parts) != 2:
                raise CommandError(
                    "--rating-range must be 'low,high' or 'none'. Received: "
                    f"{args.rating_range!r}"
                )
            overrides["rating_range"] = tuple(
                _float("--rating-range", v) for v in parts
            )
    return overrides


def _int(option, text):
    try:
        return int(text)
    except ValueError:
        raise CommandError(
            f"{option} expects integers. Received: {text!r}"
        ) from None


def _positive_int(option, text):
    value = _int(option, text)
    if value < 1:
        raise CommandError(
            f"{option} expects positive integers. Received: {text!r}"
        )
    return value


def _float(option, text):
    try:
        return float(text)
    except ValueError:
        raise CommandError(
            f"{option} expects numbers. Received: {text!r}"
        ) from None


def train_model(
    train,
    preset="recommended",
    *,
    validation=None,
    validation_name="val",
    verbose=2,
    seed=None,
    **overrides,
):
    """Builds, compiles and fits a RatingModel on a `Ratings` training set.

    Args:
        train: `keras_catembed.datasets.movielens.Ratings` to fit.
        preset: String. A name in `keras_catembed.presets.PRESETS`.
        validation: Optional `Ratings` passed as validation data.
        validation_name: String. The prefix of the metrics on `validation`
            in the progress log and the history, e.g. `"test"` when
            `validation` is the test part (`test_rmse`). Defaults to
            `"val"` (Keras's `val_rmse`).
        verbose: Keras `fit` verbosity.
        seed: Optional integer. Seeds Python's, NumPy's and the backend's
            generators (`keras.utils.set_random_seed`) before the model is
            built, which fixes the initial weights, the implicit-feedback
            sample, the shuffling and the dropout masks: the same seed
            gives the same model on a CPU, on every backend. Defaults to
            `None` (unseeded).
        **overrides: Model settings (as in the preset's `"model"` part) or
            training settings (`learning_rate`, `batch_size`, `epochs`,
            `schedule`, `ema_momentum`).

    Returns:
        `(model, history)`.
    """
    import keras

    from keras_catembed.rating_model import RatingModel

    if seed is not None:
        keras.utils.set_random_seed(_checks_seed(seed))
    config = presets.get(preset)
    training = config["training"]
    for key in list(overrides):
        if key in training or key == "ema_momentum":
            training[key] = overrides.pop(key)
    from keras_catembed.datasets import movielens

    embeddings = {"user_id": train.num_users, "movie_id": train.num_movies}
    for feature in config.get("user_features", ()):
        embeddings[feature] = movielens.USER_FEATURES[feature]
    model = RatingModel.from_preset(preset, embeddings, **overrides)
    x_train = inputs(train, model.columns)
    if model.implicit or model.neighborhood:
        # Implicit feedback describes ids by the training pairs only.
        model.adapt(x_train, train.rating)
    ema_momentum = _compile_with_recipe(model, training, len(train))
    callbacks = []
    if ema_momentum is not None and validation is not None:
        # Validation metrics of the averaged weights, which `fit` keeps.
        callbacks.append(keras.callbacks.SwapEMAWeights())
    if validation is not None and validation_name != "val":
        callbacks.append(_rename_metrics("val_", f"{validation_name}_"))
    history = model.fit(
        x_train,
        train.rating,
        batch_size=training["batch_size"],
        epochs=training["epochs"],
        validation_data=(
            None
            if validation is None
            else (inputs(validation, model.columns), validation.rating)
        ),
        callbacks=callbacks,
        verbose=verbose,
    )
    return model, history


def _checks_seed(seed):
    from keras_catembed import _checks

    return _checks.non_negative_int("seed", seed)


def _rename_metrics(old, new):
    """A callback that renames the epoch metrics starting with `old`.

    The progress log and the history, which run after it, see the new
    names.
    """
    import keras

    class RenameMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for name in [n for n in logs or () if n.startswith(old)]:
                logs[new + name[len(old) :]] = logs.pop(name)

    return RenameMetrics()


def _compile_with_recipe(model, training, num_rows):
    """Compiles `model` with a preset's training settings.

    Adam with the preset's learning-rate schedule and weight averaging,
    MSE loss, RMSE and MAE metrics. Returns the averaging momentum (None
    without averaging).
    """
    import keras

    ema_momentum = _ema_momentum(training)
    model.compile(
        optimizer=keras.optimizers.Adam(
            _learning_rate(training, num_rows),
            use_ema=ema_momentum is not None,
            ema_momentum=ema_momentum or 0.99,
        ),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse"), "mae"],
    )
    return ema_momentum


def _ema_momentum(training):
    """A preset's `ema_momentum` as a float in (0, 1), or `None` (off)."""
    from keras_catembed import _checks

    momentum = training.get("ema_momentum")
    if momentum is None:
        return None
    return _checks.rate("ema_momentum", momentum) or None


def _learning_rate(training, num_rows):
    """The learning rate or schedule a preset's training settings ask for."""
    import keras

    rate = training["learning_rate"]
    schedule = training.get("schedule", "constant")
    if schedule == "constant":
        return rate
    if schedule != "cosine":
        raise ValueError(
            "`schedule` must be 'constant' or 'cosine'. Received: "
            f"schedule={schedule!r}"
        )
    steps_per_epoch = -(-num_rows // training["batch_size"])
    steps = max(1, steps_per_epoch * training["epochs"])
    warmup = steps // 5
    return keras.optimizers.schedules.CosineDecay(
        rate / 10 if warmup else rate,
        decay_steps=steps - warmup,
        warmup_target=rate if warmup else None,
        warmup_steps=warmup,
    )


def _is_positive(value):
    return value >= 1


def _is_non_negative(value):
    return value >= 0


# What each option accepts, checked before any data is loaded. NaN fails
# every comparison, so it is rejected too.
_LIMITS = {
    "epochs": ("a positive integer", _is_positive),
    "batch_size": ("a positive integer", _is_positive),
    "max_rows": ("a positive integer", _is_positive),
    "max_trials": ("a positive integer", _is_positive),
    "k": ("a positive integer", _is_positive),
    "num_labels": ("an integer >= 0", _is_non_negative),
    "min_ratings": ("an integer >= 0", _is_non_negative),
    "seed": ("an integer >= 0", _is_non_negative),
    "learning_rate": (
        "a finite number > 0",
        lambda v: math.isfinite(v) and v > 0,
    ),
    "test_fraction": ("a number in (0, 1)", lambda v: 0 < v < 1),
    "validation_fraction": ("a number in (0, 1)", lambda v: 0 < v < 1),
    "dropout": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "ema_momentum": ("a number in [0, 1)", lambda v: 0 <= v < 1),
}


def _option(dest):
    return "-k" if dest == "k" else "--" + dest.replace("_", "-")


def _check_arguments(args):
    """Rejects option values that cannot work, before anything runs."""
    for dest, (expected, accepts) in _LIMITS.items():
        value = getattr(args, dest, None)
        if value is not None and not accepts(value):
            raise CommandError(
                f"{_option(dest)} must be {expected}. Received: {value}"
            )
    if args.command == "train":
        # Parsed here so that a malformed value stops the run early.
        args.model_overrides = _model_overrides(args)
        _check_output("--save", args.save, (".keras",))
        _check_image("--plot", args.plot)
        _check_image("--history-plot", args.history_plot)
    elif args.command == "plot":
        _check_image("--out", args.out)
    elif args.command == "tune":
        _check_output("--best-out", args.best_out, (".json",))


def _check_output(option, path, suffixes=None):
    """Checks that `path` can be written, before any work is done."""
    if path is None:
        return
    suffix = os.path.splitext(path)[1]
    if suffixes is not None and suffix not in suffixes:
        raise CommandError(
            f"{option} must name a {' or '.join(suffixes)} file. Received: "
            f"{path!r}"
        )
    if os.path.isdir(path):
        raise CommandError(
            f"{option} names a folder; expected a file name. Received: {path!r}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(
            f"{option}: the folder {folder} does not exist. Received: {path!r}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(
            f"{option}: the folder {folder} is not writable. Received: {path!r}"
        )


def _check_image(option, path):
    """Checks an image path: writable, in a format matplotlib writes."""
    if path is None:
        return
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CommandError(
            f"{option} needs matplotlib. Install it with: "
            'pip install "keras-catembed[plot]"'
        ) from None
    suffix = os.path.splitext(path)[1]
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix[1:].lower() not in formats:
        raise CommandError(
            f"{option} must name an image file ({', '.join(sorted(formats))}"
            f"). Received: {path!r}"
        )
    _check_output(option, path)


def _cmd_train(args, out):
    ratings = _load(args)
    split, (train, test) = _split(ratings, args)
    if args.max_rows is not None:
        train = train.subset(np.arange(min(args.max_rows, len(train))))
    if args.preset == "auto":
        args.preset = presets.recommended_for(len(train))
    overrides = dict(args.model_overrides)
    for option in ("epochs", "batch_size", "learning_rate", "ema_momentum"):
        if getattr(args, option) is not None:
            overrides[option] = getattr(args, option)
    if args.similar:
        _movie_index(ratings, args.similar)  # Before training, not after.
    verbose = args.verbose
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    print(
        f"Training on {ratings.name} ({split} split): {len(train):,} "
        f"training and {len(test):,} test ratings, {ratings.num_users:,} "
        f"users, {ratings.num_movies:,} movies; preset {args.preset!r}.",
        file=out,
    )
    # Metrics on the test part are labelled test_*, not val_*.
    model, history = train_model(
        train,
        args.preset,
        validation=test,
        validation_name="test",
        verbose=verbose,
        seed=args.seed,
        **overrides,
    )
    model.data_source = {
        "dataset": ratings.name,
        "data_dir": (
            None if args.data_dir is None else os.path.abspath(args.data_dir)
        ),
        "split": split,
        "test_fraction": args.test_fraction if split == "random" else None,
        "seed": args.seed,
        "max_rows": args.max_rows,
    }
    rows = baselines(train, test)
    rows[f"RatingModel ({args.preset})"] = _errors(
        model.predict(inputs(test, model.columns), batch_size=8192, verbose=0),
        test.rating,
    )
    print(_table(rows), file=out)
    # The trained model is written first: a failing extra cannot lose it.
    if args.save:
        model.save(args.save)
        print(f"Saved the model to {args.save}", file=out)
    if args.history_plot:
        _plot_history(history.history, args.history_plot, ratings.name)
        print(f"Wrote the RMSE per epoch to {args.history_plot}", file=out)
    if args.plot:
        _plot(model, ratings, train, args.plot, 30)
        print(f"Wrote the embedding map to {args.plot}", file=out)
    if args.similar:
        _print_similar(model, ratings, args.similar, 10, "cosine", out, 20)
    return rows


def _plot_history(history, path, dataset):
    """Draws the RMSE of each epoch, one line per series, to `path`."""
    from matplotlib.figure import Figure

    series = {
        name: values
        for name, values in history.items()
        if name == "rmse" or name.endswith("_rmse")
    }
    if not series:
        raise CommandError(
            "--history-plot: the training history has no RMSE to draw. "
            f"Recorded: {sorted(history)}"
        )
    figure = Figure(figsize=(7, 4.5), dpi=100)
    axes = figure.subplots()
    for name, values in series.items():
        label = "training" if name == "rmse" else name[: -len("_rmse")]
        epochs = np.arange(1, len(values) + 1)
        axes.plot(epochs, values, marker="o", label=f"{label} RMSE")
    axes.set_xlabel("epoch")
    axes.set_ylabel("RMSE")
    axes.set_title(f"RMSE per epoch on {dataset}")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return path


def _load_for_model(args, model):
    """Loads the data a model was trained on, or the data the options name.

    `--dataset` and `--data-dir` default to what `catembed train` recorded
    in the model (`model.data_source`).
    """
    source = model.data_source or {}
    if args.dataset is None:
        args.dataset = source.get("dataset")
        if args.dataset is None:
            raise CommandError(
                f"--model {args.model} does not record its training data "
                "(only models saved by catembed train --save do): pass "
                "--dataset (and --data-dir if the release is not in the "
                "cache)"
            )
        if args.data_dir is None:
            args.data_dir = source.get("data_dir")
            if args.data_dir is not None and not os.path.exists(args.data_dir):
                raise CommandError(
                    f"--model {args.model} was trained on {args.dataset} "
                    f"from {args.data_dir}, which no longer exists: pass "
                    "--data-dir"
                )
    return _load(args)


def _load_model(path):
    import keras

    from keras_catembed.rating_model import RatingModel

    if not os.path.isfile(path):
        raise CommandError(f"--model: no such file: {path}")
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # Keras raises many types for a bad file.
        raise CommandError(
            f"--model: cannot load {path} as a Keras model: {error}"
        ) from error
    if not isinstance(model, RatingModel):
        raise CommandError(
            f"--model: {path} holds a {type(model).__name__}, not a "
            "RatingModel. Pass a model saved by `catembed train --save`."
        )
    return model


def _check_model_fits(model, ratings):
    layer = model.embedding_layers.get("movie_id")
    if layer is None or layer.num_ids != ratings.num_movies:
        raise CommandError(
            f"The model does not match {ratings.name}: it embeds "
            f"{getattr(layer, 'num_ids', 'no')} movies, the data has "
            f"{ratings.num_movies}. Pass the --dataset it was trained on."
        )


def _cmd_evaluate(args, out):
    if not args.ranking and args.k is not None:
        raise CommandError("-k is used with --ranking only; add --ranking")
    if not math.isfinite(args.relevance_threshold):
        raise CommandError(
            "--relevance-threshold must be a finite number. Received: "
            f"{args.relevance_threshold}"
        )
    if args.ranking:
        from keras_catembed.evaluation import ranking

        ranking._keras_rs_metrics()  # Before any work, if it is missing.
    model = _load_model(args.model)
    ratings = _load(args)
    _check_model_fits(model, ratings)
    split, (train, test) = _split(ratings, args)
    rows = baselines(train, test)
    rows["model"] = _errors(
        model.predict(inputs(test, model.columns), batch_size=8192, verbose=0),
        test.rating,
    )
    ranked = None
    if args.ranking:
        # Computed before anything is printed: a mistake is one line.
        k = 10 if args.k is None else args.k
        ranked = ranking_rows(
            model,
            train,
            test,
            k=k,
            relevance_threshold=args.relevance_threshold,
        )
    print(f"{ratings.name}, {split} split, {len(test):,} ratings", file=out)
    print(_table(rows), file=out)
    if ranked is not None:
        print(
            f"Top-{k} lists of {ranked['model']['users']:,} test users "
            f"(relevant: test ratings >= {args.relevance_threshold:g}; "
            f"each user's training movies left out; all "
            f"{ratings.num_movies:,} movies are candidates)",
            file=out,
        )
        print(_ranking_table(ranked, k), file=out)
        rows["ranking"] = ranked
    _report_overlap(model, test, out)
    return rows


def ranking_rows(model, train, test, *, k=10, relevance_threshold=4.0):
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
    from keras_catembed.evaluation import MostPopular
    from keras_catembed.evaluation import ranking_metrics

    candidates = np.arange(train.num_movies)
    x_train = inputs(train)
    options = {
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


_RANKING_COLUMNS = (
    ("precision", "P@{k}"),
    ("recall", "R@{k}"),
    ("ndcg", "NDCG@{k}"),
    ("map", "MAP@{k}"),
    ("mrr", "MRR@{k}"),
    ("hit_rate", "HR@{k}"),
    ("coverage", "coverage"),
)


def _ranking_table(rows, k):
    """The rows' ranking metrics, in aligned columns."""
    width = max([28, *(len(name) for name in rows)])
    heads = [head.format(k=k) for _, head in _RANKING_COLUMNS]
    lines = [f"{'model':<{width}}" + "".join(f" {h:>9}" for h in heads)]
    for name, values in rows.items():
        lines.append(
            f"{name:<{width}}"
            + "".join(f" {values[key]:>9.4f}" for key, _ in _RANKING_COLUMNS)
        )
    return "\n".join(lines)


def _report_overlap(model, test, out):
    """Says, in the output and on stderr, if test rows trained the model."""
    from keras_catembed import _provenance

    fingerprint = model.training_fingerprint
    if fingerprint is None or set(fingerprint["columns"]) - set(model.columns):
        return None
    x = inputs(test, model.columns)
    fraction, sampled = _provenance.overlap(fingerprint, x, test.rating)
    if fraction is None or fraction <= _provenance.OVERLAP_THRESHOLD:
        return fraction
    message = _provenance.overlap_message(
        fraction, sampled, fingerprint["exact"]
    )
    print(f"WARNING: {message}", file=out)
    print(f"catembed: warning: {message}", file=sys.stderr)
    return fraction


def _movie_index(ratings, title):
    matches = [i for i, t in enumerate(ratings.titles) if t == title]
    if not matches:
        lowered = title.lower()
        close = [t for t in ratings.titles if lowered in t.lower()][:5]
        hint = f" Titles containing it: {close}" if close else ""
        raise CommandError(f"No movie titled {title!r}.{hint}")
    return matches[0]


def _cmd_similar(args, out):
    model = _load_model(args.model)
    ratings = _load_for_model(args, model)
    _check_model_fits(model, ratings)
    return _print_similar(
        model,
        ratings,
        args.movie,
        args.k,
        args.metric,
        out,
        args.min_ratings,
        center=args.center,
    )


def _print_similar(
    model, ratings, title, k, metric, out, min_ratings, center=False
):
    import numpy as np

    from keras_catembed import explore

    index = _movie_index(ratings, title)
    counts = np.bincount(ratings.movie_id, minlength=ratings.num_movies)
    indices, scores = explore.nearest(
        model,
        "movie_id",
        index,
        k=k,
        metric=metric,
        candidates=counts >= min_ratings,
        center=center,
    )
    centered = ", centred" if center else ""
    print(f"Nearest to {ratings.titles[index]} ({metric}{centered}):", file=out)
    for rank, (i, score) in enumerate(zip(indices, scores, strict=True), 1):
        print(f"{rank:>3}. {score:+.3f}  {ratings.titles[i]}", file=out)
    return [ratings.titles[i] for i in indices]


def _cmd_recommend(args, out):
    import numpy as np

    model = _load_model(args.model)
    ratings = _load(args)
    _check_model_fits(model, ratings)
    found = np.flatnonzero(ratings.user_ids == args.user)
    if found.size == 0:
        raise CommandError(
            f"--user {args.user} is not a user of {ratings.name} (its ids "
            f"run from {ratings.user_ids.min()} to {ratings.user_ids.max()})"
        )
    index = int(found[0])
    rated = ratings.user_id == index
    counts = np.bincount(ratings.movie_id, minlength=ratings.num_movies)
    candidates = np.flatnonzero(counts >= args.min_ratings)
    candidates = candidates[~np.isin(candidates, ratings.movie_id[rated])]
    if candidates.size == 0:
        raise CommandError(
            f"No movie with at least {args.min_ratings} ratings is left "
            f"that user {args.user} has not rated; lower --min-ratings"
        )
    users = {"user_id": np.array([index])}
    others = [c for c in model.columns if c not in ("user_id", "movie_id")]
    if others:
        features = ratings.user_features()
        users.update({c: features[c][[index]] for c in others})
    items, scores = model.recommend(
        users,
        k=min(args.k, candidates.size),
        candidates=candidates,
        user_column="user_id",
        item_column="movie_id",
    )
    print(
        f"Top {items.shape[1]} for user {args.user} of {ratings.name} "
        f"(rated {int(rated.sum())} movies; predicted rating):",
        file=out,
    )
    for rank, (i, score) in enumerate(zip(items[0], scores[0], strict=True)):
        print(f"{rank + 1:>3}. {score:.2f}  {ratings.titles[i]}", file=out)
    return [ratings.titles[i] for i in items[0]]


def _plot(model, ratings, counted, path, num_labels):
    import numpy as np

    from keras_catembed import explore

    counts = np.bincount(counted.movie_id, minlength=ratings.num_movies)
    return explore.plot_map(
        model,
        "movie_id",
        labels=list(ratings.titles),
        counts=counts,
        path=path,
        num_labels=num_labels,
        title=f"Movie embeddings learned on {ratings.name} (PCA)",
    )


def _cmd_plot(args, out):
    model = _load_model(args.model)
    ratings = _load_for_model(args, model)
    _check_model_fits(model, ratings)
    _plot(model, ratings, ratings, args.out, args.num_labels)
    print(f"Wrote the embedding map to {args.out}", file=out)
    return args.out


def _cmd_projector(args, out):
    from keras_catembed import explore

    model = _load_model(args.model)
    ratings = _load_for_model(args, model)
    _check_model_fits(model, ratings)
    if args.column == "movie_id":
        metadata = {
            "title": list(ratings.titles),
            "genres": ["|".join(g) for g in ratings.genres],
        }
    else:
        metadata = {"user": [str(u) for u in ratings.user_ids]}
    paths = explore.to_projector(model, args.column, args.log_dir, metadata)
    print(json.dumps(paths, indent=2), file=out)
    return paths


def _fixed(pairs):
    fixed = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise CommandError(f"--fix expects NAME=VALUE. Received: {pair!r}")
        try:
            fixed[name] = json.loads(text)
        except json.JSONDecodeError:
            fixed[name] = text
    return fixed


def _typed(value):
    """A hyperparameter value as one would type it after `--fix NAME=`.

    Floats are rounded to 6 significant digits (0.3, not
    0.30000000000000004); booleans read `true`/`false` as in JSON.
    """
    if isinstance(value, float):
        return repr(float(f"{value:.6g}"))
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)


def _reporting(tuner_class, out):
    """A subclass of `tuner_class` that prints each trial as it ends.

    One line per finished trial: its number, hyperparameters, score and
    the best score so far (KerasTuner's `on_trial_end` hook).
    """

    class Reporting(tuner_class):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            objective = self.oracle.objective
            score = "failed" if trial.score is None else f"{trial.score:.4f}"
            best = self.oracle.get_best_trials(num_trials=1)
            best = (
                "n/a"
                if not best or best[0].score is None
                else f"{best[0].score:.4f}"
            )
            values = ", ".join(
                f"{k}={_typed(v)}"
                for k, v in sorted(trial.hyperparameters.values.items())
            )
            print(
                f"trial {trial.trial_id} done: {objective.name}={score} "
                f"(best so far {best}); {values}",
                file=out,
            )
            if hasattr(out, "flush"):
                out.flush()

    Reporting.__name__ = tuner_class.__name__
    return Reporting


def _cmd_tune(args, out):
    from keras_catembed.hypermodel import RatingHyperModel
    from keras_catembed.hypermodel import keras_tuner

    fixed = _fixed(args.fix)
    ratings = _load(args)
    split, (train, _) = _split(ratings, args)
    train, validation = train.random_split(
        args.validation_fraction, seed=args.seed
    )
    hypermodel = RatingHyperModel(
        {"user_id": ratings.num_users, "movie_id": ratings.num_movies},
        **fixed,
    )
    tuner_class = _reporting(getattr(keras_tuner, TUNERS[args.tuner]), out)
    options = {
        "objective": hypermodel.objective,
        "directory": args.directory,
        "project_name": args.project_name or f"{ratings.name}-{split}",
        "overwrite": args.overwrite,
        "seed": args.seed,
    }
    if args.tuner == "hyperband":
        tuner = tuner_class(hypermodel, max_epochs=args.epochs, **options)
    else:
        tuner = tuner_class(hypermodel, max_trials=args.max_trials, **options)
    print(
        f"Tuning on {ratings.name} ({split} split): {len(train):,} training "
        f"and {len(validation):,} validation ratings; {args.tuner} search "
        f"in {os.path.join(args.directory, options['project_name'])}.",
        file=out,
    )
    import keras

    # Trials repeat: the same seed draws the same weights and batches.
    keras.utils.set_random_seed(args.seed)
    tuner.search(
        inputs(train),
        train.rating,
        epochs=args.epochs,
        validation_data=(inputs(validation), validation.rating),
        verbose=0,
    )
    trials = tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials))
    objective = hypermodel.objective.name
    print(f"{'trial':<8} {objective:>10}  hyperparameters", file=out)
    for trial in trials:
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        values = ", ".join(
            f"{k}={_typed(v)}"
            for k, v in sorted(trial.hyperparameters.values.items())
        )
        print(f"{trial.trial_id:<8} {score:>10}  {values}", file=out)
    best = tuner.get_best_hyperparameters()[0]
    if args.best_out:
        model_path = os.path.splitext(args.best_out)[0] + ".keras"
        tuner.get_best_models()[0].save(model_path)
        with open(args.best_out, "w", encoding="utf-8") as file:
            json.dump(
                {
                    "dataset": ratings.name,
                    "split": split,
                    "validation_fraction": args.validation_fraction,
                    "objective": objective,
                    "score": trials[0].score,
                    "hyperparameters": best.values,
                    "model": model_path,
                },
                file,
                indent=2,
            )
        print(f"Wrote {args.best_out} and {model_path}", file=out)
    return trials


COMMANDS = {
    "tune": _cmd_tune,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "similar": _cmd_similar,
    "recommend": _cmd_recommend,
    "plot": _cmd_plot,
    "projector": _cmd_projector,
}


def main(argv=None, out=None):
    """Runs the `catembed` command; returns its exit status.

    Every mistake (a bad option value, a missing file, a model that does
    not fit the data) is printed as one line, `catembed: error: ...`, with
    exit status 2; option values are checked before any data is loaded or
    any model trained. Set `CATEMBED_TRACEBACK=1` to see the traceback.
    """
    out = out or sys.stdout
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        _check_arguments(args)
        COMMANDS[args.command](args, out)
    except _ShowVersion:
        from keras_catembed import __version__

        print(f"catembed {__version__}", file=out)
        return 0
    except (CommandError, ValueError, ImportError, OSError) as error:
        if os.environ.get("CATEMBED_TRACEBACK"):
            raise
        message = " ".join(str(error).split())
        print(f"catembed: error: {message}", file=sys.stderr)
        return 2
    return 0
