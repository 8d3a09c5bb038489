"""`catembed similar`, `recommend`, `plot` and `projector`: what a saved
model's embeddings say."""

import argparse
import json
from typing import Any
from typing import TextIO

from keras_catembed.cli import _common
from keras_catembed.cli import _models
from keras_catembed.datasets.movielens import Ratings


def add_parser(commands: _common.Commands) -> None:
    """Adds `similar`, `recommend`, `plot` and `projector` to `commands`."""
    similar = _models.add_model_command(
        commands,
        "similar",
        help="movies whose embeddings are nearest to a movie",
    )
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
        help="remove the mean vector of the candidate movies (those "
        "with --min-ratings ratings) and each vector's part along it "
        "before measuring; spreads out cosine scores that all sit near 1, "
        "as with implicit feedback",
    )
    similar.add_argument(
        "--min-ratings",
        type=int,
        default=20,
        help="list only movies with at least this many ratings (default: "
        "20; rarely rated movies have noisy vectors)",
    )

    recommend = _models.add_model_command(
        commands,
        "recommend",
        help="the movies a model predicts a user will rate highest",
        description="List the k movies with the highest predicted rating "
        "for one user, among the movies the user has not rated in the "
        "loaded release.",
    )
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

    plot = _models.add_model_command(
        commands,
        "plot",
        help="2-D map of the movie embeddings (PNG)",
    )
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

    projector = _models.add_model_command(
        commands,
        "projector",
        help="export embeddings for TensorBoard's projector",
    )
    projector.add_argument(
        "--log-dir",
        required=True,
        help="folder to write the vectors, metadata and projector config "
        "into (created if missing); open it with tensorboard --logdir",
    )
    projector.add_argument(
        "--column",
        default="movie_id",
        choices=_common.COLUMNS,
        help="whose embeddings to export (default: movie_id)",
    )


def run_similar(args: argparse.Namespace, out: TextIO) -> list[str]:
    """Runs `catembed similar`."""
    model, ratings = _models.load_model(args)
    return print_similar(
        model,
        ratings,
        args.movie,
        args.k,
        args.metric,
        out,
        args.min_ratings,
        center=args.center,
        hint="; lower --min-ratings",
    )


def print_similar(
    model: Any,
    ratings: Ratings,
    title: str,
    k: int,
    metric: str,
    out: TextIO,
    min_ratings: int,
    center: bool = False,
    hint: str = "",
) -> list[str]:
    """Prints the `k` movies nearest to `title` with `min_ratings` ratings.

    Raises `CommandError` when no other movie has that many; `hint` ends
    its message.
    """
    import numpy as np

    from keras_catembed import explore

    index = _models.movie_index(ratings, title)
    counts = np.bincount(ratings.movie_id, minlength=ratings.num_movies)
    others = counts.copy()
    others[index] = 0
    if not np.any(others >= min_ratings):
        raise _common.CommandError(
            f"No movie but {ratings.titles[index]!r} has at least "
            f"{min_ratings} ratings in {ratings.name}{hint}"
        )
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


def run_recommend(args: argparse.Namespace, out: TextIO) -> list[str]:
    """Runs `catembed recommend`."""
    import numpy as np

    model, ratings = _models.load_model(args)
    found = np.flatnonzero(ratings.user_ids == args.user)
    if found.size == 0:
        raise _common.CommandError(
            f"--user {args.user} is not a user of {ratings.name} (its ids "
            f"run from {ratings.user_ids.min()} to {ratings.user_ids.max()})"
        )
    index = int(found[0])
    rated = ratings.user_id == index
    counts = np.bincount(ratings.movie_id, minlength=ratings.num_movies)
    candidates = np.flatnonzero(counts >= args.min_ratings)
    candidates = candidates[~np.isin(candidates, ratings.movie_id[rated])]
    if candidates.size == 0:
        raise _common.CommandError(
            f"No movie with at least {args.min_ratings} ratings is left "
            f"that user {args.user} has not rated; lower --min-ratings"
        )
    users = {"user_id": np.array([index])}
    for column in model.columns:
        if column not in ("user_id", "movie_id"):
            users[column] = _user_value(args, model, ratings, column, index)
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


def _user_value(
    args: argparse.Namespace,
    model: Any,
    ratings: Ratings,
    column: str,
    index: int,
) -> Any:
    """The user's value of a model's extra column, as an array of one."""
    import numpy as np

    from keras_catembed.datasets import movielens

    if column in movielens.USER_FEATURES:
        return ratings.user_features()[column][[index]]
    if column == "user_day":
        # The user's latest day among the ratings the model trained on: a
        # later day, or any day of no training rating, has an untrained
        # vector.
        train = _models.training_part(model, ratings)
        rows = np.flatnonzero(train.user_id == index)
        if rows.size == 0:
            raise _common.CommandError(
                f"--user {args.user} has no rating in the part of "
                f"{ratings.name} --model {args.model} was trained on, so "
                "its 'user_day' column has no trained day for this user"
            )
        days = train.user_day()  # Raises without timestamps.
        assert train.timestamp is not None
        return days[[rows[np.argmax(train.timestamp[rows])]]]
    raise _common.CommandError(
        f"--model {args.model} embeds the column {column!r}, which "
        "recommend cannot make for a user: it knows the user features "
        f"{sorted(movielens.USER_FEATURES)} and 'user_day'"
    )


def plot(
    model: Any, ratings: Ratings, counted: Ratings, path: str, num_labels: int
) -> str:
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


def run_plot(args: argparse.Namespace, out: TextIO) -> str:
    """Runs `catembed plot`."""
    model, ratings = _models.load_model(args)
    plot(model, ratings, ratings, args.out, args.num_labels)
    print(f"Wrote the embedding map to {args.out}", file=out)
    path: str = args.out
    return path


def run_projector(
    args: argparse.Namespace, out: TextIO
) -> dict[str, str | None]:
    """Runs `catembed projector`."""
    from keras_catembed import explore

    model, ratings = _models.load_model(args)
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
