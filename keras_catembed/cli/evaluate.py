"""`catembed evaluate`: errors (and ranking metrics) of a saved model."""

import argparse
import math
import sys
from typing import Any
from typing import TextIO

from keras_catembed.cli import _common
from keras_catembed.cli import _models
from keras_catembed.datasets import movielens
from keras_catembed.datasets.movielens import Ratings
from keras_catembed.evaluation import error_baselines
from keras_catembed.evaluation import ranking_report


def add_parser(commands: _common.Commands) -> None:
    """Adds the `evaluate` command to the subparsers `commands`."""
    evaluate = _models.add_model_command(
        commands,
        "evaluate",
        help="evaluate a saved model on a held-out part",
        description="Print the test RMSE and MAE of a model saved by "
        "catembed train next to the baselines; with --ranking, also the "
        "ranking metrics of its top-k lists next to the most-popular "
        "baseline (needs the [ranking] extra).",
    )
    _common._add_split_arguments(evaluate, from_model=True)
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


def run(args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    """Runs `catembed evaluate`; returns the rows it printed."""
    if not args.ranking and args.k is not None:
        raise _common.CommandError(
            "-k is used with --ranking only; add --ranking"
        )
    if not math.isfinite(args.relevance_threshold):
        raise _common.CommandError(
            "--relevance-threshold must be a finite number. Received: "
            f"{args.relevance_threshold}"
        )
    if args.ranking:
        from keras_catembed.evaluation import ranking

        ranking._keras_rs_metrics()  # Before any work, if it is missing.
    model, ratings = _models.load_model(args)
    _models.split_from_model(args, model, ratings)
    split, (train, test) = _common._split(ratings, args)
    rows: dict[str, Any] = dict(error_baselines.baselines(train, test))
    rows["model"] = error_baselines.errors(
        model.predict(
            movielens.inputs(test, model.columns), batch_size=8192, verbose=0
        ),
        test.rating,
    )
    ranked = None
    if args.ranking:
        # Computed before anything is printed: a mistake is one line.
        k = 10 if args.k is None else args.k
        ranked = ranking_report.ranking_rows(
            model,
            train,
            test,
            k=k,
            relevance_threshold=args.relevance_threshold,
        )
    print(f"{ratings.name}, {split} split, {len(test):,} ratings", file=out)
    print(error_baselines.table(rows), file=out)
    if ranked is not None:
        print(
            f"Top-{k} lists of {ranked['model']['users']:,} test users "
            f"(relevant: test ratings >= {args.relevance_threshold:g}; "
            f"each user's training movies left out; all "
            f"{ratings.num_movies:,} movies are candidates)",
            file=out,
        )
        print(ranking_report.ranking_table(ranked, k), file=out)
        rows["ranking"] = ranked
    _report_overlap(model, test, out)
    return rows


def _report_overlap(model: Any, test: Ratings, out: TextIO) -> float | None:
    """Says, in the output and on stderr, if test rows trained the model."""
    from keras_catembed import _provenance

    fingerprint = model.training_fingerprint
    if fingerprint is None or set(fingerprint["columns"]) - set(model.columns):
        return None
    x = movielens.inputs(test, model.columns)
    fraction: float | None
    fraction, sampled = _provenance.overlap(fingerprint, x, test.rating)
    if fraction is None or fraction <= _provenance.OVERLAP_THRESHOLD:
        return fraction
    message = _provenance.overlap_message(
        fraction, sampled, fingerprint["exact"]
    )
    print(f"WARNING: {message}", file=out)
    print(f"catembed: warning: {message}", file=sys.stderr)
    return fraction
