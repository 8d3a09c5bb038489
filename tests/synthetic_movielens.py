"""A synthetic ml-100k-format release with a low-rank rating structure.

Large enough (a few thousand ratings) for a model to learn something in one
epoch, small enough for the example and CLI tests to run in seconds. The
files follow ml-100k's format: u.data, u.item, u.genre and u1..u5 folds.
"""

import os

import numpy as np

GENRES = ("unknown", "Action", "Comedy", "Drama")


def write_synthetic_100k(root, num_users=80, num_movies=60, num_ratings=4000):
    """Writes `root/ml-100k/`; returns that folder."""
    rng = np.random.default_rng(7)
    user_factors = rng.normal(size=(num_users, 2))
    movie_factors = rng.normal(size=(num_movies, 2))
    pairs = rng.choice(num_users * num_movies, num_ratings, replace=False)
    users, movies = np.divmod(pairs, num_movies)
    scores = 3.2 + (user_factors[users] * movie_factors[movies]).sum(1)
    ratings = np.clip(np.rint(scores), 1, 5).astype(int)
    stamps = 880000000 + rng.integers(0, 10**7, num_ratings)
    folder = os.path.join(root, "ml-100k")
    os.makedirs(folder, exist_ok=True)

    def write(name, rows):
        with open(os.path.join(folder, name), "w", encoding="latin-1") as f:
            for u, m, r, t in rows:
                f.write(f"{u + 1}\t{m + 1}\t{r}\t{t}\n")

    rows = list(zip(users, movies, ratings, stamps, strict=True))
    write("u.data", rows)
    fold = np.arange(num_ratings) % 5
    for k in range(5):
        write(
            f"u{k + 1}.base",
            [r for r, f in zip(rows, fold, strict=True) if f != k],
        )
        write(
            f"u{k + 1}.test",
            [r for r, f in zip(rows, fold, strict=True) if f == k],
        )
    with open(os.path.join(folder, "u.genre"), "w", encoding="latin-1") as f:
        for i, genre in enumerate(GENRES):
            f.write(f"{genre}|{i}\n")
    with open(os.path.join(folder, "u.item"), "w", encoding="latin-1") as f:
        for m in range(num_movies):
            flags = ["0"] * len(GENRES)
            flags[1 + m % 3] = "1"
            f.write(
                f"{m + 1}|Movie {m + 1} (19{50 + m % 50})|01-Jan-1995||"
                f"http://example.invalid/{m + 1}|" + "|".join(flags) + "\n"
            )
    with open(os.path.join(folder, "u.user"), "w", encoding="latin-1") as f:
        for u in range(num_users):
            gender = "FM"[u % 2]
            occupation = ("student", "writer", "other")[u % 3]
            f.write(f"{u + 1}|{15 + u % 50}|{gender}|{occupation}|00000\n")
    return folder
