"""Downloading a release archive, within a deadline, checked as it arrives.

The archive is written to a temporary `.part` file in the cache, hashed
while it arrives, and renamed into place only when it is complete and
matches the published checksum. Each read waits at most
`_TIMEOUT_SECONDS` (or `timeout`, if less), and the whole download must
finish within `timeout` seconds: a server that sends a few bytes now and
then cannot keep a load waiting for ever.
"""

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request

import keras

from keras_catembed.datasets.movielens.extract import _CorruptArchive
from keras_catembed.datasets.movielens.extract import _remove_file
from keras_catembed.datasets.movielens.releases import Release

_DOWNLOAD_BLOCK = 1 << 20
_TIMEOUT_SECONDS = 60
# The default of `load_ratings(download_timeout=...)`: an hour, enough for
# the largest archive (ml-32m, about 240 MB) at 100 KB/s.
DOWNLOAD_TIMEOUT_SECONDS = 3600
_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def _offline_message(name: str, release: Release, cache_dir: str) -> str:
    return (
        f"To load {name} without downloading, pass the folder of a copy "
        f"you already have: load_ratings({name!r}, data_dir=...), where "
        f"the folder holds the extracted release (`{release['folder']}/` "
        f"or its parent) or {name}.zip; or put {name}.zip from "
        f"{release['url']} into {cache_dir}."
    )


def _download(
    name: str, release: Release, target: str, cache_dir: str, timeout: float
) -> None:
    """Downloads the archive of `name` to `target` within `timeout` s."""
    url = release["url"]
    algorithm, expected = _parse_hash(release["file_hash"])
    hasher = hashlib.new(algorithm) if algorithm else None
    deadline = time.monotonic() + timeout
    handle, partial = tempfile.mkstemp(
        prefix=f".{name}.zip.", suffix=".part", dir=cache_dir
    )
    try:
        print(f"Downloading data from {url}")
        try:
            with (
                os.fdopen(handle, "wb") as out,
                urllib.request.urlopen(
                    url, timeout=min(_TIMEOUT_SECONDS, timeout)
                ) as response,
            ):
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                progbar = keras.utils.Progbar(total, unit_name="byte")
                received = 0
                # read1 returns what has arrived; read() would wait for a
                # whole block, however slowly it comes.
                while block := response.read1(_DOWNLOAD_BLOCK):
                    out.write(block)
                    received += len(block)
                    if hasher is not None:
                        hasher.update(block)
                    progbar.update(received)
                    if time.monotonic() > deadline:
                        raise _DeadlineExceeded(received)
                if total is None:
                    progbar.update(received, finalize=True)
        except _DeadlineExceeded as error:
            raise OSError(
                f"Could not download {name} from {url}: it did not finish "
                f"within download_timeout={timeout:g} seconds (received "
                f"{error.received} of "
                f"{'an unknown number of' if total is None else total} "
                "bytes). Pass a larger `download_timeout` on a slow "
                "network. " + _offline_message(name, release, cache_dir)
            ) from None
        except http.client.IncompleteRead as error:
            raise _CorruptArchive(
                f"the download of {url} stopped after "
                f"{len(error.partial)} bytes"
            ) from error
        except _NETWORK_ERRORS as error:
            raise OSError(
                f"Could not download {name} from {url}: {error}. "
                + _offline_message(name, release, cache_dir)
            ) from error
        if total is not None and received != total:
            raise _CorruptArchive(
                f"the download of {url} stopped after {received} of {total} "
                "bytes"
            )
        if hasher is not None and hasher.hexdigest() != expected:
            raise ValueError(
                f"The file downloaded from {url} does not match the "
                f"published checksum: expected {algorithm} {expected}, got "
                f"{hasher.hexdigest()}. It was not kept in the cache. The "
                "download may have been altered or the release replaced; "
                "try again later, or pass `data_dir` with a copy you trust."
            )
        os.replace(partial, target)
    finally:
        _remove_file(partial)


class _DeadlineExceeded(Exception):
    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


def _parse_hash(file_hash: str | None) -> tuple[str | None, str | None]:
    if not file_hash:
        return None, None
    algorithm, _, expected = file_hash.rpartition(":")
    if not algorithm:
        algorithm = "sha256" if len(expected) == 64 else "md5"
    return algorithm, expected.lower()


def _hash_matches(path: str | os.PathLike[str], file_hash: str) -> bool:
    algorithm, expected = _parse_hash(file_hash)
    hasher = hashlib.new(algorithm or "sha256")
    with open(path, "rb") as handle:
        while block := handle.read(_DOWNLOAD_BLOCK):
            hasher.update(block)
    return hasher.hexdigest() == expected
