"""Checks of what a ratings file holds, beyond its syntax.

- Every rating must be one the release publishes (`rating_scale` in
  `RELEASES`): whole stars 1..5 for ml-100k and ml-1m, half stars 0.5..5
  from ml-10m on.
- Duplicates policy: each (user, movie) pair may appear once. MovieLens
  records one rating per user and movie (a later rating replaces the
  earlier one), so a repeated pair means a damaged or edited file; the
  loader raises a `ValueError` that names the first repeated pair and the
  two lines that hold it, rather than guess which rating to keep. To load
  such data on purpose, decide which rows to keep and build the ratings
  with `Ratings.from_arrays`.

Both raise a `ValueError` naming the file, the line and the value.
"""

import numpy as np
from numpy.typing import NDArray


def _describe_scale(scale: tuple[float, float, float]) -> str:
    low, high, step = scale
    if step == 1:
        values = ", ".join(f"{v:g}" for v in np.arange(low, high, step))
        return f"whole stars {values} or {high:g}"
    return f"multiples of {step:g} from {low:g} to {high:g}"


def _check_rating_scale(
    values: NDArray[np.floating],
    scale: tuple[float, float, float],
    where: str,
    first_line: int,
) -> None:
    """Raises if a rating is outside the release's `scale`."""
    low, high, step = scale
    steps = values / step
    bad = (values < low) | (values > high) | (steps != np.round(steps))
    if bad.any():
        row, count = int(np.argmax(bad)), int(bad.sum())
        raise ValueError(
            f"{where}, line {first_line + row}: the rating "
            f"{float(values[row]):g} is not one this release publishes "
            f"({count} such rating{'s' * (count != 1)} in the "
            f"file). Expected {_describe_scale(scale)}."
        )


def _check_no_duplicates(
    user_id: NDArray[np.integer],
    movie_id: NDArray[np.integer],
    num_movies: int,
    users: NDArray[np.integer],
    movies: NDArray[np.integer],
    where: str,
    first_line: int,
) -> None:
    """Raises if a (user, movie) pair appears twice.

    `user_id` and `movie_id` are the rows' indices (`num_movies` of them),
    `users` and `movies` their original ids, for the message.
    """
    if user_id.size < 2:
        return
    keys = user_id.astype(np.int64) * num_movies + movie_id
    ordered = np.sort(keys)
    if not np.any(ordered[1:] == ordered[:-1]):
        return
    order = np.argsort(keys, kind="stable")
    repeats = np.flatnonzero(keys[order][1:] == keys[order][:-1]) + 1
    first = int(np.argmin(order[repeats]))
    row, earlier = int(order[repeats][first]), int(order[repeats - 1][first])
    raise ValueError(
        f"{where} rates the pair (user {int(users[row])}, movie "
        f"{int(movies[row])}) twice: on line {first_line + earlier} and on "
        f"line {first_line + row} ({repeats.size} repeated "
        f"row{'s' * (repeats.size != 1)} in the file). Expected each "
        "(user, movie) pair once, as MovieLens publishes them; to keep one "
        "rating of each pair, choose the rows and use Ratings.from_arrays."
    )
