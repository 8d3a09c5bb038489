"""Synthetic ratings shaped like MovieLens-20M, for scale benchmarks.

MovieLens-20M has 20,000,263 ratings of 26,744 movies by 138,493 users,
each user with at least 20 ratings (mean about 144, a heavy tail up to
about 9,000), the most-rated movie with about 0.3% of all ratings, every
(user, movie) pair at most once, and half-star ratings from 0.5 to 5.
Aggregations over a user's or a movie's ratings (implicit feedback,
neighbourhoods) cost what these counts make them cost, so a stand-in must
match them, not just the number of rows: a Zipf draw of both ids gives one
user a large share of all rows and repeats pairs.

`ratings(num_rows)` draws:
- users: `round(138,493 * num_rows / 20,000,263)` of them; each user's
  count is 20 plus a log-normal draw (mean about 124), capped at the
  number of movies, then scaled so the counts add up to `num_rows`;
- movies: 26,744 (fewer if `num_rows` is small), popularity
  `1 / (rank + 300) ** 2`, which gives the top movie about 0.3% of the
  draws and the median movie about 30 ratings at full size; each user
  rates distinct movies drawn by popularity;
- ratings: a user bias, a movie bias and noise, rounded to half stars.
"""

import numpy as np

ML20M_ROWS = 20_000_263
ML20M_USERS = 138_493
ML20M_MOVIES = 26_744


def counts_per_user(num_users, num_rows, num_movies, rng):
    """Ratings per user: at least 20, heavy-tailed, summing to num_rows."""
    minimum = min(20, num_movies)
    extra = rng.lognormal(mean=4.1, sigma=1.2, size=num_users)
    extra *= max(num_rows - minimum * num_users, 0) / extra.sum()
    counts = np.minimum(minimum + np.floor(extra).astype(np.int64), num_movies)
    # Hand out what rounding and the cap left over, one row per user.
    short = num_rows - counts.sum()
    order = rng.permutation(num_users)
    while short > 0:
        room = order[counts[order] < num_movies][:short]
        if room.size == 0:
            break
        counts[room] += 1
        short -= room.size
    return counts


def ratings(num_rows=ML20M_ROWS, seed=0):
    """Returns `(user_id, movie_id, rating)` arrays of ML-20M's shape."""
    rng = np.random.default_rng(seed)
    num_users = max(1, round(ML20M_USERS * num_rows / ML20M_ROWS))
    num_movies = min(ML20M_MOVIES, max(100, num_rows // 20))
    counts = counts_per_user(num_users, num_rows, num_movies, rng)
    popularity = 1.0 / (np.arange(num_movies) + 300.0) ** 2.0
    popularity /= popularity.sum()
    # Each user draws distinct movies: draw with replacement, keep the
    # distinct pairs, and draw again for the users still short.
    done_users, done_movies = [], []
    pending = np.arange(num_users)
    users = movies = np.empty(0, np.int64)
    for _ in range(100):
        need = counts[pending] - np.bincount(
            np.searchsorted(pending, users), minlength=pending.size
        )
        finished = need <= 0
        if finished.any():
            keep = finished[np.searchsorted(pending, users)]
            done_users.append(users[keep])
            done_movies.append(movies[keep])
            users, movies = users[~keep], movies[~keep]
            pending, need = pending[~finished], need[~finished]
        if pending.size == 0:
            break
        draw_users = np.repeat(pending, need + need // 4 + 1)
        draw_movies = rng.choice(num_movies, draw_users.size, p=popularity)
        keys = np.unique(
            np.concatenate(
                [
                    users * num_movies + movies,
                    draw_users * num_movies + draw_movies,
                ]
            )
        )
        users, movies = keys // num_movies, keys % num_movies
        # Keep a random `counts[u]` of each user's distinct movies.
        order = np.lexsort((rng.random(users.size), users))
        users, movies = users[order], movies[order]
        have = np.bincount(users, minlength=num_users)
        starts = np.cumsum(have) - have
        rank = np.arange(users.size) - np.repeat(starts, have)
        keep = rank < counts[users]
        users, movies = users[keep], movies[keep]
    users = np.concatenate([*done_users, users])
    movies = np.concatenate([*done_movies, movies])
    # Movie ids in a random order of popularity, as real ids are.
    movies = rng.permutation(num_movies)[movies]
    user_bias = rng.normal(0, 0.4, num_users)
    movie_bias = rng.normal(0, 0.5, num_movies)
    score = 3.5 + user_bias[users] + movie_bias[movies]
    score += rng.normal(0, 0.9, users.size)
    rating = np.clip(np.round(score * 2) / 2, 0.5, 5.0)
    order = rng.permutation(users.size)
    return (
        users[order].astype(np.int32),
        movies[order].astype(np.int32),
        rating[order].astype(np.float32),
    )


def describe(users, movies):
    """The shape statistics the module docstring promises."""
    per_user = np.bincount(users)
    per_movie = np.bincount(movies)
    pairs = users.astype(np.int64) * (movies.max() + 1) + movies
    return {
        "rows": int(users.size),
        "users": int(per_user.size),
        "movies": int(np.count_nonzero(per_movie)),
        "min_per_user": int(per_user.min()),
        "mean_per_user": float(per_user.mean()),
        "max_per_user": int(per_user.max()),
        "mean_per_movie": float(per_movie[per_movie > 0].mean()),
        "top_movie_share": float(per_movie.max() / users.size),
        "distinct_pairs": bool(np.unique(pairs).size == users.size),
    }
