"""The `catembed` argument parser and the checks run before a command."""

import argparse
from collections.abc import Callable
from typing import Any
from typing import TextIO

from keras_catembed.cli import _common
from keras_catembed.cli import embeddings
from keras_catembed.cli import evaluate
from keras_catembed.cli import train
from keras_catembed.cli import tune


def build_parser() -> _common._Parser:
    """The `catembed` parser, one subparser per command."""
    parser = _common._Parser(
        prog="catembed",
        description="Entity-embedding rating models on MovieLens.",
    )
    parser.add_argument("--version", action=_common._VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    train.add_parser(commands)
    evaluate.add_parser(commands)
    embeddings.add_parser(commands)
    tune.add_parser(commands)
    return parser


# Each command's function, `run(args, out)`.
COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], Any]] = {
    "tune": tune.run,
    "train": train.run,
    "evaluate": evaluate.run,
    "similar": embeddings.run_similar,
    "recommend": embeddings.run_recommend,
    "plot": embeddings.run_plot,
    "projector": embeddings.run_projector,
}


def check_arguments(args: argparse.Namespace) -> None:
    """Rejects option values that cannot work, before anything runs."""
    for dest, (expected, accepts) in _common._LIMITS.items():
        value = getattr(args, dest, None)
        if value is not None and not accepts(value):
            raise _common.CommandError(
                f"{_common._option(dest)} must be {expected}. Received: {value}"
            )
    _common.check_data_options(args)
    if args.command == "train":
        train.check(args)
    elif args.command == "plot":
        _common._check_image("--out", args.out)
    elif args.command == "tune":
        tune.check(args)
