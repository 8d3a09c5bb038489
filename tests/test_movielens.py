"""Tests of the MovieLens loader, on synthetic fixtures and real ml-100k."""

import dataclasses
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keras_catembed.datasets import movielens
from tests import movielens_fixtures as fx

# Backend-independent: runs on one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

Ratings = movielens.Ratings
REAL_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens"
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Keras cache; returns its `datasets` folder."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "datasets"


@pytest.fixture(params=["numpy", "pyarrow"])
def parser(request, monkeypatch):
    """Runs a test with the NumPy parser, then with pyarrow (if installed)."""
    if request.param == "numpy":
        monkeypatch.setattr(movielens.arrow, "_PYARROW", None)
    else:
        pytest.importorskip("pyarrow")
    return request.param


@pytest.fixture
def numpy_parser(monkeypatch):
    monkeypatch.setattr(movielens.arrow, "_PYARROW", None)


@pytest.fixture
def server():
    with fx.FixtureServer() as running:
        yield running


def serve(monkeypatch, server, name, *bodies, file_hash="first"):
    """Points the registry entry of `name` at `bodies` on the local server."""
    if file_hash == "first":
        first = bodies[0]
        file_hash = fx.sha256(first[0] if isinstance(first, tuple) else first)
    monkeypatch.setitem(
        movielens.RELEASES,
        name,
        {
            **movielens.RELEASES[name],
            "url": server.url(f"{name}.zip"),
            "file_hash": file_hash,
        },
    )
    server.serve(f"{name}.zip", *bodies)


def rows_of(ratings):
    """The ratings as sorted (user, movie, rating, timestamp) tuples."""
    return sorted(
        zip(
            ratings.user_ids[ratings.user_id].tolist(),
            ratings.movie_ids[ratings.movie_id].tolist(),
            ratings.rating.tolist(),
            ratings.timestamp.tolist(),
            strict=True,
        )
    )


def check_matches_fixture(ratings, name):
    rows = fx.expected_rows(name)
    assert len(ratings) == len(rows)
    assert rows_of(ratings) == sorted(rows)
    assert ratings.user_id.dtype == np.int32
    assert ratings.movie_id.dtype == np.int32
    assert ratings.rating.dtype == np.float32
    assert ratings.timestamp.dtype == np.int64
    assert ratings.user_ids.tolist() == sorted({row[0] for row in rows})
    assert ratings.movie_ids.tolist() == sorted({row[1] for row in rows})
    assert ratings.num_users == len(ratings.user_ids) == 5
    assert ratings.num_movies == len(ratings.movie_ids) == 7
    assert ratings.user_id.max() == ratings.num_users - 1
    assert ratings.movie_id.max() == ratings.num_movies - 1
    for index, movie in enumerate(ratings.movie_ids.tolist()):
        title, genres = fx.MOVIES.get(movie, (f"movie {movie}", ()))
        assert ratings.titles[index] == title
        assert ratings.genres[index] == genres
    assert ratings.name == name


# --- Registry ---------------------------------------------------------------


def test_rejects_unknown_name_and_lists_valid_names():
    with pytest.raises(ValueError, match="ml-100k.*ml-latest") as info:
        movielens.load_ratings("ml-5m")
    assert "'ml-5m'" in str(info.value)
    for name in fx.FOLDERS:
        assert name in str(info.value)


def test_registry_names_each_release_folder_url_and_checksum():
    assert set(movielens.RELEASES) == set(fx.FOLDERS)
    for name, release in movielens.RELEASES.items():
        assert release["folder"] == fx.FOLDERS[name]
        assert release["url"] == (
            f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        )
        if name.startswith("ml-latest"):
            assert release["file_hash"] is None
        else:
            assert re.fullmatch(r"md5:[0-9a-f]{32}", release["file_hash"])
    assert movielens.RELEASES["ml-100k"]["file_hash"] == (
        "md5:0e33842e24a9c977be4e0107933c0723"
    )


# --- Parsing each format ----------------------------------------------------


@pytest.mark.parametrize("name", ["ml-100k", "ml-1m", "ml-10m", "ml-20m"])
def test_parses_each_release_format(tmp_path, name, parser):
    fx.write_release(tmp_path, name)
    ratings = movielens.load_ratings(name, data_dir=tmp_path, download=False)
    check_matches_fixture(ratings, name)
    assert ratings.path == os.path.join(tmp_path, fx.FOLDERS[name])


@pytest.mark.parametrize("name", fx.CSV_RELEASES[1:])
def test_parses_other_csv_releases(tmp_path, name, parser):
    folder = fx.write_release(tmp_path, name)
    check_matches_fixture(movielens.load_ratings(name, data_dir=folder), name)


def test_keeps_quoted_titles_accents_and_empty_genres(tmp_path):
    fx.write_release(tmp_path, "ml-20m")
    ratings = movielens.load_ratings("ml-20m", data_dir=tmp_path)
    titles = dict(zip(ratings.movie_ids.tolist(), ratings.titles, strict=True))
    genres = dict(zip(ratings.movie_ids.tolist(), ratings.genres, strict=True))
    assert titles[7] == "American President, The (1995)"
    assert titles[11] == 'Shawshank "Redemption", The (1994)'
    assert titles[5] == "Café au Lait (1993)"
    assert titles[fx.MISSING_MOVIE] == f"movie {fx.MISSING_MOVIE}"
    assert genres[40] == ()
    assert genres[1] == ("Animation", "Children's", "Comedy")


def test_reads_latin1_titles_of_ml_100k_and_ml_1m(tmp_path):
    for name in ("ml-100k", "ml-1m"):
        fx.write_release(tmp_path, name)
        ratings = movielens.load_ratings(name, data_dir=tmp_path)
        index = ratings.movie_ids.tolist().index(5)
        assert ratings.titles[index] == "Café au Lait (1993)"


def test_accepts_crlf_missing_final_newline_and_trailing_blank_lines(
    tmp_path, parser
):
    files = fx.files_100k()
    lines = files["u.data"].decode().splitlines()
    files["u.data"] = ("\r\n".join(lines) + "\r\n\r\n\n").encode()
    fx.write_release(tmp_path / "a", "ml-100k", files)
    files["u.data"] = "\n".join(lines).encode()
    fx.write_release(tmp_path / "b", "ml-100k", files)
    for root in ("a", "b"):
        ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path / root)
        check_matches_fixture(ratings, "ml-100k")


def test_parses_across_chunk_boundaries(tmp_path, monkeypatch, numpy_parser):
    fx.write_release(tmp_path, "ml-20m")
    monkeypatch.setattr(movielens.parsing, "_CHUNK_BYTES", 7)
    ratings = movielens.load_ratings("ml-20m", data_dir=tmp_path)
    check_matches_fixture(ratings, "ml-20m")


def test_parses_long_numbers_like_numpy(tmp_path, parser):
    rng = np.random.default_rng(0)
    num_rows = 5000
    users = rng.integers(0, 10**15, num_rows)
    movies = rng.integers(1, 10 ** rng.integers(1, 9, num_rows))
    ratings = rng.integers(1, 11, num_rows) / 2
    stamps = rng.integers(0, 10**12, num_rows)
    text = "".join(
        f"{u},{m},{r:g},{t}\n"
        for u, m, r, t in zip(users, movies, ratings, stamps, strict=True)
    )
    files = {
        "ratings.csv": b"userId,movieId,rating,timestamp\n" + text.encode()
    }
    fx.write_release(tmp_path, "ml-latest", files)
    loaded = movielens.load_ratings("ml-latest", data_dir=tmp_path)
    np.testing.assert_array_equal(loaded.user_ids[loaded.user_id], users)
    np.testing.assert_array_equal(loaded.movie_ids[loaded.movie_id], movies)
    np.testing.assert_array_equal(loaded.rating, ratings.astype(np.float32))
    np.testing.assert_array_equal(loaded.timestamp, stamps)
    assert loaded.titles[0] == f"movie {loaded.movie_ids[0]}"


@pytest.mark.parametrize(
    "name, filename, line_number, bad_line, match",
    [
        ("ml-100k", "u.data", 3, "1\t2\tx\t874965758", "rating field 'x'"),
        ("ml-100k", "u.data", 5, "1\t2\t3", "expected 4 fields"),
        ("ml-100k", "u.data", 2, "", "expected 4 fields"),
        ("ml-100k", "u.data", 4, "1\t2\t3\t4\t5", "expected 4 fields"),
        ("ml-100k", "u.data", 6, "-1\t2\t3\t874965758", "character '-'"),
        ("ml-100k", "u.data", 7, "1.5\t2\t3\t874965758", "user id field"),
        ("ml-100k", "u.data", 8, "1\t2\t3.5.5\t874965758", "rating field"),
        ("ml-100k", "u.data", 9, "1\t2\tnan\t874965758", "rating field"),
        ("ml-100k", "u.data", 10, "1\t\t3\t874965758", "item id field ''"),
        ("ml-100k", "u.data", 3, "1\t2\t3\t12345678901234567", "timestamp"),
        ("ml-100k", "u.data", 4, "+1\t2\t3\t874965758", "character '\\+'"),
        ("ml-100k", "u.data", 5, "1\t2\t3e0\t874965758", "rating field"),
        # pyarrow alone would read these ratings as 3.
        ("ml-100k", "u.data", 3, "1\t2\t 3\t874965758", "character ' '"),
        ("ml-100k", "u.data", 5, "1\t2\t3 \t874965758", "character ' '"),
        ("ml-100k", "u.data", 6, "1\t2\t+3\t874965758", "character '\\+'"),
        ("ml-100k", "u.data", 6, "1\t2\tinf\t874965758", "rating field"),
        ("ml-100k", "u.data", 7, "1\t2\t-0\t874965758", "character '-'"),
        ("ml-100k", "u.data", 8, "1\t2\t3\t8749\r65758", r"character '\\r'"),
        ("ml-20m", "ratings.csv", 5, '1,2,"3.5",874965758', "character '\"'"),
        ("ml-1m", "ratings.dat", 4, "1::2:3::874965758", "expected 4 fields"),
        ("ml-1m", "ratings.dat", 2, "1::2::3::87496575a", "Timestamp field"),
        ("ml-20m", "ratings.csv", 1, "user,movie,rating,time", "header"),
        ("ml-20m", "ratings.csv", 6, "1,2,3.5", "expected 4 fields"),
        ("ml-20m", "ratings.csv", 3, "1,2,four,874965758", "rating field"),
    ],
)
def test_malformed_line_names_file_and_line(
    tmp_path, name, filename, line_number, bad_line, match, parser
):
    files = fx.release_files(name)
    lines = files[filename].decode().splitlines()
    lines[line_number - 1] = bad_line
    files[filename] = ("\n".join(lines) + "\n").encode()
    folder = fx.write_release(tmp_path, name, files)
    with pytest.raises(ValueError, match=match) as info:
        movielens.load_ratings(name, data_dir=tmp_path)
    message = str(info.value)
    assert os.path.join(folder, filename) in message
    assert f"line {line_number}" in message


def test_malformed_line_in_a_later_chunk_has_the_right_line_number(
    tmp_path, monkeypatch, numpy_parser
):
    files = fx.files_100k()
    lines = files["u.data"].decode().splitlines()
    lines[12] = "8\t1\t4\t87936200x"
    files["u.data"] = ("\n".join(lines) + "\n").encode()
    fx.write_release(tmp_path, "ml-100k", files)
    monkeypatch.setattr(movielens.parsing, "_CHUNK_BYTES", 50)
    with pytest.raises(ValueError, match="Malformed line 13 in .*u.data"):
        movielens.load_ratings("ml-100k", data_dir=tmp_path)


@pytest.mark.parametrize(
    "name, filename, line_number, bad_line",
    [
        ("ml-100k", "u.item", 2, "2|GoldenEye (1995)|01-Jan-1995||x|0|1"),
        ("ml-100k", "u.item", 3, "x|Title|01-Jan-1995||x" + "|0" * 19),
        ("ml-1m", "movies.dat", 4, "7::Title without genres"),
        ("ml-20m", "movies.csv", 3, "2,Unquoted, title,Action"),
    ],
)
def test_malformed_movie_line_names_file_and_line(
    tmp_path, name, filename, line_number, bad_line
):
    files = fx.release_files(name)
    encoding = "latin-1" if name != "ml-20m" else "utf-8"
    lines = files[filename].decode(encoding).splitlines()
    lines[line_number - 1] = bad_line
    files[filename] = ("\n".join(lines) + "\n").encode(encoding)
    folder = fx.write_release(tmp_path, name, files)
    with pytest.raises(ValueError, match=f"line {line_number} in ") as info:
        movielens.load_ratings(name, data_dir=tmp_path)
    assert os.path.join(folder, filename) in str(info.value)


def test_pyarrow_parses_well_formed_files_without_the_numpy_parser(
    tmp_path, monkeypatch
):
    pytest.importorskip("pyarrow")

    def fail(*args, **kwargs):
        raise AssertionError("parsed with NumPy")

    monkeypatch.setattr(movielens.parsing, "_parse_table_numpy", fail)
    for name in ("ml-100k", "ml-1m", "ml-10m", "ml-20m"):
        fx.write_release(tmp_path / name, name)
        ratings = movielens.load_ratings(name, data_dir=tmp_path / name)
        check_matches_fixture(ratings, name)


# --- data_dir ---------------------------------------------------------------


@pytest.mark.parametrize(
    "layout", ["release_folder", "parent", "zip_file", "folder_with_zip"]
)
def test_data_dir_layouts(tmp_path, cache, layout):
    name = "ml-10m"
    if layout in ("release_folder", "parent"):
        folder = fx.write_release(tmp_path, name)
        data_dir = folder if layout == "release_folder" else tmp_path
    else:
        archive = tmp_path / f"{name}.zip"
        archive.write_bytes(fx.make_zip(name))
        data_dir = archive if layout == "zip_file" else tmp_path
    ratings = movielens.load_ratings(name, data_dir=data_dir, download=False)
    check_matches_fixture(ratings, name)
    assert not cache.exists() or not any(cache.iterdir())


def test_official_split_reads_folds_from_a_zip(tmp_path):
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(fx.make_zip("ml-100k"))
    ratings = movielens.load_ratings("ml-100k", data_dir=archive)
    assert ratings.path == str(archive)
    train, test = ratings.official_split("u2")
    base, expected_test = fx.official_folds()["u2"]
    assert rows_of(train) == sorted(base)
    assert rows_of(test) == sorted(expected_test)


def test_data_dir_without_the_release_explains_what_was_expected(tmp_path):
    fx.write_release(tmp_path, "ml-1m")
    with pytest.raises(FileNotFoundError, match="data_dir.*ratings.csv"):
        movielens.load_ratings("ml-20m", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        movielens.load_ratings("ml-20m", data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="data_dir"):
        movielens.load_ratings("ml-20m", data_dir=3)


def test_data_dir_zip_that_is_not_a_zip_is_rejected(tmp_path):
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        movielens.load_ratings("ml-100k", data_dir=archive)
    assert archive.exists()


# --- Download and cache -----------------------------------------------------


def test_downloads_once_and_reuses_the_cache(
    cache, server, monkeypatch, capsys
):
    serve(monkeypatch, server, "ml-100k", fx.make_zip("ml-100k"))
    first = movielens.load_ratings("ml-100k")
    output = capsys.readouterr().out
    assert "Downloading data from " + server.url("ml-100k.zip") in output
    check_matches_fixture(first, "ml-100k")
    assert (cache / "ml-100k.zip").is_file()
    assert (cache / "ml-100k.npz").is_file()
    folder = cache / "ml-100k_extracted" / "ml-100k"
    assert first.path == str(folder)
    assert (folder / "u1.base").is_file()

    second = movielens.load_ratings("ml-100k", download=False)
    assert server.hits["ml-100k.zip"] == 1
    assert "Downloading" not in capsys.readouterr().out
    check_matches_fixture(second, "ml-100k")
    assert [p.name for p in cache.iterdir() if ".part" in p.name] == []


def test_reads_the_parsed_arrays_from_the_cache(cache, server, monkeypatch):
    serve(monkeypatch, server, "ml-20m", fx.make_zip("ml-20m"))
    movielens.load_ratings("ml-20m")

    def fail(*args, **kwargs):
        raise AssertionError("parsed again")

    with monkeypatch.context() as patch:
        patch.setattr(movielens.loading, "_parse_release", fail)
        check_matches_fixture(movielens.load_ratings("ml-20m"), "ml-20m")


def test_parsed_cache_is_rebuilt_when_stale_or_damaged(
    cache, server, monkeypatch
):
    serve(monkeypatch, server, "ml-1m", fx.make_zip("ml-1m"))
    movielens.load_ratings("ml-1m")
    (cache / "ml-1m.npz").write_bytes(b"damaged")
    check_matches_fixture(movielens.load_ratings("ml-1m"), "ml-1m")
    assert (cache / "ml-1m.npz").read_bytes() != b"damaged"

    monkeypatch.setitem(
        movielens.RELEASES,
        "ml-1m",
        {**movielens.RELEASES["ml-1m"], "encoding": "utf-8"},
    )
    reloaded = movielens.load_ratings("ml-1m")  # Registry change: reparse.
    assert "Caf\ufffd au Lait (1993)" in list(reloaded.titles)


def test_checksum_mismatch_raises_and_keeps_no_file(cache, server, monkeypatch):
    data = fx.make_zip("ml-100k")
    serve(monkeypatch, server, "ml-100k", data, file_hash="md5:" + "0" * 32)
    with pytest.raises(ValueError, match="checksum") as info:
        movielens.load_ratings("ml-100k")
    assert "0" * 32 in str(info.value)
    assert server.hits["ml-100k.zip"] == 1
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k.lock"]


def test_cached_archive_with_wrong_checksum_is_replaced(
    cache, server, monkeypatch
):
    data = fx.make_zip("ml-100k")
    serve(monkeypatch, server, "ml-100k", data)
    cache.mkdir(parents=True)
    (cache / "ml-100k.zip").write_bytes(fx.make_zip("ml-1m"))
    with pytest.raises(ValueError, match="checksum.*removed"):
        movielens.load_ratings("ml-100k", download=False)
    assert not (cache / "ml-100k.zip").exists()
    (cache / "ml-100k.zip").write_bytes(fx.make_zip("ml-1m"))
    check_matches_fixture(movielens.load_ratings("ml-100k"), "ml-100k")
    assert server.hits["ml-100k.zip"] == 1
    assert (cache / "ml-100k.zip").read_bytes() == data


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "short_transfer"])
def test_broken_download_is_retried_once_then_raises(
    cache, server, monkeypatch, damage
):
    data = fx.make_zip("ml-latest-small")
    broken = {
        "truncated": data[: len(data) // 2],
        "corrupt": fx.corrupt(data),
        "short_transfer": (data[:100], len(data)),
    }[damage]
    serve(monkeypatch, server, "ml-latest-small", broken, file_hash=None)
    with pytest.raises(ValueError, match="corrupt.*after 2 downloads"):
        movielens.load_ratings("ml-latest-small")
    assert server.hits["ml-latest-small.zip"] == 2
    assert sorted(p.name for p in cache.iterdir()) == ["ml-latest-small.lock"]


def test_broken_download_recovers_on_the_second_try(cache, server, monkeypatch):
    data = fx.make_zip("ml-latest")
    serve(
        monkeypatch, server, "ml-latest", fx.corrupt(data), data, file_hash=None
    )
    check_matches_fixture(movielens.load_ratings("ml-latest"), "ml-latest")
    assert server.hits["ml-latest.zip"] == 2


def test_corrupt_cached_archive_is_downloaded_again(cache, server, monkeypatch):
    data = fx.make_zip("ml-latest")
    serve(monkeypatch, server, "ml-latest", data, file_hash=None)
    cache.mkdir(parents=True)
    (cache / "ml-latest.zip").write_bytes(data[:-30])
    check_matches_fixture(movielens.load_ratings("ml-latest"), "ml-latest")
    assert server.hits["ml-latest.zip"] == 1


def test_incomplete_extraction_is_redone(cache, server, monkeypatch):
    serve(monkeypatch, server, "ml-100k", fx.make_zip("ml-100k"))
    (cache / "ml-100k_extracted" / "ml-100k").mkdir(parents=True)
    (cache / "ml-100k_extracted" / "ml-100k" / "u.item").write_bytes(b"")
    check_matches_fixture(movielens.load_ratings("ml-100k"), "ml-100k")


@pytest.mark.parametrize(
    "entry, is_symlink",
    [
        ("../escaped.txt", False),
        ("ml-100k/../../escaped.txt", False),
        ("/tmp/escaped.txt", False),
        ("ml-100k/link", True),
    ],
)
def test_rejects_archive_entries_outside_the_folder(
    tmp_path, cache, server, monkeypatch, entry, is_symlink
):
    data = fx.make_zip("ml-100k", extra_entries=[(entry, b"x", is_symlink)])
    serve(monkeypatch, server, "ml-100k", data)
    with pytest.raises(ValueError, match="Refusing") as info:
        movielens.load_ratings("ml-100k")
    assert repr(entry) in str(info.value)
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k.lock"]
    assert not (cache.parent / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()

    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(data)
    with pytest.raises(ValueError, match="Refusing"):
        movielens.load_ratings("ml-100k", data_dir=archive)


def test_archive_without_the_release_is_rejected(cache, server, monkeypatch):
    serve(monkeypatch, server, "ml-20m", fx.make_zip("ml-1m"))
    with pytest.raises(ValueError, match="ml-20m/ratings.csv"):
        movielens.load_ratings("ml-20m")


def test_offline_without_cache_says_how_to_pass_data_dir(cache):
    with pytest.raises(FileNotFoundError, match="data_dir=") as info:
        movielens.load_ratings("ml-25m", download=False)
    assert "ml-25m.zip" in str(info.value)


def test_failed_download_says_how_to_pass_data_dir(cache, server, monkeypatch):
    with socket.socket() as probe:  # A port on which nothing listens.
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setitem(
        movielens.RELEASES,
        "ml-100k",
        {
            **movielens.RELEASES["ml-100k"],
            "url": f"http://127.0.0.1:{port}/ml-100k.zip",
        },
    )
    with pytest.raises(OSError, match="Could not download.*data_dir="):
        movielens.load_ratings("ml-100k")
    serve(monkeypatch, server, "ml-1m", fx.make_zip("ml-1m"))
    server.serve("ml-1m.zip")  # Nothing there: HTTP 404.
    with pytest.raises(OSError, match="404.*data_dir="):
        movielens.load_ratings("ml-1m")
    assert sorted(p.name for p in cache.iterdir()) == [
        "ml-100k.lock",
        "ml-1m.lock",
    ]


_CHILD = """
import json, os, sys, time
from keras_catembed.datasets import movielens
name, url, file_hash, ready, go = sys.argv[1:]
movielens.RELEASES[name] = {
    **movielens.RELEASES[name], "url": url, "file_hash": file_hash
}
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
ratings = movielens.load_ratings(name)
print(json.dumps([ratings.user_ids[ratings.user_id].tolist(),
                  ratings.rating.tolist(), list(ratings.titles)]))
"""


def test_two_processes_loading_at_once_share_one_download(
    tmp_path, cache, server
):
    data = fx.make_zip("ml-100k")
    server.serve("ml-100k.zip", data)
    server.delay = 0.4
    # The loader is the same on every backend; numpy's imports fastest.
    env = {
        **os.environ,
        "KERAS_HOME": str(cache.parent),
        "KERAS_BACKEND": "numpy",
    }
    root = Path(__file__).resolve().parents[1]
    children = []
    for i in range(2):
        args = [
            "ml-100k",
            server.url("ml-100k.zip"),
            fx.sha256(data),
            str(tmp_path / f"ready{i}"),
            str(tmp_path / "go"),
        ]
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, *args],
                env=env,
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert all(child.poll() is None for child in children), [
            child.communicate() for child in children
        ]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (tmp_path / "go").touch()
    results = [child.communicate(timeout=120) for child in children]
    for child, (_, stderr) in zip(children, results, strict=True):
        assert child.returncode == 0, stderr
    loaded = [json.loads(stdout.splitlines()[-1]) for stdout, _ in results]
    assert loaded[0] == loaded[1]
    assert sorted(loaded[0][0]) == sorted(row[0] for row in fx.RATINGS)
    assert server.hits["ml-100k.zip"] == 1
    assert not [p for p in cache.iterdir() if ".part" in p.name]
    check_matches_fixture(movielens.load_ratings("ml-100k"), "ml-100k")


# --- Splits -----------------------------------------------------------------


@pytest.fixture
def ratings_100k(tmp_path):
    fx.write_release(tmp_path, "ml-100k")
    return movielens.load_ratings("ml-100k", data_dir=tmp_path)


def test_official_folds_partition_the_ratings(ratings_100k):
    all_rows = rows_of(ratings_100k)
    tests = []
    for fold in movielens.OFFICIAL_FOLDS:
        train, test = ratings_100k.official_split(fold)
        base, expected_test = fx.official_folds()[fold]
        assert rows_of(train) == sorted(base)
        assert rows_of(test) == sorted(expected_test)
        assert sorted(rows_of(train) + rows_of(test)) == all_rows
        for part in (train, test):
            assert part.user_ids is ratings_100k.user_ids
            assert part.movie_ids is ratings_100k.movie_ids
            assert part.titles is ratings_100k.titles
            assert part.num_users == ratings_100k.num_users
            assert part.num_movies == ratings_100k.num_movies
        if fold.startswith("u") and fold[1].isdigit():
            tests += rows_of(test)
    assert sorted(tests) == all_rows


def test_official_split_rejects_other_releases_and_folds(
    tmp_path, ratings_100k
):
    with pytest.raises(ValueError, match="fold.*u1, u2.*'u6'"):
        ratings_100k.official_split("u6")
    fx.write_release(tmp_path, "ml-1m")
    ml_1m = movielens.load_ratings("ml-1m", data_dir=tmp_path)
    with pytest.raises(ValueError, match="only available for ml-100k.*ml-1m"):
        ml_1m.official_split("u1")
    with pytest.raises(ValueError, match="path=None"):
        Ratings.from_arrays([1], [2], [3.0], name="ml-100k").official_split(
            "u1"
        )


def test_official_split_rejects_unknown_ids_in_fold_files(tmp_path):
    files = fx.files_100k()
    files["u1.test"] += b"77\t1\t3\t874965758\n"
    fx.write_release(tmp_path, "ml-100k", files)
    ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path)
    with pytest.raises(
        ValueError, match="Line 5 of .*u1.test names the user id 77"
    ):
        ratings.official_split("u1")


@pytest.mark.parametrize("name", ["ml-100k", "ml-1m"])
def test_user_features_code_age_group_gender_and_occupation(tmp_path, name):
    fx.write_release(tmp_path, name)
    ratings = movielens.load_ratings(name, data_dir=tmp_path)
    features = ratings.user_features()
    assert list(features) == list(movielens.USER_FEATURES)
    for index, user in enumerate(ratings.user_ids):
        codes = tuple(int(features[f][index]) for f in features)
        assert codes == fx.USERS[int(user)][1 if name == "ml-100k" else 2]
    for name_, size in movielens.USER_FEATURES.items():
        assert features[name_].dtype == np.int32
        assert features[name_].shape == (ratings.num_users,)
        assert features[name_].max() < size
    # Splits share the users, so their features are the same.
    train, _ = ratings.random_split(0.5, seed=0)
    np.testing.assert_array_equal(train.user_features()["age"], features["age"])
    assert movielens.AGE_GROUPS[features["age"][0]] == "18-24"
    occupations = (
        movielens.OCCUPATIONS_100K
        if name == "ml-100k"
        else movielens.OCCUPATIONS_1M
    )
    assert occupations[features["occupation"][0]] in (
        "technician",
        "technician/engineer",
    )


def test_user_features_errors_name_the_problem(tmp_path):
    fx.write_release(tmp_path / "10m", "ml-10m")
    ml_10m = movielens.load_ratings("ml-10m", data_dir=tmp_path / "10m")
    with pytest.raises(ValueError, match="describe no users.*'ml-10m'"):
        ml_10m.user_features()
    with pytest.raises(ValueError, match="path=None"):
        Ratings.from_arrays([1], [2], [3.0], name="ml-100k").user_features()
    files = fx.files_100k()
    files["u.user"] = files["u.user"].replace(b"3|17|F|", b"3|17|X|")
    fx.write_release(tmp_path / "bad", "ml-100k", files)
    ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path / "bad")
    with pytest.raises(
        ValueError, match=r"Line 2 of .*u.user is malformed: '3\|17\|X\|"
    ):
        ratings.user_features()
    files = fx.files_1m()
    files["users.dat"] = b"".join(
        line + b"\n"
        for line in files["users.dat"].splitlines()
        if not line.startswith(b"20::")
    )
    fx.write_release(tmp_path / "short", "ml-1m", files)
    ratings = movielens.load_ratings("ml-1m", data_dir=tmp_path / "short")
    with pytest.raises(ValueError, match="does not describe the user id 20"):
        ratings.user_features()
    files = fx.files_100k()
    del files["u.user"]
    fx.write_release(tmp_path / "none", "ml-100k", files)
    ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path / "none")
    with pytest.raises(ValueError, match="needs .*u.user, which does not"):
        ratings.user_features()


def test_temporal_split_holds_out_each_users_latest(ratings_100k):
    train, test = ratings_100k.temporal_split()
    assert len(train) + len(test) == len(ratings_100k)
    assert sorted(rows_of(train) + rows_of(test)) == rows_of(ratings_100k)
    expected = {}
    for index, row in enumerate(fx.RATINGS):
        best = expected.get(row[0])
        if best is None or (row[3], index) > (best[3], best[4]):
            expected[row[0]] = (*row, index)
    assert rows_of(test) == sorted(row[:4] for row in expected.values())
    assert (3, 13, 1.0, 889237455) in rows_of(test)  # Ties: the later row.
    for user in set(test.user_id.tolist()):
        latest_train = train.timestamp[train.user_id == user].max()
        assert latest_train <= test.timestamp[test.user_id == user].min()


def test_temporal_split_keeps_one_rating_per_user_in_train(ratings_100k):
    train, test = ratings_100k.temporal_split(num_last=3)
    assert set(train.user_id.tolist()) == set(range(ratings_100k.num_users))
    counts = np.bincount(test.user_id, minlength=ratings_100k.num_users)
    assert counts.tolist() == [3, 3, 2, 3, 1]
    with pytest.raises(ValueError, match="num_last"):
        ratings_100k.temporal_split(num_last=0)


DAY = 86_400


def test_user_day_indexes_each_users_day_and_splits_share_it():
    # User 5 rates on two days (the first twice, a second apart at the
    # day's end), user 9 on one of the same days; UTC days.
    ratings = movielens.Ratings.from_arrays(
        [5, 5, 5, 9, 5],
        [1, 2, 3, 1, 4],
        [4, 3, 5, 2, 1],
        timestamps=[
            10 * DAY - 1,
            10 * DAY - 2,
            10 * DAY,
            10 * DAY + 5,
            12 * DAY,
        ],
    )
    np.testing.assert_array_equal(ratings.user_day(), [0, 0, 1, 3, 2])
    assert ratings.user_day().dtype == np.int32
    assert ratings.num_user_days == 4
    x = movielens.inputs(ratings, ["user_id", "movie_id", "user_day"])
    assert list(x) == ["user_id", "movie_id", "user_day"]
    np.testing.assert_array_equal(x["user_day"], ratings.user_day())
    # Splits keep the data set's map: each row keeps its index, and a
    # day only one part holds still counts.
    train, test = ratings.random_split(0.4, seed=1)
    assert train.user_days is ratings.user_days
    assert train.num_user_days == test.num_user_days == 4
    full = dict(
        zip(rows_of_with_stamps(ratings), ratings.user_day(), strict=True)
    )
    for part in (train, test):
        for row, index in zip(
            rows_of_with_stamps(part), part.user_day(), strict=True
        ):
            assert full[row] == index


def rows_of_with_stamps(ratings):
    return list(
        zip(
            ratings.user_id.tolist(),
            ratings.movie_id.tolist(),
            ratings.timestamp.tolist(),
            strict=True,
        )
    )


def test_official_folds_share_the_user_day_map(ratings_100k):
    train, test = ratings_100k.official_split("u1")
    assert train.user_days is ratings_100k.user_days
    keys = {
        (u, t // DAY): i
        for u, t, i in zip(
            ratings_100k.user_id.tolist(),
            ratings_100k.timestamp.tolist(),
            ratings_100k.user_day().tolist(),
            strict=True,
        )
    }
    assert len(set(keys.values())) == ratings_100k.num_user_days
    for part in (train, test):
        got = [
            keys[(u, t // DAY)]
            for u, t in zip(
                part.user_id.tolist(), part.timestamp.tolist(), strict=True
            )
        ]
        np.testing.assert_array_equal(part.user_day(), got)


def test_user_day_errors_name_the_problem():
    no_stamps = movielens.Ratings.from_arrays([1], [2], [3.0], name="ml-1m")
    assert no_stamps.user_days is None and no_stamps.num_user_days == 0
    with pytest.raises(
        ValueError, match="'user_day' column needs timestamps.*'ml-1m'"
    ):
        no_stamps.user_day()
    with pytest.raises(ValueError, match="'user_day' column needs timestamps"):
        movielens.inputs(no_stamps, ["user_id", "movie_id", "user_day"])
    # Ratings paired with another data set's map (no public path does
    # this; `dataclasses.replace` can).
    ratings = movielens.Ratings.from_arrays(
        [1, 2], [2, 3], [3.0, 4.0], [0, DAY]
    )
    other = movielens.Ratings.from_arrays([1], [2], [3.0], [0])
    mixed = dataclasses.replace(ratings, _day_map=other._day_map)
    with pytest.raises(ValueError, match="row 1 .*user index 1.*does not hold"):
        mixed.user_day()


def test_the_user_day_map_is_made_on_first_use():
    ratings = movielens.Ratings.from_arrays(
        [3, 1, 3], [1, 1, 2], [4, 3, 5], [5 * DAY, 2 * DAY, 5 * DAY + 9]
    )
    # Loading does not sort the keys; the first split's question does, for
    # the whole data set.
    assert ratings._day_map._keys is None
    train, test = ratings.random_split(0.4, seed=0)
    assert test.num_user_days == 2
    assert ratings._day_map._keys is not None
    np.testing.assert_array_equal(ratings.user_day(), [1, 0, 1])


def test_temporal_split_without_timestamps_names_the_release():
    ratings = Ratings.from_arrays([1, 2], [3, 4], [5, 1], name="ml-1m-csv")
    with pytest.raises(ValueError, match="timestamps.*'ml-1m-csv'"):
        ratings.temporal_split()


def test_random_split_is_seeded_and_disjoint(ratings_100k):
    train, test = ratings_100k.random_split(0.3, seed=7)
    assert len(test) == round(0.3 * len(ratings_100k))
    assert sorted(rows_of(train) + rows_of(test)) == rows_of(ratings_100k)
    again_train, again_test = ratings_100k.random_split(0.3, seed=7)
    assert rows_of(again_test) == rows_of(test)
    np.testing.assert_array_equal(again_train.user_id, train.user_id)
    other = {
        tuple(rows_of(ratings_100k.random_split(0.3, seed=s)[1]))
        for s in range(5)
    }
    assert len(other) > 1
    assert train.user_ids is ratings_100k.user_ids
    for bad in (0, 1, 1.5, -0.1, True, "0.2"):
        with pytest.raises(ValueError, match="test_fraction"):
            ratings_100k.random_split(bad)


def test_subset_by_mask_and_positions(ratings_100k):
    mask = ratings_100k.rating >= 4
    high = ratings_100k.subset(mask)
    assert np.all(high.rating >= 4)
    assert len(high) == int(mask.sum())
    picked = ratings_100k.subset([3, 0])
    assert picked.rating.tolist() == [
        ratings_100k.rating[3],
        ratings_100k.rating[0],
    ]
    assert picked.timestamp.tolist() == [
        ratings_100k.timestamp[3],
        ratings_100k.timestamp[0],
    ]
    with pytest.raises(ValueError, match="indices.*0..16. Received: 17"):
        ratings_100k.subset([17])
    with pytest.raises(ValueError, match="mask must have shape"):
        ratings_100k.subset(mask[:3])
    with pytest.raises(ValueError, match="indices"):
        ratings_100k.subset([0.5])


# --- Ratings and from_arrays ------------------------------------------------


def test_from_arrays_renumbers_ids_and_maps_metadata():
    ratings = Ratings.from_arrays(
        np.array([10**12, 5, 5]),
        [30.0, 10.0, 30.0],
        [4.5, 3, 2],
        titles={30: "Thirty", 99: "Unrated"},
        genres={30: "Drama|Comedy", 10: ["Action"]},
    )
    assert ratings.user_ids.tolist() == [5, 10**12]
    assert ratings.user_id.tolist() == [1, 0, 0]
    assert ratings.movie_ids.tolist() == [10, 30]
    assert ratings.movie_id.tolist() == [1, 0, 1]
    assert ratings.titles.tolist() == ["movie 10", "Thirty"]
    assert ratings.genres.tolist() == [("Action",), ("Drama", "Comedy")]
    assert ratings.timestamp is None
    assert ratings.rating.dtype == np.float32
    assert ratings.name == "custom" and ratings.path is None
    assert len(ratings) == 3
    assert repr(ratings) == (
        "Ratings(name='custom', num_ratings=3, num_users=2, num_movies=2, "
        "timestamps=False)"
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"movie_ids": [1]}, "`movie_ids` must have one entry per rating"),
        ({"user_ids": [1.5, 2]}, "`user_ids` must hold whole numbers"),
        ({"user_ids": ["a", "b"]}, "`user_ids` must hold integers"),
        ({"ratings": [1, np.nan]}, "`ratings` must hold finite numbers"),
        ({"ratings": [[1, 2]]}, "`ratings` must be 1-D"),
        ({"timestamps": [1, 2, 3]}, "`timestamps` must have one entry"),
        ({"titles": ["a"]}, "`titles` must be a mapping"),
    ],
)
def test_from_arrays_rejects_bad_arguments(kwargs, match):
    arguments = {"user_ids": [1, 2], "movie_ids": [3, 4], "ratings": [5, 4]}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Ratings.from_arrays(**arguments)


def test_ratings_checks_its_fields():
    fields = dict(
        user_id=[0, 1],
        movie_id=[0, 0],
        rating=[1.0, 2.0],
        timestamp=None,
        user_ids=[7, 8],
        movie_ids=[3],
        titles=["t"],
        genres=[("g",)],
    )
    assert Ratings(**fields).num_users == 2
    with pytest.raises(ValueError, match="`user_id` must hold indices in 0..1"):
        Ratings(**{**fields, "user_id": [0, 2]})
    with pytest.raises(ValueError, match="`titles` must have one entry"):
        Ratings(**{**fields, "titles": ["a", "b"]})
    with pytest.raises(ValueError, match="`rating` must have one entry"):
        Ratings(**{**fields, "rating": [1.0]})
    with pytest.raises(AttributeError):
        Ratings(**fields).name = "other"


def _documented_args(function):
    section = inspect.getdoc(function).split("Args:\n", 1)[1]
    section = re.split(r"\n\S", section, maxsplit=1)[0]
    return re.findall(r"^    (\w+):", section, flags=re.MULTILINE)


@pytest.mark.parametrize(
    "function",
    [
        movielens.load_ratings,
        movielens.load_official_split,
        movielens.load_user_features,
        Ratings,
        Ratings.from_arrays,
        Ratings.subset,
        Ratings.random_split,
        Ratings.temporal_split,
        Ratings.official_split,
    ],
)
def test_docstring_args_match_the_signature(function):
    parameters = [
        p
        for p in inspect.signature(function).parameters
        # Private fields (the shared `_day_map`) are not arguments.
        if p not in ("self", "cls") and not p.startswith("_")
    ]
    assert _documented_args(function) == parameters


# --- What the loader serves is checked --------------------------------------


def _replace_line(files, filename, line_number, new_line):
    lines = files[filename].decode("latin-1").splitlines()
    lines[line_number - 1] = new_line
    files[filename] = ("\n".join(lines) + "\n").encode("latin-1")
    return files


@pytest.mark.parametrize(
    "name, filename, line_number, bad_line, shown",
    [
        ("ml-100k", "u.data", 3, "1\t5\t6\t878542960", "6"),
        ("ml-100k", "u.data", 7, "3\t1\t0\t889236000", "0"),
        ("ml-1m", "ratings.dat", 2, "1::2::3.5::876893171", "3.5"),
        ("ml-10m", "ratings.dat", 4, "1::7::5.5::875071561", "5.5"),
        ("ml-10m", "ratings.dat", 5, "3::2::0::889237455", "0"),
        ("ml-20m", "ratings.csv", 4, "1,5,4.25,878542960", "4.25"),
        ("ml-latest-small", "ratings.csv", 2, "1,1,10.0,874965758", "10"),
    ],
)
def test_rating_outside_the_release_scale_names_file_line_and_value(
    tmp_path, name, filename, line_number, bad_line, shown, parser
):
    files = _replace_line(
        fx.release_files(name), filename, line_number, bad_line
    )
    folder = fx.write_release(tmp_path, name, files)
    with pytest.raises(ValueError, match="not one this release publishes") as e:
        movielens.load_ratings(name, data_dir=tmp_path)
    message = str(e.value)
    assert f"{os.path.join(folder, filename)}, line {line_number}:" in message
    assert f"the rating {shown} " in message
    expected = "whole stars" if name in ("ml-100k", "ml-1m") else "0.5 to 5"
    assert expected in message


def test_rating_outside_the_scale_in_a_fold_file_is_refused(tmp_path):
    files = fx.files_100k()
    files["u2.test"] = files["u2.test"].replace(
        b"\t3\t876893171", b"\t7\t876893171"
    )
    fx.write_release(tmp_path, "ml-100k", files)
    ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"u2.test, line \d+: the rating 7"):
        ratings.official_split("u2")
    train, test = ratings.official_split("u1")
    assert len(train) + len(test) == len(ratings)


@pytest.mark.parametrize(
    "name, filename, repeat, first_line",
    [
        ("ml-100k", "u.data", "1\t2\t4\t899999999", 2),
        ("ml-20m", "ratings.csv", "1,2,4.0,899999999", 3),
    ],
)
def test_repeated_user_movie_pair_is_refused_naming_both_lines(
    tmp_path, name, filename, repeat, first_line
):
    files = fx.release_files(name)
    files[filename] += (repeat + "\n").encode()
    files[filename] += files[filename].splitlines(keepends=True)[-2]
    folder = fx.write_release(tmp_path, name, files)
    last_line = len(files[filename].splitlines())
    with pytest.raises(ValueError, match="twice") as info:
        movielens.load_ratings(name, data_dir=tmp_path)
    message = str(info.value)
    assert os.path.join(folder, filename) in message
    assert "(user 1, movie 2)" in message
    assert f"on line {first_line} and on line {last_line - 1}" in message
    assert "(2 repeated rows in the file)" in message


def test_official_data_has_no_repeated_pairs_and_from_arrays_keeps_them():
    ratings = Ratings.from_arrays([1, 1], [2, 2], [3, 4])
    assert len(ratings) == 2  # Building from arrays is the way to keep them.


@pytest.mark.parametrize(
    "name, filename",
    [
        ("ml-100k", "u.item"),
        ("ml-100k", "u.data"),
        ("ml-1m", "movies.dat"),
        ("ml-1m", "ratings.dat"),
        ("ml-10m", "movies.dat"),
        ("ml-20m", "movies.csv"),
        ("ml-20m", "ratings.csv"),
    ],
)
def test_utf8_byte_order_mark_is_dropped(tmp_path, name, filename, parser):
    files = fx.release_files(name)
    files[filename] = b"\xef\xbb\xbf" + files[filename]
    fx.write_release(tmp_path, name, files)
    ratings = movielens.load_ratings(name, data_dir=tmp_path)
    check_matches_fixture(ratings, name)
    assert ratings.titles[0] == "Toy Story (1995)"


def test_byte_order_mark_in_the_users_file_is_dropped(tmp_path):
    files = fx.files_100k()
    files["u.user"] = b"\xef\xbb\xbf" + files["u.user"]
    fx.write_release(tmp_path, "ml-100k", files)
    ratings = movielens.load_ratings("ml-100k", data_dir=tmp_path)
    features = ratings.user_features()
    assert int(features["occupation"][0]) == fx.USERS[1][1][2]


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-20])


def _same_size_edit(path):
    data = path.read_bytes()
    path.write_bytes(data.replace(b"\t5\t", b"\t1\t", 1))
    assert len(path.read_bytes()) == len(data)


@pytest.mark.parametrize(
    "filename, damage",
    [
        ("u.data", _truncate),
        ("u.data", _same_size_edit),
        ("u.item", lambda path: path.unlink()),
        ("u1.test", lambda path: path.write_bytes(b"")),
    ],
)
def test_damaged_extracted_files_are_extracted_again(
    cache, server, monkeypatch, capsys, filename, damage
):
    serve(monkeypatch, server, "ml-100k", fx.make_zip("ml-100k"))
    movielens.load_ratings("ml-100k")
    folder = cache / "ml-100k_extracted" / "ml-100k"
    manifest = json.loads(
        (cache / "ml-100k_extracted" / ".manifest.json").read_text()
    )
    size, digest = manifest["files"][f"ml-100k/{filename}"]
    assert size == len(fx.files_100k()[filename])
    assert digest == fx.sha256(fx.files_100k()[filename])[len("sha256:") :]
    damage(folder / filename)
    capsys.readouterr()

    ratings = movielens.load_ratings("ml-100k", download=False)
    assert "extracting it again" in capsys.readouterr().out
    check_matches_fixture(ratings, "ml-100k")
    assert (folder / filename).read_bytes() == fx.files_100k()[filename]
    train, test = ratings.official_split("u1")
    assert len(train) + len(test) == len(ratings)
    assert server.hits["ml-100k.zip"] == 1  # From the cached archive.


def test_damaged_extraction_without_the_archive_is_not_served(
    cache, server, monkeypatch
):
    serve(monkeypatch, server, "ml-100k", fx.make_zip("ml-100k"))
    movielens.load_ratings("ml-100k")
    (cache / "ml-100k.zip").unlink()
    check_matches_fixture(
        movielens.load_ratings("ml-100k", download=False), "ml-100k"
    )
    _truncate(cache / "ml-100k_extracted" / "ml-100k" / "u.data")
    with pytest.raises(FileNotFoundError, match="download=False"):
        movielens.load_ratings("ml-100k", download=False)


def _zip_bomb(path, size):
    """An ml-100k archive with `size` zero bytes in one extra entry."""
    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for filename, data in fx.files_100k().items():
            archive.writestr(f"ml-100k/{filename}", data)
        with archive.open("ml-100k/padding.bin", "w", force_zip64=True) as f:
            for _ in range(size // len(block)):
                f.write(block)


def test_archive_expanding_beyond_the_limit_is_refused_early(
    tmp_path, cache, server, monkeypatch
):
    bomb = tmp_path / "bomb.zip"
    _zip_bomb(bomb, 65 << 20)  # Just over the 64 MiB limit of ml-100k.
    data = bomb.read_bytes()
    assert len(data) < 400_000
    serve(monkeypatch, server, "ml-100k", data)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="Refusing") as info:
            movielens.load_ratings("ml-100k")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "'ml-100k/padding.bin'" in str(info.value)
    assert f"{64 << 20} bytes allowed" in str(info.value)
    assert peak < 16 << 20
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k.lock"]
    with pytest.raises(ValueError, match="Refusing.*padding.bin"):
        movielens.load_ratings("ml-100k", data_dir=bomb)


def test_extraction_stops_an_entry_that_outgrows_its_room(tmp_path):
    # Declared sizes are checked first; while streaming, each entry is also
    # counted against what is left of the limit, block by block.
    bomb = tmp_path / "bomb.zip"
    _zip_bomb(bomb, 8 << 20)
    target = tmp_path / "padding.bin"
    with zipfile.ZipFile(bomb) as archive:
        info = archive.getinfo("ml-100k/padding.bin")
        with pytest.raises(ValueError, match="expands beyond the bytes"):
            movielens.extract._copy_entry(
                archive, info, str(target), 3 << 20, str(bomb)
            )
    assert target.stat().st_size <= 3 << 20


def test_extraction_limit_is_per_release(tmp_path, cache, server, monkeypatch):
    data = fx.make_zip("ml-100k")
    serve(monkeypatch, server, "ml-100k", data)
    monkeypatch.setitem(
        movielens.RELEASES["ml-100k"], "max_extracted_bytes", 1000
    )
    with pytest.raises(ValueError, match="more than the 1000 bytes allowed"):
        movielens.load_ratings("ml-100k")
    monkeypatch.setitem(
        movielens.RELEASES["ml-100k"], "max_extracted_bytes", 1 << 20
    )
    check_matches_fixture(movielens.load_ratings("ml-100k"), "ml-100k")


def test_download_that_drips_fails_after_the_deadline(
    cache, server, monkeypatch
):
    data = fx.make_zip("ml-100k")
    serve(monkeypatch, server, "ml-100k", data)
    server.drip = (2, 0.25)  # 8 bytes/s: the archive would take minutes.
    with pytest.raises(OSError, match="download_timeout=1 seconds") as info:
        movielens.load_ratings("ml-100k", download_timeout=1)
    assert "data_dir=" in str(info.value)
    assert f"of {len(data)} bytes" in str(info.value)
    assert server.sent["ml-100k.zip"] < len(data) // 4
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k.lock"]
    server.drip = None
    check_matches_fixture(movielens.load_ratings("ml-100k"), "ml-100k")


@pytest.mark.one_backend
def test_the_cli_names_its_own_download_timeout(
    cache, server, monkeypatch, capsys
):
    from keras_catembed import cli

    serve(monkeypatch, server, "ml-100k", fx.make_zip("ml-100k"))
    server.drip = (2, 0.25)
    status = cli.main(["train", "--download-timeout", "1", "--epochs", "1"])
    error = capsys.readouterr().err
    assert status == 2
    assert "did not finish within --download-timeout 1 seconds" in error
    assert "Pass a larger --download-timeout on a slow network" in error
    assert "download_timeout" not in error


@pytest.mark.parametrize("bad", [0, -1, True, "10", float("nan")])
def test_download_timeout_must_be_a_positive_number(cache, bad):
    with pytest.raises(ValueError, match="`download_timeout` must be"):
        movielens.load_ratings("ml-100k", download_timeout=bad)


def test_load_functions_match_the_methods(ratings_100k):
    train, test = movielens.load_official_split(ratings_100k, "u3")
    again_train, again_test = ratings_100k.official_split("u3")
    assert rows_of(train) == rows_of(again_train)
    assert rows_of(test) == rows_of(again_test)
    features = movielens.load_user_features(ratings_100k)
    for name, codes in ratings_100k.user_features().items():
        np.testing.assert_array_equal(features[name], codes)


# --- Real MovieLens data (skipped when absent) -------------------------------

real_100k = pytest.mark.skipif(
    not (REAL_DATA / "ml-100k" / "u.data").is_file(),
    reason=f"the real ml-100k is not in {REAL_DATA / 'ml-100k'}",
)
real_1m = pytest.mark.skipif(
    not (REAL_DATA / "ml-1m" / "ratings_no_timestamp.csv").is_file(),
    reason=f"the partial real ml-1m is not in {REAL_DATA / 'ml-1m'}",
)


@real_100k
def test_real_ml_100k():
    ratings = movielens.load_ratings("ml-100k", data_dir=REAL_DATA)
    assert len(ratings) == 100_000
    assert ratings.num_users == 943
    assert ratings.num_movies == 1682
    assert ratings.rating.mean() == pytest.approx(3.52986, abs=1e-5)
    assert ratings.titles[ratings.movie_ids.tolist().index(1)] == (
        "Toy Story (1995)"
    )
    assert ratings.genres[0] == ("Animation", "Children's", "Comedy")
    train, test = ratings.official_split("u1")
    assert (len(train), len(test)) == (80_000, 20_000)
    train, test = ratings.official_split("ua")
    assert np.all(np.bincount(test.user_id) == 10)
    train, test = ratings.temporal_split()
    assert len(test) == 943


@real_1m
def test_real_ml_1m_partial_copy(tmp_path):
    source = REAL_DATA / "ml-1m"
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").symlink_to(
        source / "ratings_users0001-2999_with_timestamps.dat"
    )
    (folder / "movies.dat").symlink_to(source / "movies.dat")
    ratings = movielens.load_ratings("ml-1m", data_dir=tmp_path)
    assert len(ratings) == 487_650
    assert ratings.user_ids.tolist() == list(range(1, 3000))
    titles = dict(zip(ratings.movie_ids.tolist(), ratings.titles, strict=True))
    assert titles[73] == "Misérables, Les (1995)"

    data = np.loadtxt(
        source / "ratings_no_timestamp.csv",
        delimiter=",",
        skiprows=1,
        dtype=np.int64,
    )
    full = Ratings.from_arrays(data[:, 0], data[:, 1], data[:, 2], name="ml-1m")
    assert (len(full), full.num_users, full.num_movies) == (
        1_000_209,
        6040,
        3706,
    )
    assert full.rating.mean() == pytest.approx(3.5816, abs=1e-4)
    with pytest.raises(ValueError, match="timestamps.*'ml-1m'"):
        full.temporal_split()
