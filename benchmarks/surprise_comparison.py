"""Compares a preset with Surprise's SVD and SVD++ on the same folds.

Both libraries train on each fold's training part only and are scored on
its test part, in one process, one after the other, so that their wall
times are comparable. Surprise's algorithms keep their default settings
(those of Surprise's own benchmark table); the preset keeps its fixed
settings. Nothing is chosen on any rating of this run.

Usage:

    KERAS_BACKEND=jax python benchmarks/surprise_comparison.py \\
        --data-dir ../shared/data/movielens

`--folds` takes a subset of the folds (e.g. `--folds u1`). With
`--dataset ml-1m` the folds are the labels of ml-1m's fold column
(`ratings_no_timestamp.csv`, labels 1..5), e.g.

    KERAS_BACKEND=jax python benchmarks/surprise_comparison.py \
        --data-dir ../shared/data/movielens --dataset ml-1m \
        --preset recommended-large --folds 1

`--holdout FRACTION` replaces the folds with one random test part of that
fraction per seed of `--seeds` (`HoldOut(FRACTION, seed=s)`; the preset's
model starts from the same seed), e.g. ml-1m's random 90/10 protocol:

    KERAS_BACKEND=jax python benchmarks/surprise_comparison.py \
        --data-dir ../shared/data/movielens --dataset ml-1m \
        --holdout 0.1 --seeds 0 1 2 3 4 --algorithms SVD preset \
        --preset recommended-large \
        --out benchmarks/results/surprise_comparison_ml-1m_holdout

`--blend-choices TEMPLATE` takes each fold's blend from the JSON that
`fast_blend_validation.py` wrote for that fold's base (`{fold}` in the
template is the fold's name): the preset's epochs, the number, size and
epochs of the autoencoders and their weight are those chosen on a
validation tenth of that fold's training part, in place of the `--epochs`
and `--blend-*` options (a nested choice: no fold's choice read its test
ratings). From a `blend_autoencoders.py` JSON it takes the count and
weight its "chosen" entry records (in place of `--blend-autoencoders`
and `--blend-weight`), or from an older one that lacks it
only the weight: the one of its grid with the lowest validation RMSE for
`--blend-autoencoders` autoencoders. On `--holdout` the fold's name is
`seed3` (seed 3). For example

    KERAS_BACKEND=jax python benchmarks/surprise_comparison.py \
        --data-dir ../shared/data/movielens --algorithms SVDpp blend \
        --add-columns user_day --blend-members 1 --blend-choices \
        benchmarks/results/fast_blend_validation_ml-100k_nested_{fold}.json

`--add-columns` adds MovieLens columns to the preset
(`presets.with_columns`: user features such as `age gender occupation`,
or `user_day`), and `--neighborhood` the rating-weighted neighbourhood
over the same pairs as its implicit feedback. `--pair-dtype bfloat16`
holds the pairs in bfloat16 and computes every id's sums at once
(`RatingModel(pair_dtype=...)`).

It prints the per-fold table and writes
`benchmarks/results/surprise_comparison_<dataset>.{md,json}` (with
`--out`, there instead). It needs the optional `scikit-surprise`
package (`pip install scikit-surprise`).
"""

import argparse
import copy
import json
import os
import sys
import time

import keras
import numpy as np

from keras_catembed import presets
from keras_catembed.datasets import movielens
from keras_catembed.evaluation import cross_validate
from keras_catembed.evaluation.protocols import HoldOut
from keras_catembed.evaluation.protocols import Protocol

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results  # noqa: E402
import blend  # noqa: E402
import movielens_accuracy  # noqa: E402


def _surprise_fold(algorithm, train, test):
    """Fits a Surprise algorithm on `train`; RMSE, MAE and times on `test`."""
    import pandas as pd
    import surprise

    frame = pd.DataFrame(
        {"user": train.user_id, "item": train.movie_id, "rating": train.rating}
    )
    reader = surprise.Reader(rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_df(
        frame, reader
    ).build_full_trainset()
    start = time.perf_counter()
    algorithm.fit(trainset)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    predictions = np.array(
        [
            algorithm.predict(user, item).est
            for user, item in zip(
                test.user_id.tolist(), test.movie_id.tolist(), strict=True
            )
        ]
    )
    test_time = time.perf_counter() - start
    error = predictions - test.rating.astype("float64")
    return {
        "test_rmse": float(np.sqrt(np.mean(error**2))),
        "test_mae": float(np.mean(np.abs(error))),
        "fit_time": fit_time,
        "test_time": test_time,
    }


def _holdouts(dataset, data_dir, fraction, seeds):
    """The ratings, one name per seed and a protocol of a list of names."""
    if dataset == "ml-100k":
        ratings = movielens.load_ratings("ml-100k", data_dir=data_dir)
    else:
        ratings, _ = movielens_accuracy.load_1m(data_dir)
    names = [f"seed {seed}" for seed in seeds]

    class Seeds(Protocol):
        def __init__(self, chosen):
            self.chosen = chosen

        def split(self, data):
            for name in self.chosen:
                seed = int(name.removeprefix("seed "))
                yield from HoldOut(fraction, seed=seed).split(data)

    return ratings, names, Seeds


def _preset(args):
    """The preset dict of `--preset`, its options and `--epochs`."""
    config = presets.load(args.preset)
    if args.neighborhood:
        config["model"]["neighborhood"] = True
    if args.add_columns:
        # Names the pairs of implicit feedback and the neighbourhood alike.
        config = presets.with_columns(config, args.add_columns)
    if args.epochs is not None:
        config["recipe"]["epochs"] = args.epochs
    if args.pair_dtype is not None:
        config["model"]["pair_dtype"] = args.pair_dtype
    return config


def _blend_options(args, config, fold):
    """`blend.builder`'s options for one fold.

    From the command line, or with `--blend-choices` from the blend that
    `fast_blend_validation.py` chose on that fold's training part (or
    the count and weight that `blend_autoencoders.py` chose, from an
    older file the weight its grid gives); "what" names what was chosen.
    A choice file made for another split or other options is refused.
    """
    options = {
        "what": None,
        "config": config,
        "members": args.blend_members,
        "autoencoders": args.blend_autoencoders,
        "weight": args.blend_weight,
        "autoencoder_epochs": args.blend_autoencoder_epochs,
        "autoencoder_units": args.blend_autoencoder_units,
    }
    if args.blend_choices is None:
        return options
    name = str(fold).replace(" ", "")  # 1 to 5 (ml-1m), u1, seed0, ...
    path = args.blend_choices.format(fold=name)
    with open(path) as file:
        results = json.load(file)["results"]
    if "blend_grid" in results:
        # A `blend_autoencoders.py` file, made for this split: ml-1m's
        # fold 1 is "fold1", a seed "seed0" ("holdout", seed 0's, in
        # files older than the seeds' names); the rest as given, and as
        # the grid's blends were.
        expected = f"fold{name}" if name.isdigit() else name
        split = results.get("split", expected)
        _require_same(
            path,
            {
                "dataset": (results["dataset"], args.dataset),
                "split": ("seed0" if split == "holdout" else split, expected),
                "preset": (results["preset"], args.preset),
                "members": (results["members"], args.blend_members),
                "patience": (results["patience"], args.blend_patience),
                "pair_dtype": (results["pair_dtype"], args.pair_dtype),
                "autoencoder units": (500, args.blend_autoencoder_units),
                "autoencoder epochs": (None, args.blend_autoencoder_epochs),
                "add_columns": ([], args.add_columns),
            },
        )
        if "chosen" in results:
            # The count and weight its rule chose (`blend_autoencoders.py`
            # records them since it takes `--within`).
            return options | {
                "what": (
                    f"ItemAutoencoder, patience {args.blend_patience}; "
                    "the count and weight"
                ),
                "autoencoders": results["chosen"]["autoencoders"],
                "weight": results["chosen"]["weight"],
            }
        # An older file: the weight with the lowest validation RMSE for
        # `--blend-autoencoders` autoencoders.
        if args.blend_autoencoders > len(results["blend_grid"]):
            raise SystemExit(
                f"{path} scores up to {len(results['blend_grid'])} "
                f"autoencoders, not --blend-autoencoders "
                f"{args.blend_autoencoders}"
            )
        grid = results["blend_grid"][args.blend_autoencoders - 1]
        return options | {
            "what": (
                f"{args.blend_autoencoders} x ItemAutoencoder, patience "
                f"{args.blend_patience}; the weight"
            ),
            "weight": float(min(grid, key=grid.get)),
        }
    chosen = results["chosen"]
    if chosen is None:
        raise SystemExit(f"{path} chose no blend (none within its budget)")
    # Its blends hold one model of the preset.
    _require_same(
        path,
        {
            "preset": (results["args"]["preset"], args.preset),
            "add_columns": (results["args"]["add_columns"], args.add_columns),
            "members": (1, args.blend_members),
        },
    )
    config = copy.deepcopy(config)
    config["recipe"]["epochs"] = chosen["epochs"]
    return options | {
        "what": "epochs, autoencoders and weight",
        "config": config,
        "autoencoders": chosen["autoencoders"],
        "weight": chosen["weight"],
        "autoencoder_epochs": chosen["autoencoder_epochs"],
        "autoencoder_units": chosen["hidden_units"],
    }


def _require_same(path, pairs):
    """Stops when a choice file was made for other options than these."""
    different = [
        f"{name}: {chosen!r} there, {given!r} here"
        for name, (chosen, given) in pairs.items()
        if chosen != given
    ]
    if different:
        raise SystemExit(
            f"{path} chose for other options: " + "; ".join(different)
        )


def _described(options):
    """`_blend_options`'s choice as JSON: the preset's epochs and the rest."""
    described = {k: v for k, v in options.items() if k != "config"}
    described["preset_epochs"] = options["config"]["recipe"]["epochs"]
    return described


def _label(args):
    """The preset's name in the table, with what the options changed."""
    changes = [f"+{column}" for column in args.add_columns]
    if args.neighborhood:
        changes.insert(0, "+neighborhood")
    if args.epochs is not None:
        changes.append(f"{args.epochs} epochs")
    if args.pair_dtype is not None:
        changes.append(f"{args.pair_dtype} pairs")
    return f"'{args.preset}'" + (f" ({', '.join(changes)})" if changes else "")


def _summary(folds):
    summary = {}
    for name in ("test_rmse", "test_mae", "fit_time", "test_time"):
        values = np.array([fold[name] for fold in folds])
        summary[name] = values.tolist()
        summary[f"mean_{name}"] = float(values.mean())
        summary[f"std_{name}"] = float(values.std())
    summary["total_time"] = float(
        sum(fold["fit_time"] + fold["test_time"] for fold in folds)
    )
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--dataset", choices=["ml-100k", "ml-1m"], default="ml-100k"
    )
    parser.add_argument("--preset", default="recommended")
    parser.add_argument(
        "--add-columns",
        nargs="*",
        default=[],
        help="columns added to the preset (`presets.with_columns`), e.g. "
        "user_day",
    )
    parser.add_argument(
        "--neighborhood",
        action="store_true",
        help="adds the rating-weighted neighbourhood (`neighborhood=True`) "
        "to the preset",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="in place of the preset's epochs (its schedule then spans "
        "the shorter run)",
    )
    parser.add_argument(
        "--pair-dtype",
        choices=["float32", "bfloat16"],
        default=None,
        help="the dtype of the preset's pairs (`pair_dtype`)",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("--folds", nargs="*", default=None)
    parser.add_argument(
        "--holdout",
        type=float,
        default=None,
        help="in place of the folds, a random test part of this fraction "
        "per seed (HoldOut(fraction, seed=seed))",
    )
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--algorithms",
        nargs="*",
        default=["SVD", "SVDpp", "preset"],
        help="some of SVD, SVDpp, preset and blend (the preset's seeds "
        "averaged with an item autoencoder: blend.py)",
    )
    parser.add_argument(
        "--blend-members",
        type=int,
        default=3,
        help="models of the preset in the blend",
    )
    parser.add_argument(
        "--blend-autoencoders",
        type=int,
        default=1,
        help="item autoencoders in the blend (sharing its weight); 1, "
        "as in the published tables, where training.blend defaults to 5",
    )
    parser.add_argument(
        "--blend-weight",
        type=float,
        default=0.3,
        help="the autoencoders' share of the blend; 0.3, as in the "
        "published tables, where training.blend defaults to 0.4",
    )
    parser.add_argument(
        "--blend-patience",
        type=int,
        default=20,
        help="epochs without a better inner validation RMSE before the "
        "choice of the autoencoders' epochs stops (training.blend's "
        "default: 20)",
    )
    parser.add_argument(
        "--blend-autoencoder-epochs",
        type=int,
        default=None,
        help="the autoencoders' epochs, fixed (no choosing run); by "
        "default chosen inside each training part",
    )
    parser.add_argument(
        "--blend-autoencoder-units",
        type=int,
        default=500,
        help="each autoencoder's hidden units (I-AutoRec's 500 by default)",
    )
    parser.add_argument(
        "--blend-choices",
        default=None,
        help="a path with {fold}: each fold's blend as chosen on its own "
        "training part by fast_blend_validation.py (its preset epochs, "
        "autoencoders, units, autoencoder epochs and weight), or by "
        "blend_autoencoders.py (its count and weight, which then override "
        "--blend-autoencoders and --blend-weight)",
    )
    args = parser.parse_args()
    import surprise

    if args.holdout is None:
        ratings, names, protocol = movielens_accuracy.official_folds(
            args.dataset, args.data_dir, args.folds
        )
        protocol_name = f"OfficialFolds({names})"
    else:
        ratings, names, protocol = _holdouts(
            args.dataset, args.data_dir, args.holdout, args.seeds
        )
        protocol_name = f"HoldOut({args.holdout}, seed=s), s in {args.seeds}"
    splits = list(protocol(names).split_data(ratings))
    config = _preset(args)
    out = args.out or os.path.join(
        HERE, "results", f"surprise_comparison_{args.dataset}"
    )

    # Fold by fold, every algorithm in turn: on a shared machine each one
    # then meets about the same load.
    per_fold = {name: [] for name in args.algorithms}
    for done, (fold, (train, test)) in enumerate(
        zip(names, splits, strict=True), 1
    ):
        for name in args.algorithms:
            if name in ("preset", "blend"):
                # A hold-out's preset starts from the seed of its split.
                seed = 0 if args.holdout is None else args.seeds[done - 1]
                build = config
                if name == "blend":
                    options = _blend_options(args, config, fold)
                    build = blend.builder(
                        patience=args.blend_patience,
                        **{k: v for k, v in options.items() if k != "what"},
                    )
                scores = cross_validate(
                    build, ratings, protocol=protocol([fold]), seed=seed
                )
                per_fold[name].append(
                    {
                        key: float(scores[key][0])
                        for key in (
                            "test_rmse",
                            "test_mae",
                            "fit_time",
                            "test_time",
                        )
                    }
                )
                if name == "blend":
                    per_fold[name][-1].update(build.records[-1])
                    if args.blend_choices is not None:
                        per_fold[name][-1]["chosen"] = _described(options)
            else:
                algorithm = getattr(surprise, name)(random_state=0)
                per_fold[name].append(_surprise_fold(algorithm, train, test))
            print(name, fold, per_fold[name][-1], flush=True)
        # Written after each fold, so a long run keeps what it has.
        _write(out, args, names[:done], per_fold, protocol_name, surprise)


def _write(out, args, names, per_fold, protocol_name, surprise):
    results = {}
    for name, folds_out in per_fold.items():
        if name == "preset":
            label = f"keras-catembed {_label(args)}"
        elif name == "blend" and args.blend_choices is not None:
            label = (
                f"keras-catembed blend ({args.blend_members} x "
                f"{_label(args)} and ItemAutoencoders; "
                f"{folds_out[0]['chosen']['what']} chosen per fold)"
            )
        elif name == "blend":
            coders = "ItemAutoencoder"
            if args.blend_autoencoders > 1:
                coders = f"{args.blend_autoencoders} x ItemAutoencoder"
            if args.blend_weight != 0.3:
                coders += f", weight {args.blend_weight:g}"
            if args.blend_autoencoder_units != 500:
                coders += f", {args.blend_autoencoder_units} units"
            if args.blend_autoencoder_epochs is not None:
                coders += f", {args.blend_autoencoder_epochs} epochs"
            elif args.blend_patience != 20:
                coders += f", patience {args.blend_patience}"
            label = (
                f"keras-catembed blend ({args.blend_members} x "
                f"{_label(args)} + {coders})"
            )
        else:
            label = f"Surprise {name}"
        results[label] = _summary(folds_out)
        if name == "blend":
            results[label]["autoencoder_epochs"] = [
                fold["epochs"] for fold in folds_out
            ]
            if args.blend_choices is not None:
                results[label]["chosen"] = [
                    fold["chosen"] for fold in folds_out
                ]

    lines = [
        f"{args.dataset}, {protocol_name}; test RMSE per split, mean and "
        "total time (fit + test, every split)",
        "",
        "| model | " + " | ".join(map(str, names)) + " | mean | total time |",
        "|---|" + "---:|" * (len(names) + 2),
    ]
    for label, summary in results.items():
        cells = " | ".join(f"{v:.4f}" for v in summary["test_rmse"])
        lines.append(
            f"| {label} | {cells} | {summary['mean_test_rmse']:.4f} | "
            f"{summary['total_time']:.0f} s |"
        )
    table = "\n".join(lines)
    print(table)
    chosen = [fold.get("chosen", {}) for fold in per_fold.get("blend", [])]

    def used(key, given):
        """A blend option as given, or None where no blend used it."""
        if "blend" not in args.algorithms:
            return None
        if any(choice.get(key, given) != given for choice in chosen):
            return None  # chosen per fold: see each fold's "chosen"
        return given

    machine = _results.machine_info(
        backend=keras.backend.backend(),
        dataset=args.dataset,
        protocol=protocol_name,
        splits=list(names),
        preset=args.preset,
        blend_members=used("members", args.blend_members),
        blend_autoencoders=used("autoencoders", args.blend_autoencoders),
        blend_weight=used("weight", args.blend_weight),
        blend_patience=used("patience", args.blend_patience),
        blend_autoencoder_epochs=used(
            "autoencoder_epochs", args.blend_autoencoder_epochs
        ),
        blend_autoencoder_units=used(
            "autoencoder_units", args.blend_autoencoder_units
        ),
        blend_choices=args.blend_choices,
        add_columns=args.add_columns,
        neighborhood=args.neighborhood,
        epochs=args.epochs,
        pair_dtype=args.pair_dtype,
        surprise=surprise.__version__,
        load_average=list(os.getloadavg()),
    )
    _results.write(out, table, results, machine)


if __name__ == "__main__":
    main()
