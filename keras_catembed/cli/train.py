"""`catembed train`: train a preset's model and compare it with baselines."""

import argparse
import math
import os
import sys
from typing import Any
from typing import TextIO

import numpy as np

from keras_catembed import presets
from keras_catembed import training
from keras_catembed.cli import _common
from keras_catembed.cli import _models
from keras_catembed.cli import embeddings
from keras_catembed.datasets import movielens
from keras_catembed.evaluation import error_baselines


def add_parser(commands: _common.Commands) -> None:
    """Adds the `train` command to the subparsers `commands`."""
    train = commands.add_parser(
        "train",
        help="train a model and compare it with baselines",
        description="Train a RatingModel on a MovieLens release and print "
        "RMSE and MAE on the held-out part next to the global-mean and "
        "per-movie-mean baselines.",
    )
    _common._add_data_arguments(train)
    _common._add_split_arguments(train)
    train.add_argument(
        "--preset",
        default="auto",
        metavar="NAME_OR_PATH",
        help="model and training recipe: 'auto' (the recommended preset "
        "for the size of the training set; the default), one of "
        f"{', '.join(sorted(presets.PRESETS))}, or a preset folder (as "
        "catembed tune --preset-out writes)",
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
        help="override the preset: the embedding size of every column, an "
        "integer or 'auto'",
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
        "--neighborhood",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the preset: a rating-weighted neighbourhood (each "
        "user also described by the ratings it gave, each movie by the "
        "ratings it got; its own rating left out in training)",
    )
    _common._add_pair_dtype_argument(
        train,
        "override the preset: the dtype of the implicit-feedback and "
        "neighbourhood pairs",
    )
    _common._add_columns_argument(train)
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
        "--overwrite",
        action="store_true",
        help="replace an existing --save file (otherwise the command "
        "refuses before training)",
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


def check(args: argparse.Namespace) -> None:
    """Checks the options of `catembed train` before anything runs."""
    # Parsed here so that a malformed value stops the run early.
    args.model_overrides = _model_overrides(args)
    args.columns = _common._added_columns(args.add_columns)
    if args.preset != "auto" and args.preset not in presets.PRESETS:
        if not os.path.isfile(os.path.join(args.preset, presets.CONFIG_FILE)):
            raise _common.CommandError(
                "--preset must be 'auto', one of "
                f"{sorted(presets.PRESETS)} or a preset folder holding a "
                f"{presets.CONFIG_FILE} (catembed tune --preset-out writes "
                f"one). Received: {args.preset!r}"
            )
    _check_pair_dtype(args)
    _common._check_output("--save", args.save, (".keras",))
    _common._check_new("--save", args.save, args.overwrite)
    _common._check_image("--plot", args.plot)
    _common._check_image("--history-plot", args.history_plot)


def _check_pair_dtype(args: argparse.Namespace) -> None:
    """A narrow --pair-dtype needs pairs: checked for a named preset."""
    if args.pair_dtype != "bfloat16" or args.preset not in presets.PRESETS:
        return
    model = {**presets.PRESETS[args.preset]["model"], **args.model_overrides}
    if not (model.get("implicit") or model.get("neighborhood")):
        raise _common.CommandError(
            f"--pair-dtype {args.pair_dtype} sets the dtype of the pairs of "
            f"implicit feedback and the neighbourhood, and --preset "
            f"{args.preset} has neither: add --implicit or --neighborhood, "
            "pick a preset with implicit feedback (e.g. recommended), or "
            "leave --pair-dtype out"
        )


def _model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.embedding_dim is not None:
        overrides["output_dim"] = (
            "auto"
            if args.embedding_dim == "auto"
            else _common._positive_int("--embedding-dim", args.embedding_dim)
        )
    if args.hidden_units is not None:
        text = args.hidden_units.strip()
        overrides["hidden_units"] = (
            [
                _common._positive_int("--hidden-units", v)
                for v in text.split(",")
            ]
            if text
            else []
        )
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    if args.bias_terms is not None:
        overrides["bias_terms"] = args.bias_terms
    for option in ("implicit", "neighborhood", "pair_dtype"):
        if getattr(args, option) is not None:
            overrides[option] = getattr(args, option)
    if args.rating_range is not None:
        if args.rating_range.lower() == "none":
            overrides["rating_range"] = None
        else:
            parts = args.rating_range.split(",")
            if len(parts) != 2:
                raise _common.CommandError(
                    "--rating-range must be 'low,high' or 'none'. Received: "
                    f"{args.rating_range!r}"
                )
            low, high = (_common._float("--rating-range", v) for v in parts)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise _common.CommandError(
                    "--rating-range must be two finite numbers 'low,high' "
                    f"with low < high, or 'none'. Received: "
                    f"{args.rating_range!r}"
                )
            overrides["rating_range"] = (low, high)
    return overrides


def run(args: argparse.Namespace, out: TextIO) -> dict[str, dict[str, float]]:
    """Runs `catembed train`; returns the table's rows."""
    ratings = _common._load(args)
    split, (train, test) = _common._split(ratings, args)
    train = _common.first_rows(train, args.max_rows)
    if args.preset == "auto":
        args.preset = presets.recommended_for(len(train))
    preset: Any = args.preset
    label = args.preset
    overrides = dict(args.model_overrides)
    if args.columns:
        preset = presets.with_columns(args.preset, args.columns)
        label = "+".join([args.preset, *args.columns])
    for option in ("epochs", "batch_size", "learning_rate", "ema_momentum"):
        if getattr(args, option) is not None:
            overrides[option] = getattr(args, option)
    if args.similar:
        # Before training, not after.
        _models.movie_index(ratings, args.similar)
    verbose = args.verbose
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    print(
        f"Training on {ratings.name} ({split} split): {len(train):,} "
        f"training and {len(test):,} test ratings, {ratings.num_users:,} "
        f"users, {ratings.num_movies:,} movies; preset {label!r}.",
        file=out,
    )
    # Metrics on the test part are labelled test_*, not val_*.
    model, history = training.train(
        train,
        preset,
        validation=test,
        validation_name="test",
        verbose=verbose,
        seed=args.seed,
        **overrides,
    )
    model.data_source = {
        "dataset": ratings.name,
        "data_dir": (
            None
            if args.data_dir is None
            else os.path.abspath(os.path.expanduser(args.data_dir))
        ),
        "split": split,
        "test_fraction": args.test_fraction if split == "random" else None,
        "seed": args.seed,
        "max_rows": args.max_rows,
    }
    rows = error_baselines.baselines(train, test)
    rows[f"RatingModel ({label})"] = error_baselines.errors(
        model.predict(
            movielens.inputs(test, model.columns), batch_size=8192, verbose=0
        ),
        test.rating,
    )
    print(error_baselines.table(rows), file=out)
    # The trained model is written first: a failing extra cannot lose it.
    if args.save:
        model.save(args.save)
        print(f"Saved the model to {args.save}", file=out)
    if args.history_plot:
        _plot_history(history.history, args.history_plot, ratings.name)
        print(f"Wrote the RMSE per epoch to {args.history_plot}", file=out)
    if args.plot:
        embeddings.plot(model, ratings, train, args.plot, 30)
        print(f"Wrote the embedding map to {args.plot}", file=out)
    if args.similar:
        embeddings.print_similar(
            model, ratings, args.similar, 10, "cosine", out, 20
        )
    return rows


def _plot_history(
    history: dict[str, list[float]], path: str, dataset: str
) -> str:
    """Draws the RMSE of each epoch, one line per series, to `path`."""
    from matplotlib.figure import Figure

    series = {
        name: values
        for name, values in history.items()
        if name == "rmse" or name.endswith("_rmse")
    }
    if not series:
        raise _common.CommandError(
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
