"""The `catembed` command: train, evaluate and explore MovieLens models.

Run `catembed --help` (or `python -m keras_catembed --help`). The Keras
backend comes from `KERAS_BACKEND`, as everywhere in Keras.

The package only parses arguments, calls the library and prints: one
module per command or group of commands (`train`, `evaluate`, `tune`,
`embeddings` for `similar`, `recommend`, `plot` and `projector`), the
parser in `_parser` and what they share in `_common`. The library
functions that lived here moved: `train_model` is
`keras_catembed.training.train`, `inputs` is
`keras_catembed.datasets.movielens.inputs`, `baselines` is
`keras_catembed.evaluation.baselines` and `ranking_rows` is
`keras_catembed.evaluation.ranking_rows`; the old names still work, with a
`DeprecationWarning`.
"""

import os
import sys
import warnings
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TextIO

from keras_catembed.cli._common import COLUMNS
from keras_catembed.cli._common import SPLITS
from keras_catembed.cli._common import CommandError
from keras_catembed.cli._common import _ShowVersion
from keras_catembed.cli._parser import COMMANDS
from keras_catembed.cli._parser import build_parser as _build_parser
from keras_catembed.cli._parser import check_arguments as _check_arguments
from keras_catembed.cli.train import _plot_history
from keras_catembed.cli.tune import TUNERS
from keras_catembed.cli.tune import _typed

__all__ = ["COLUMNS", "COMMANDS", "SPLITS", "TUNERS", "CommandError", "main"]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
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


# Library functions that moved out of the command, by their old name.
_MOVED = {
    "train_model": ("keras_catembed.training", "train"),
    "inputs": ("keras_catembed.datasets.movielens", "inputs"),
    "baselines": ("keras_catembed.evaluation", "baselines"),
    "ranking_rows": ("keras_catembed.evaluation", "ranking_rows"),
}


def __getattr__(name: str) -> Callable[..., Any]:
    if name in _MOVED:
        import importlib

        module, new = _MOVED[name]
        function = getattr(importlib.import_module(module), new)

        def moved(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(
                f"keras_catembed.cli.{name} is deprecated: use {module}.{new}.",
                DeprecationWarning,
                stacklevel=2,
            )
            return function(*args, **kwargs)

        moved.__name__ = name
        moved.__doc__ = f"Deprecated alias of `{module}.{new}`."
        return moved
    raise AttributeError(
        f"module 'keras_catembed.cli' has no attribute {name!r}"
    )
