"""The CLI's `--model` commands: reading the model and the data it fits."""

import argparse
import os
from typing import Any

from keras_catembed.cli import _common
from keras_catembed.datasets.movielens import Ratings


def load_for_model(args: argparse.Namespace, model: Any) -> Ratings:
    """Loads the data a model was trained on, or the data the options name.

    `--dataset` and `--data-dir` default to what `catembed train` recorded
    in the model (`model.data_source`).
    """
    source = model.data_source or {}
    if args.dataset is None:
        args.dataset = source.get("dataset")
        if args.dataset is None:
            raise _common.CommandError(
                f"--model {args.model} does not record its training data "
                "(only models saved by catembed train --save do): pass "
                "--dataset (and --data-dir if the release is not in the "
                "cache)"
            )
    # The recorded folder serves the recorded release, named or not.
    if args.data_dir is None and args.dataset == source.get("dataset"):
        args.data_dir = source.get("data_dir")
        if args.data_dir is not None and not os.path.exists(args.data_dir):
            raise _common.CommandError(
                f"--model {args.model} was trained on {args.dataset} "
                f"from {args.data_dir}, which no longer exists: pass "
                "--data-dir"
            )
    return _common._load(args)


def split_from_model(
    args: argparse.Namespace, model: Any, ratings: Ratings
) -> None:
    """Defaults `--split`, `--test-fraction` and `--seed` to the model's.

    What `catembed train` recorded, when the model was trained on the
    release `ratings` is; the usual defaults otherwise (options given on
    the command line are kept).
    """
    source = model.data_source or {}
    if source.get("dataset") != ratings.name:
        source = {}
    if args.split is None:
        args.split = source.get("split")
    if args.test_fraction is None:
        recorded = source.get("test_fraction")
        args.test_fraction = (
            _common.TEST_FRACTION if recorded is None else recorded
        )
    if args.seed is None:
        recorded = source.get("seed")
        args.seed = _common.SEED if recorded is None else recorded


def training_part(model: Any, ratings: Ratings) -> Ratings:
    """The part of `ratings` the model was trained on.

    The split `catembed train` recorded, when the model was trained on
    the release `ratings` is; all of `ratings` otherwise.
    """
    source = model.data_source or {}
    if source.get("dataset") != ratings.name:
        return ratings
    args = argparse.Namespace(split=None, test_fraction=None, seed=None)
    split_from_model(args, model, ratings)
    _, (train, _) = _common._split(ratings, args)
    return _common.first_rows(train, source.get("max_rows"))


def add_model_command(
    commands: _common.Commands, name: str, **kwargs: Any
) -> _common._Parser:
    """Adds the command `name` that reads `--model` and MovieLens data.

    `--dataset` and `--data-dir` default to the data the model records
    (see `load_model`); `kwargs` go to `add_parser`.
    """
    parser = commands.add_parser(name, **kwargs)
    parser.add_argument(
        "--model", required=True, help="a .keras file saved by catembed train"
    )
    _common._add_data_arguments(parser, from_model=True)
    return parser


def load_model(args: argparse.Namespace) -> tuple[Any, Ratings]:
    """The `--model` of `args` and the data it is to be used on.

    Returns `(model, ratings)`: the ratings `--dataset` names (by default,
    those the model was trained on), checked to fit the model.
    """
    model = read_model(args.model)
    ratings = load_for_model(args, model)
    check_model_fits(model, ratings)
    return model, ratings


def read_model(path: str) -> Any:
    import keras

    from keras_catembed.rating_model import RatingModel

    if not os.path.isfile(path):
        raise _common.CommandError(f"--model: no such file: {path}")
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # Keras raises many types for a bad file.
        raise _common.CommandError(
            f"--model: cannot load {path} as a Keras model: {error}"
        ) from error
    if not isinstance(model, RatingModel):
        raise _common.CommandError(
            f"--model: {path} holds a {type(model).__name__}, not a "
            "RatingModel. Pass a model saved by `catembed train --save`."
        )
    return model


def check_model_fits(model: Any, ratings: Ratings) -> None:
    layer = model.embedding_layers.get("movie_id")
    if layer is None or layer.num_ids != ratings.num_movies:
        raise _common.CommandError(
            f"The model does not match {ratings.name}: it embeds "
            f"{getattr(layer, 'num_ids', 'no')} movies, the data has "
            f"{ratings.num_movies}. Pass the --dataset it was trained on."
        )


def movie_index(ratings: Ratings, title: str) -> int:
    matches = [i for i, t in enumerate(ratings.titles) if t == title]
    if not matches:
        lowered = title.lower()
        close = [t for t in ratings.titles if lowered in t.lower()][:5]
        hint = f" Titles containing it: {close}" if close else ""
        raise _common.CommandError(f"No movie titled {title!r}.{hint}")
    return matches[0]
