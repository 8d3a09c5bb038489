"""The Keras cache: one lock per release, the extracted folder, the arrays.

Everything a load does in the cache happens under the release's lock
(`datasets/<name>.lock`, a `filelock.FileLock`), and every file is written
under a temporary name and renamed into place, so processes that load at
the same time share one download and never see a half-written file.
"""

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from typing import TypedDict
from typing import cast

import filelock
import numpy as np
from numpy.typing import NDArray

from keras_catembed.datasets.movielens.download import _download
from keras_catembed.datasets.movielens.download import _hash_matches
from keras_catembed.datasets.movielens.download import _offline_message
from keras_catembed.datasets.movielens.extract import _CorruptArchive
from keras_catembed.datasets.movielens.extract import _extract
from keras_catembed.datasets.movielens.extract import _remove_file
from keras_catembed.datasets.movielens.extract import _remove_tree
from keras_catembed.datasets.movielens.extract import _verify_manifest
from keras_catembed.datasets.movielens.releases import _FORMATS
from keras_catembed.datasets.movielens.releases import Release
from keras_catembed.datasets.movielens.sources import _FolderSource


class _Parsed(TypedDict):
    """The arrays of a parsed release (strings packed), as cached."""

    user_id: NDArray[np.int32]
    movie_id: NDArray[np.int32]
    rating: NDArray[np.float32]
    timestamp: NDArray[np.int64] | None
    user_ids: NDArray[np.int64]
    movie_ids: NDArray[np.int64]
    titles: NDArray[np.uint8]
    genres: NDArray[np.uint8]


# 2: ratings checked against the release's scale, duplicates refused.
_CACHE_VERSION = 2


def _cache_dir() -> str:
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    roots = [os.path.expanduser(home)]
    roots.append(os.path.join(tempfile.gettempdir(), ".keras"))
    for root in roots:
        path = os.path.join(root, "datasets")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise OSError(
        f"No writable Keras cache folder: tried {' and '.join(roots)}. Set "
        "the KERAS_HOME environment variable to a writable folder, or pass "
        "`data_dir` to read a copy of the release you already have."
    )


def _lock(path: str) -> filelock.FileLock:
    """An exclusive inter-process lock on `path` (a context manager)."""
    return filelock.FileLock(path)


def _extracted_release(
    name: str, release: Release, cache_dir: str, download: bool, timeout: float
) -> str:
    """Returns the folder of the extracted release, fetching it if needed.

    An extracted folder is used only when it matches the manifest written
    at extraction; otherwise it is extracted again from the archive (itself
    checked against the published checksum first).
    """
    ratings_name = _FORMATS[release["format"]]["ratings"]
    archive = os.path.join(cache_dir, f"{name}.zip")
    extracted = os.path.join(cache_dir, f"{name}_extracted")
    folder = os.path.join(extracted, release["folder"])
    if os.path.isdir(extracted):
        problem = _verify_manifest(extracted)
        if problem is None and os.path.isfile(
            os.path.join(folder, ratings_name)
        ):
            return folder
        print(
            f"The extracted {name} in {extracted} is not as it was "
            f"extracted ({problem or 'no ratings file'}); extracting it "
            "again from the archive."
        )
        _remove_tree(extracted)
    downloads = 0
    while True:
        try:
            if not os.path.isfile(archive):
                if not download:
                    raise FileNotFoundError(
                        f"{name} is not in the Keras cache ({cache_dir}) "
                        "and download=False. "
                        + _offline_message(name, release, cache_dir)
                    )
                downloads += 1
                _download(name, release, archive, cache_dir, timeout)
            elif release["file_hash"] and not _hash_matches(
                archive, release["file_hash"]
            ):
                _remove_file(archive)
                if not download:
                    raise ValueError(
                        f"The cached {archive} does not match the published "
                        f"checksum ({release['file_hash']}), so it was "
                        "removed. Pass download=True to download it again. "
                        + _offline_message(name, release, cache_dir)
                    )
                print(
                    f"The cached {archive} does not match its checksum; "
                    "downloading it again."
                )
                continue
            try:
                _extract(archive, extracted, release)
            except ValueError:
                _remove_file(archive)
                raise
            return folder
        except _CorruptArchive as error:
            _remove_file(archive)
            if not download or downloads >= 2:
                raise ValueError(
                    f"The {name} archive is corrupt: {error}. It was "
                    f"removed from the cache after {downloads} "
                    f"download{'s' * (downloads != 1)}. Check the network "
                    "and try again. "
                    + _offline_message(name, release, cache_dir)
                ) from error
            print(
                f"The {name} archive is corrupt ({error}); downloading again."
            )


def _cache_key(name: str, release: Release, source: _FolderSource) -> str:
    fmt = _FORMATS[release["format"]]
    files: dict[str, list[int]] = {}
    for filename in (fmt["ratings"], fmt["movies"], "u.genre"):
        if source.exists(filename):
            files[filename] = source.stat(filename)
    return json.dumps(
        {
            "version": _CACHE_VERSION,
            "name": name,
            "release": release,
            "files": files,
        },
        sort_keys=True,
    )


def _read_parsed(path: str, key: str) -> _Parsed | None:
    """Returns the arrays cached at `path`, or None if absent or stale."""
    try:
        with np.load(path, allow_pickle=False) as cached:
            if str(cached["key"]) != key:
                return None
            arrays: dict[str, NDArray[np.generic] | None] = {
                name: cached[name] for name in cached.files
            }
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    arrays.pop("key")
    arrays.setdefault("timestamp", None)
    # The key matched: these are the arrays `_write_parsed` stored.
    return cast(_Parsed, arrays)


def _write_parsed(path: str, key: str, arrays: Mapping[str, object]) -> None:
    stored = {k: v for k, v in arrays.items() if v is not None}
    handle, partial = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.",
        suffix=".part",
        dir=os.path.dirname(path),
    )
    try:
        with os.fdopen(handle, "wb") as out:
            # NumPy's stubs type `**kwds` like its other keyword arguments.
            np.savez(out, key=np.array(key), **stored)  # type: ignore[arg-type]
        os.replace(partial, path)
    except OSError:
        pass  # A cache that can't be written only costs time.
    finally:
        _remove_file(partial)
