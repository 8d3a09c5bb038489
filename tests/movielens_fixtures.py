"""Tiny synthetic MovieLens releases, built at test time in each format.

No MovieLens data is stored here: one small made-up data set (`MOVIES`,
`RATINGS`) is written in the file format of each release, as a folder or as
a zip archive laid out like the official one. `FixtureServer` serves such
archives over HTTP on 127.0.0.1 so that the loader's download path can be
tested without a network.
"""

import collections
import csv
import hashlib
import http.server
import io
import os
import stat
import threading
import time
import zipfile

# The folder each official archive extracts to.
FOLDERS = {
    "ml-100k": "ml-100k",
    "ml-1m": "ml-1m",
    "ml-10m": "ml-10M100K",
    "ml-20m": "ml-20m",
    "ml-25m": "ml-25m",
    "ml-32m": "ml-32m",
    "ml-latest-small": "ml-latest-small",
    "ml-latest": "ml-latest",
}
CSV_RELEASES = ("ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest")

GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

# Original movie id -> (title, genres). Movie 13 is rated but missing here,
# as happens in real releases, so it gets a placeholder title.
MOVIES = {
    1: ("Toy Story (1995)", ("Animation", "Children's", "Comedy")),
    2: ("GoldenEye (1995)", ("Action", "Adventure", "Thriller")),
    5: ("Café au Lait (1993)", ("Comedy",)),
    7: ("American President, The (1995)", ("Comedy", "Drama", "Romance")),
    11: ('Shawshank "Redemption", The (1994)', ("Drama",)),
    40: ("Heat (1995)", ()),
}
MISSING_MOVIE = 13

# (user, movie, rating, timestamp), with whole-star ratings. User ids are
# not contiguous; user 3 has two ratings with the same latest timestamp.
RATINGS = (
    (1, 1, 5, 874965758),
    (1, 2, 3, 876893171),
    (1, 5, 4, 878542960),
    (1, 7, 3, 875071561),
    (3, 2, 2, 889237455),
    (3, 11, 5, 889237269),
    (3, 1, 4, 889236000),
    (3, 13, 1, 889237455),
    (8, 40, 5, 879362124),
    (8, 1, 4, 879362001),
    (8, 7, 2, 879361999),
    (20, 5, 1, 879138235),
    (20, 11, 3, 879138300),
    (20, 2, 4, 879138001),
    (20, 13, 5, 879139000),
    (1000000, 1, 3, 1427784002),
    (1000000, 40, 4, 1427784003),
)


# Original user id -> (age in years, gender, ml-100k occupation, ml-1m
# age group, ml-1m occupation code), with the codes `user_features` gives
# for ml-100k and for ml-1m: (age group, gender, occupation) indices.
USERS = {
    1: ((24, "M", "technician", 18, 17), (1, 1, 19), (1, 1, 17)),
    3: ((17, "F", "student", 1, 10), (0, 0, 18), (0, 0, 10)),
    8: ((56, "M", "administrator", 56, 0), (6, 1, 0), (6, 1, 0)),
    20: ((35, "F", "writer", 35, 20), (3, 0, 20), (3, 0, 20)),
    1000000: ((49, "M", "none", 45, 3), (4, 1, 12), (4, 1, 3)),
}


def half_star_ratings():
    """`RATINGS` with some half stars, as in ml-10m and the CSV releases."""
    return tuple(
        (user, movie, rating - 0.5 if index % 3 == 0 else rating, stamp)
        for index, (user, movie, rating, stamp) in enumerate(RATINGS)
    )


def official_folds(rows=RATINGS):
    """Fold name -> (base rows, test rows), like ml-100k's u1..u5, ua, ub."""
    folds = {}
    for k in range(5):
        test = [row for i, row in enumerate(rows) if i % 5 == k]
        base = [row for i, row in enumerate(rows) if i % 5 != k]
        folds[f"u{k + 1}"] = (base, test)
    for fold, pick in (("ua", min), ("ub", max)):
        test_rows = set()
        for user in sorted({row[0] for row in rows}):
            mine = [i for i, row in enumerate(rows) if row[0] == user]
            test_rows.add(pick(mine))
        folds[fold] = (
            [row for i, row in enumerate(rows) if i not in test_rows],
            [row for i, row in enumerate(rows) if i in test_rows],
        )
    return folds


def _lines(rows, separator, rating_format="{:g}"):
    text = "".join(
        separator.join(
            (str(user), str(movie), rating_format.format(rating), str(stamp))
        )
        + "\n"
        for user, movie, rating, stamp in rows
    )
    return text.encode("ascii")


def files_100k():
    """The files of ml-100k: u.data, u.item, u.genre and the folds."""
    files = {"u.data": _lines(RATINGS, "\t")}
    items = []
    for movie, (title, genres) in MOVIES.items():
        flags = ["1" if genre in genres else "0" for genre in GENRES_100K]
        items.append(
            "|".join(
                [str(movie), title, "01-Jan-1995", "", "http://x/"] + flags
            )
        )
    files["u.item"] = ("\n".join(items) + "\n").encode("latin-1")
    files["u.genre"] = (
        "".join(f"{genre}|{i}\n" for i, genre in enumerate(GENRES_100K)) + "\n"
    ).encode("ascii")
    for fold, (base, test) in official_folds().items():
        files[f"{fold}.base"] = _lines(base, "\t")
        files[f"{fold}.test"] = _lines(test, "\t")
    files["u.user"] = "".join(
        f"{user}|{age}|{gender}|{occupation}|0211{user % 10}\n"
        for user, ((age, gender, occupation, _, _), *_) in USERS.items()
    ).encode("latin-1")
    files["README"] = b"Synthetic test data in the ml-100k format.\n"
    return files


def files_1m():
    """ml-1m: '::'-separated ratings.dat and latin-1 movies.dat."""
    movies = "".join(
        f"{movie}::{title}::{'|'.join(genres)}\n"
        for movie, (title, genres) in MOVIES.items()
    )
    users = "".join(
        f"{user}::{gender}::{group}::{code}::0211{user % 10}\n"
        for user, ((_, gender, _, group, code), *_) in USERS.items()
    )
    return {
        "ratings.dat": _lines(RATINGS, "::"),
        "movies.dat": movies.encode("latin-1"),
        "users.dat": users.encode("latin-1"),
    }


def files_10m():
    """ml-10m: like ml-1m, with half stars and a utf-8 movies.dat."""
    movies = "".join(
        f"{movie}::{title}::{'|'.join(genres) or '(no genres listed)'}\n"
        for movie, (title, genres) in MOVIES.items()
    )
    return {
        "ratings.dat": _lines(half_star_ratings(), "::"),
        "movies.dat": movies.encode("utf-8"),
    }


def files_csv():
    """ml-20m and later: ratings.csv and movies.csv with headers."""
    ratings = b"userId,movieId,rating,timestamp\n" + _lines(
        half_star_ratings(), ",", "{:.1f}"
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["movieId", "title", "genres"])
    for movie, (title, genres) in MOVIES.items():
        writer.writerow(
            [movie, title, "|".join(genres) or "(no genres listed)"]
        )
    return {"ratings.csv": ratings, "movies.csv": out.getvalue().encode()}


def release_files(name):
    """File name -> bytes for the release `name`."""
    if name == "ml-100k":
        return files_100k()
    if name == "ml-1m":
        return files_1m()
    if name == "ml-10m":
        return files_10m()
    return files_csv()


def expected_rows(name):
    """The (user, movie, rating, timestamp) rows the release holds."""
    return RATINGS if name in ("ml-100k", "ml-1m") else half_star_ratings()


def write_release(root, name, files=None):
    """Writes the release's folder under `root`; returns the folder path."""
    folder = os.path.join(root, FOLDERS[name])
    os.makedirs(folder, exist_ok=True)
    for filename, data in (files or release_files(name)).items():
        with open(os.path.join(folder, filename), "wb") as handle:
            handle.write(data)
    return folder


def make_zip(name, files=None, extra_entries=()):
    """Zip bytes laid out like the official archive of `name`.

    `extra_entries` are `(entry_name, data, is_symlink)` added verbatim,
    e.g. to build archives whose entries escape the extraction folder.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(FOLDERS[name] + "/", b"")
        for filename, data in (files or release_files(name)).items():
            archive.writestr(f"{FOLDERS[name]}/{filename}", data)
        for entry, data, is_symlink in extra_entries:
            info = zipfile.ZipInfo(entry)
            if is_symlink:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def corrupt(data):
    """The zip `data` with its compressed contents damaged (CRC errors)."""
    damaged = bytearray(data)
    middle = len(damaged) // 2
    for i in range(middle - 20, middle + 20):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FixtureServer:
    """Serves bytes over HTTP on 127.0.0.1 from a background thread.

    `serve(path, *bodies)` answers the n-th request for `path` with
    `bodies[n]` (the last one repeats). A body may be a `(data, length)`
    pair to announce a `Content-Length` other than `len(data)` (a transfer
    cut short). `hits[path]` counts the requests; `delay` slows each body
    down (seconds spread over its bytes), to make downloads overlap.
    `drip = (num_bytes, seconds)` instead sends `num_bytes` every `seconds`
    (a server that never quite stalls); `sent[path]` counts the bytes sent.
    """

    def __init__(self):
        self.routes = {}
        self.hits = collections.Counter()
        self.sent = collections.Counter()
        self.delay = 0.0
        self.drip = None
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.lstrip("/")
                with server._lock:
                    bodies = server.routes.get(path)
                    count = server.hits[path]
                    server.hits[path] += 1
                if not bodies:
                    self.send_error(404)
                    return
                body = bodies[min(count, len(bodies) - 1)]
                data, length = body if isinstance(body, tuple) else (body, None)
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header(
                    "Content-Length",
                    str(len(data) if length is None else length),
                )
                self.end_headers()
                if server.drip:
                    size, seconds = server.drip
                    for start in range(0, len(data), size):
                        try:
                            self.wfile.write(data[start : start + size])
                            self.wfile.flush()
                        except OSError:  # The client gave up.
                            break
                        with server._lock:
                            server.sent[path] += len(data[start:][:size])
                        time.sleep(seconds)
                    self.close_connection = True
                    return
                pieces = 4 if server.delay else 1
                step = -(-len(data) // pieces)
                for start in range(0, len(data), step):
                    time.sleep(server.delay / pieces)
                    self.wfile.write(data[start : start + step])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True
        )

    def serve(self, path, *bodies):
        with self._lock:
            self.routes[path] = list(bodies)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
