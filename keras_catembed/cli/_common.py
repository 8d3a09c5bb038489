"""What the `catembed` commands share: errors, data options, checks."""

import argparse
import math
import os
import re
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NoReturn
from typing import TypeAlias

from keras_catembed import _checks
from keras_catembed.datasets.movielens import Ratings

COLUMNS = ("user_id", "movie_id")


SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub", "random", "temporal")


class CommandError(Exception):
    """An error reported as one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are `CommandError`s.

    `main` prints them as the one line `catembed: error: ...` (exit
    status 2), like every other mistake, instead of argparse's usage block.
    """

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see {self.prog} --help)")


# The subparsers of `catembed`, one per command (a string: the class is
# not subscriptable at run time).
Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


class _ShowVersion(Exception):
    """Raised by `--version`; `main` prints the version."""


class _VersionAction(argparse.Action):
    def __init__(
        self, option_strings: Sequence[str], dest: str, **kwargs: Any
    ) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="print the version of keras-catembed and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        raise _ShowVersion()


def _add_data_arguments(
    parser: argparse.ArgumentParser, from_model: bool = False
) -> None:
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
    parser.add_argument(
        "--download-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="longest time a download may take (default: an hour)",
    )


def _add_columns_argument(
    parser: argparse.ArgumentParser, size: str = "each with 8 dimensions"
) -> None:
    """`--add-columns`; `size` says how wide each added embedding is."""
    parser.add_argument(
        "--add-columns",
        metavar="NAMES",
        help=f"also embed these MovieLens columns, comma-separated, {size}: "
        "user features (age, gender, occupation) or time columns "
        "(user_day: each user's day, which needs timestamps)",
    )


def _add_pair_dtype_argument(
    parser: argparse.ArgumentParser, what: str
) -> None:
    """`--pair-dtype`, the dtype of `what` (the pairs of a model or trial)."""
    parser.add_argument(
        "--pair-dtype",
        choices=("float32", "bfloat16", "auto"),
        help=f"{what}; bfloat16 is about twice as fast on CPUs with native "
        "bfloat16 (AMX, AVX512-BF16) and slower where it is emulated; auto "
        "picks bfloat16 where it is native and the pairs are dense",
    )


def _added_columns(text: str | None) -> list[str]:
    """The names of `--add-columns`, checked; `[]` without the option."""
    from keras_catembed import _preset_columns

    if text is None:
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    features, times = _preset_columns.known_columns()
    known = [*features, *times]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise CommandError(
            f"--add-columns expects some of {', '.join(known)}, "
            f"comma-separated. Received: {text!r}"
        )
    return list(dict.fromkeys(names))


# The defaults of `--test-fraction` and `--seed`.
TEST_FRACTION = 0.2
SEED = 0


def _add_split_arguments(
    parser: argparse.ArgumentParser, from_model: bool = False
) -> None:
    """Adds `--split`, `--test-fraction` and `--seed`.

    With `from_model`, their defaults are what the `--model` records (see
    `_models.split_from_model`), and the usual ones otherwise.
    """
    recorded = "the model's, if recorded, else " if from_model else ""
    parser.add_argument(
        "--split",
        default=None,
        choices=SPLITS,
        help="held-out part: an official ml-100k fold, 'random' or "
        f"'temporal' (default: {recorded}u1 for ml-100k, else random)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=None if from_model else TEST_FRACTION,
        help=f"test share of a random split (default: {recorded}"
        f"{TEST_FRACTION})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None if from_model else SEED,
        help="random seed of the split, the initial weights, the shuffling "
        "and dropout; the same seed repeats a CPU run exactly (default: "
        f"{recorded}{SEED})",
    )


# The loader's advice names its Python arguments; the CLI's user has
# options instead.
_LOADER_WORDS = (
    (re.compile(r"load_ratings\([^)]*data_dir=\.\.\.\)"), "--data-dir FOLDER"),
    (re.compile(r"Received: data_dir="), "Received: --data-dir "),
    (re.compile(r"`data_dir`"), "--data-dir"),
    (re.compile(r"and download=False"), "and --no-download was given"),
    (re.compile(r"Pass download=True"), "Run without --no-download"),
    (re.compile(r"download_timeout="), "--download-timeout "),
    (re.compile(r"`download_timeout`"), "--download-timeout"),
)


def _load(args: argparse.Namespace) -> Ratings:
    from keras_catembed.datasets import movielens

    try:
        timeout = {}
        if args.download_timeout is not None:
            timeout["download_timeout"] = args.download_timeout
        return movielens.load_ratings(
            args.dataset,
            data_dir=args.data_dir,
            download=not args.no_download,
            **timeout,
        )
    except (ValueError, OSError) as error:
        message = str(error)
        for pattern, words in _LOADER_WORDS:
            message = pattern.sub(words, message)
        raise CommandError(message) from error


# The folds only ml-100k ships.
OFFICIAL_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def check_data_options(args: argparse.Namespace) -> None:
    """Checks `--dataset` and `--split`, before any data is loaded."""
    from keras_catembed.datasets import movielens

    dataset = getattr(args, "dataset", None)
    if dataset is not None and dataset not in movielens.RELEASES:
        raise CommandError(
            f"--dataset must be one of: {', '.join(movielens.RELEASES)}. "
            f"Received: {dataset!r}"
        )
    _check_official(getattr(args, "split", None), dataset)
    # Folders the command writes into: a file there would fail later
    # with an OSError naming no option.
    for dest in ("log_dir", "directory"):
        path = getattr(args, dest, None)
        if path is not None and os.path.isfile(path):
            raise CommandError(
                f"{_option(dest)} names a file; expected a folder (new or "
                f"existing). Received: {path!r}"
            )


def _check_official(split: str | None, dataset: str | None) -> None:
    if split in OFFICIAL_SPLITS and dataset not in (None, "ml-100k"):
        raise CommandError(
            f"--split {split} is an official fold of ml-100k; {dataset} has "
            "none: use --split random or --split temporal"
        )


def _split(
    ratings: Ratings, args: argparse.Namespace
) -> tuple[str, tuple[Ratings, Ratings]]:
    # A `--model` command learns its dataset only from the model.
    _check_official(args.split, ratings.name)
    split = args.split or ("u1" if ratings.name == "ml-100k" else "random")
    if split == "random":
        return split, ratings.random_split(args.test_fraction, seed=args.seed)
    if split == "temporal":
        return split, ratings.temporal_split()
    return split, ratings.official_split(split)


def first_rows(train: Ratings, max_rows: int | None) -> Ratings:
    """The first `max_rows` training ratings (`--max-rows`); all on None."""
    import numpy as np

    if max_rows is None:
        return train
    return train.subset(np.arange(min(int(max_rows), len(train))))


def _int(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CommandError(
            f"{option} expects integers. Received: {text!r}"
        ) from None


def _positive_int(option: str, text: str) -> int:
    value = _int(option, text)
    if value < 1:
        raise CommandError(
            f"{option} expects positive integers. Received: {text!r}"
        )
    return value


def _float(option: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CommandError(
            f"{option} expects numbers. Received: {text!r}"
        ) from None


# What each option accepts, checked before any data is loaded. NaN fails
# every comparison, so it is rejected too.
_POSITIVE = ("a positive integer", lambda v: v >= 1)
_NON_NEGATIVE = ("an integer >= 0", lambda v: v >= 0)
_LIMITS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "epochs": _POSITIVE,
    "batch_size": _POSITIVE,
    "max_rows": _POSITIVE,
    "max_trials": _POSITIVE,
    "k": _POSITIVE,
    "num_labels": _NON_NEGATIVE,
    "min_ratings": _NON_NEGATIVE,
    "seed": (
        "an integer in [0, 2**32 - 1]",
        lambda v: 0 <= v <= _checks.MAX_SEED,
    ),
    "download_timeout": (
        "a finite number of seconds > 0",
        lambda v: math.isfinite(v) and v > 0,
    ),
    "learning_rate": (
        "a finite number > 0",
        lambda v: math.isfinite(v) and v > 0,
    ),
    "test_fraction": ("a number in (0, 1)", lambda v: 0 < v < 1),
    "validation_fraction": ("a number in (0, 1)", lambda v: 0 < v < 1),
    "dropout": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "ema_momentum": ("a number in [0, 1)", lambda v: 0 <= v < 1),
}


def _option(dest: str) -> str:
    return "-k" if dest == "k" else "--" + dest.replace("_", "-")


def _check_output(
    option: str, path: str | None, suffixes: Sequence[str] | None = None
) -> None:
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


def _check_new(option: str, path: str | None, replace: bool) -> None:
    """Refuses to replace an existing `path` unless `replace` is set."""
    if path is not None and os.path.exists(path) and not replace:
        raise CommandError(
            f"{option}: {path} exists already; pass --overwrite to replace "
            "it, or name another path"
        )


def _check_image(option: str, path: str | None) -> None:
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
    # Without a suffix matplotlib would add one, and the file written
    # would not be the one named.
    if suffix[1:].lower() not in formats:
        raise CommandError(
            f"{option} must name an image file ({', '.join(sorted(formats))}"
            f"). Received: {path!r}"
        )
    _check_output(option, path)
