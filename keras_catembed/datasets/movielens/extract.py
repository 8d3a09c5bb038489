"""Safe, bounded extraction of a release archive, and its manifest.

`_extract` writes the archive's entries into a staging folder, refusing
entries that would land outside it (absolute paths, `..`, symbolic links)
and archives whose entries would expand beyond the release's
`max_extracted_bytes`: the sizes the archive declares are summed before
anything is written, and each entry is streamed to disk in blocks, counted
as it goes, so an entry that grows past its declared size is stopped at
once. The staging folder gets a manifest (`.manifest.json`: the size and
sha256 of every extracted file) and is then renamed into place.

`_verify_manifest` checks an extracted folder against that manifest before
it is used, so a truncated, edited or deleted file is noticed.
"""

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import zipfile
import zlib

from keras_catembed.datasets.movielens.releases import _FORMATS
from keras_catembed.datasets.movielens.releases import Release

_CORRUPT_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)
_BLOCK = 1 << 20
MANIFEST = ".manifest.json"
_MANIFEST_VERSION = 1


class _CorruptArchive(Exception):
    """A download or archive that is incomplete; worth one more download."""


def _checked_members(
    archive: zipfile.ZipFile, path: str, limit: int | None = None
) -> list[zipfile.ZipInfo]:
    """Returns the archive's entries; raises if one could escape its folder.

    With `limit` (bytes), also raises if the sizes the entries declare add
    up to more than `limit`.
    """
    members = archive.infolist()
    total = 0
    for info in members:
        entry = info.filename
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(
                f"Refusing to use {path}: its entry {entry!r} is a symbolic "
                "link. Expected only regular files and folders."
            )
        parts = entry.replace("\\", "/").split("/")
        if (
            entry.startswith(("/", "\\"))
            or (len(parts[0]) >= 2 and parts[0][1] == ":")
            or ".." in parts
        ):
            raise ValueError(
                f"Refusing to use {path}: its entry {entry!r} would be "
                "written outside the extraction folder (an absolute path or "
                "'..'). Expected paths inside the archive's folder."
            )
        total += info.file_size
        if limit is not None and total > limit:
            raise ValueError(
                f"Refusing to use {path}: its entries declare at least "
                f"{total} bytes once extracted (reached at {entry!r}), more "
                f"than the {limit} bytes allowed for this release. Expected "
                "the official archive of the release."
            )
    return members


def _extract(archive_path: str, destination: str, release: Release) -> None:
    """Extracts the archive into the new folder `destination`, atomically.

    Writes the manifest of the extracted files into `destination`.
    """
    ratings_name = _FORMATS[release["format"]]["ratings"]
    expected = f"{release['folder']}/{ratings_name}"
    limit = release["max_extracted_bytes"]
    parent = os.path.dirname(destination)
    staging = tempfile.mkdtemp(
        prefix=f".{os.path.basename(destination)}.", suffix=".part", dir=parent
    )
    try:
        root = os.path.realpath(staging)
        files: dict[str, list[int | str]] = {}
        try:
            with zipfile.ZipFile(archive_path) as archive:
                members = _checked_members(archive, archive_path, limit)
                if expected not in {info.filename for info in members}:
                    raise ValueError(
                        f"{archive_path} does not hold {expected}. Expected "
                        f"the official archive of the release."
                    )
                written = 0
                for info in members:
                    target = os.path.realpath(
                        os.path.join(staging, *info.filename.split("/"))
                    )
                    if not target.startswith(root + os.sep):
                        raise ValueError(
                            f"Refusing to use {archive_path}: its entry "
                            f"{info.filename!r} would be written outside "
                            "the extraction folder."
                        )
                    if info.is_dir():
                        os.makedirs(target, exist_ok=True)
                        continue
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    size, digest = _copy_entry(
                        archive, info, target, limit - written, archive_path
                    )
                    written += size
                    files[info.filename] = [size, digest]
        except _CORRUPT_ZIP_ERRORS as error:
            raise _CorruptArchive(
                f"{archive_path} is not a valid zip archive ({error})"
            ) from error
        _write_manifest(staging, files)
        os.replace(staging, destination)
    finally:
        if os.path.isdir(staging):
            _remove_tree(staging)


def _copy_entry(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: str,
    room: int,
    archive_path: str,
) -> tuple[int, str]:
    """Streams one entry to `target`; returns its (size, sha256 hex)."""
    hasher = hashlib.sha256()
    size = 0
    with archive.open(info) as source, open(target, "wb") as out:
        while block := source.read(_BLOCK):
            size += len(block)
            if size > info.file_size or size > room:
                raise ValueError(
                    f"Refusing to use {archive_path}: its entry "
                    f"{info.filename!r} expands beyond "
                    + (
                        f"the {info.file_size} bytes it declares"
                        if size > info.file_size
                        else "the bytes allowed for this release"
                    )
                    + ". Expected the official archive of the release."
                )
            hasher.update(block)
            out.write(block)
    return size, hasher.hexdigest()


def _write_manifest(folder: str, files: dict[str, list[int | str]]) -> None:
    with open(os.path.join(folder, MANIFEST), "w") as handle:
        json.dump({"version": _MANIFEST_VERSION, "files": files}, handle)


def _verify_manifest(folder: str) -> str | None:
    """Returns None when `folder` matches its manifest, else the problem.

    Sizes are compared for every file; the sha256 of a file is computed
    only when its modification time is newer than the manifest's (a file
    rewritten after extraction), so a sound cache is checked in
    milliseconds.
    """
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path) as handle:
            manifest = json.load(handle)
        files = manifest["files"]
        written = os.stat(path).st_mtime_ns
    except (OSError, ValueError, KeyError, TypeError):
        return f"{path} is missing or unreadable"
    for entry, (size, digest) in files.items():
        filename = os.path.join(folder, *entry.split("/"))
        try:
            info = os.stat(filename)
        except OSError:
            return f"{filename} is missing"
        if info.st_size != size:
            return (
                f"{filename} has {info.st_size} bytes, but {size} were "
                "extracted"
            )
        if info.st_mtime_ns > written and _sha256(filename) != digest:
            return f"{filename} differs from the extracted file"
    return None


def _sha256(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


def _remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _remove_tree(path: str) -> None:
    # Walks the tree itself so that it never follows symbolic links.
    for root, dirs, files in os.walk(path, topdown=False):
        for filename in files:
            _remove_file(os.path.join(root, filename))
        for directory in dirs:
            directory = os.path.join(root, directory)
            if os.path.islink(directory):
                _remove_file(directory)
            else:
                os.rmdir(directory)
    os.rmdir(path)
