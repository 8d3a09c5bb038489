"""Where a release's files are: a folder, or a zip archive read in place."""

import os
import zipfile

from keras_catembed.datasets.movielens.extract import _CORRUPT_ZIP_ERRORS
from keras_catembed.datasets.movielens.extract import _checked_members
from keras_catembed.datasets.movielens.releases import _FORMATS
from keras_catembed.datasets.movielens.releases import Release


class _FolderSource:
    def __init__(self, path: str) -> None:
        self.path = path

    def exists(self, filename: str) -> bool:
        return os.path.isfile(os.path.join(self.path, filename))

    def read(self, filename: str) -> bytes:
        with open(os.path.join(self.path, filename), "rb") as handle:
            return handle.read()

    def describe(self, filename: str) -> str:
        return os.path.join(self.path, filename)

    def stat(self, filename: str) -> list[int]:
        info = os.stat(os.path.join(self.path, filename))
        return [info.st_size, info.st_mtime_ns]


class _ZipSource:
    def __init__(self, path: str, prefix: str, names: set[str]) -> None:
        self.path = path
        self.prefix = prefix
        self.names = names

    def exists(self, filename: str) -> bool:
        return self.prefix + filename in self.names

    def read(self, filename: str) -> bytes:
        try:
            with zipfile.ZipFile(self.path) as archive:
                return archive.read(self.prefix + filename)
        except _CORRUPT_ZIP_ERRORS as error:
            raise ValueError(
                f"{self.describe(filename)} could not be read: the archive "
                f"is corrupt ({error}). Download it again."
            ) from error

    def describe(self, filename: str) -> str:
        return f"{self.path}:{self.prefix}{filename}"


def _open_zip_source(path: str, release: Release) -> _ZipSource:
    ratings_name = _FORMATS[release["format"]]["ratings"]
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(
                archive, path, release["max_extracted_bytes"]
            )
    except _CORRUPT_ZIP_ERRORS as error:
        raise ValueError(
            f"{path} is not a readable zip archive ({error}). Expected the "
            "release's zip file, or a folder holding the extracted release."
        ) from error
    names = {info.filename for info in members}
    preferred = f"{release['folder']}/{ratings_name}"
    if preferred in names:
        return _ZipSource(path, preferred[: -len(ratings_name)], names)
    found = sorted(
        n for n in names if n == ratings_name or n.endswith("/" + ratings_name)
    )
    if len(found) != 1:
        raise ValueError(
            f"{path} does not hold exactly one {ratings_name} (found "
            f"{len(found)}). Expected the archive of the release, with "
            f"{preferred}."
        )
    return _ZipSource(path, found[0][: -len(ratings_name)], names)


# Where a release's files are read from.
_Source = _FolderSource | _ZipSource


def _source_at(path: str, release: Release) -> _Source:
    if os.path.isfile(path):
        return _open_zip_source(path, release)
    return _FolderSource(path)


def _find_source(
    name: str, release: Release, data_dir: str | os.PathLike[str]
) -> _Source:
    try:
        path = os.path.expanduser(os.fspath(data_dir))
    except TypeError:
        raise ValueError(
            "`data_dir` must be a path (string or os.PathLike). Received: "
            f"data_dir={data_dir!r}"
        ) from None
    ratings_name = _FORMATS[release["format"]]["ratings"]
    hint = (
        f"Expected a folder holding the extracted {name} release (the "
        f"`{release['folder']}` folder itself or its parent), the path of "
        f"{name}.zip, or a folder holding {name}.zip."
    )
    if os.path.isfile(path):
        return _open_zip_source(path, release)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"`data_dir` does not exist. Received: data_dir={data_dir!r}. "
            + hint
        )
    folders: list[str] = []
    for folder in (
        path,
        os.path.join(path, release["folder"]),
        os.path.join(path, name),
        os.path.join(path, f"{name}_extracted", release["folder"]),
    ):
        if folder not in folders:
            folders.append(folder)
    for folder in folders:
        if os.path.isfile(os.path.join(folder, ratings_name)):
            return _FolderSource(folder)
    archive = os.path.join(path, f"{name}.zip")
    if os.path.isfile(archive):
        return _open_zip_source(archive, release)
    raise FileNotFoundError(
        f"`data_dir` holds no copy of {name}: looked for {ratings_name} in "
        f"{', '.join(folders)} and for {archive}. Received: "
        f"data_dir={data_dir!r}. " + hint
    )
