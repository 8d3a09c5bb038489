"""The parser of ratings files: numeric delimited text to NumPy arrays.

Two parsers give the same arrays:

- `pyarrow.csv` (module `arrow`), used when pyarrow is installed (the
  optional extra `keras-catembed[fast-csv]`) and the file is plainly well
  formed;
- a hand-written byte-level parser, vectorised over all lines with NumPy:
  the field boundaries of a chunk of lines are found at once, and the
  digits of every field are combined eight bytes at a time. It parses
  whenever pyarrow is missing or declines a file, and it reports every
  error: a malformed line raises a `ValueError` naming the file, the line
  number and the field.

`benchmarks/loader.py` (`benchmarks/results/loader.json`, best of three
rounds on a shared two-core machine) read and parsed ml-1m's `ratings.dat`
(487,650 lines of users 1..2999) in 0.40 s with NumPy and 0.31 s with
pyarrow on one thread, all 1,000,209 ml-1m ratings as csv in 0.47 s and
0.38 s, and a 20,000,263-row `ratings.csv` in 21.1 s and 16.0 s. pyarrow
with its threads took 0.39 s, 0.62 s and 19.7 s there, so the loader runs
it on one thread. pyarrow is an extra, not a dependency: it saves about a
fifth of the parsing time, paid once per release (later loads read the
`.npz` cache), and it is a large install.
"""

from collections.abc import Sequence
from typing import NoReturn
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray

from keras_catembed.datasets.movielens.arrow import _parse_table_arrow
from keras_catembed.datasets.movielens.releases import _Format
from keras_catembed.datasets.movielens.sources import _Source

_CHUNK_BYTES = 1 << 19  # Small enough for the CPU cache.
_BOM = b"\xef\xbb\xbf"


class _Context(TypedDict):
    """What an error message needs to name the file and show the line."""

    text: bytes
    filename: str
    separator: str
    columns: Sequence[str]
    kinds: Sequence[str]


def _parse_ratings(
    source: _Source, filename: str, fmt: _Format, header: bytes | None
) -> tuple[
    NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]
]:
    """Parses a ratings file: (user, movie, rating, timestamp) columns."""
    users, movies, ratings, timestamps = _parse_table(
        source.read(filename),
        separator=fmt["separator"],
        columns=fmt["columns"],
        kinds=("int", "int", "float", "int"),
        filename=source.describe(filename),
        header=header,
    )
    # Both parsers give these dtypes; `copy=False` makes no copy.
    return (
        users.astype(np.int64, copy=False),
        movies.astype(np.int64, copy=False),
        ratings.astype(np.float64, copy=False),
        timestamps.astype(np.int64, copy=False),
    )


# Bytes below "." (46) are never digits: "\n", "\t" and "," are the line
# and field separators; anything else there makes the line malformed.
_FIRST_NON_SEPARATOR = 46
_PAD = b"0" * 16
_UINT64 = np.uint64
_ZEROS = _UINT64(0x3030303030303030)
_ALL_BITS = _UINT64(0xFFFFFFFFFFFFFFFF)


def _parse_table(
    data: bytes | memoryview,
    *,
    separator: bytes,
    columns: Sequence[str],
    kinds: Sequence[str],
    filename: str,
    header: bytes | None = None,
) -> list[NDArray[np.generic]]:
    """Parses numeric delimited text into one array per column.

    With `pyarrow.csv` when it is installed and the file is plainly well
    formed, else (and to report any error) with the NumPy parser.
    """
    data = bytes(data).removeprefix(_BOM)
    arrays = _parse_table_arrow(
        data, separator=separator, kinds=kinds, header=header
    )
    if arrays is not None:
        return arrays
    return _parse_table_numpy(
        data,
        separator=separator,
        columns=columns,
        kinds=kinds,
        filename=filename,
        header=header,
    )


def _parse_table_numpy(
    data: bytes | memoryview,
    *,
    separator: bytes,
    columns: Sequence[str],
    kinds: Sequence[str],
    filename: str,
    header: bytes | None = None,
) -> list[NDArray[np.generic]]:
    """Parses numeric delimited text into one array per column.

    Vectorised over all lines with NumPy; a malformed line raises a
    `ValueError` naming `filename` and the line number.
    """
    data = bytes(data).removeprefix(_BOM)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    text = data
    shown_separator = separator.decode()
    if len(separator) > 1:
        data = data.replace(separator, b"\t")
        separator = b"\t"
    start, first_line = 0, 1
    if header is not None:
        end_of_header = data.find(b"\n")
        if end_of_header < 0:
            end_of_header = len(data)
        found = data[:end_of_header].strip()
        if found != header:
            raise ValueError(
                f"{filename}, line 1: expected the header "
                f"{header.decode()!r}. Received: "
                f"{found.decode('utf-8', 'replace')!r}"
            )
        start, first_line = end_of_header + 1, 2
    end = len(data)
    while end > start and data[end - 1] == 10:
        end -= 1
    num_rows = data.count(b"\n", start, end) + 1 if end > start else 0
    outputs: list[NDArray[np.generic]] = [
        np.empty(num_rows, np.int64 if kind == "int" else np.float64)
        for kind in kinds
    ]
    context: _Context = {
        "text": text,
        "filename": filename,
        "separator": shown_separator,
        "columns": columns,
        "kinds": kinds,
    }
    row = 0
    while start < end:
        stop = data.find(b"\n", min(start + _CHUNK_BYTES, end))
        if stop < 0 or stop > end:
            stop = end
        chunk = b"".join((_PAD, memoryview(data)[start:stop], b"\n"))
        row += _parse_chunk(
            chunk, separator[0], kinds, outputs, row, first_line, context
        )
        start = stop + 1
    return outputs


def _parse_chunk(
    chunk: bytes,
    separator: int,
    kinds: Sequence[str],
    outputs: list[NDArray[np.generic]],
    row: int,
    first_line: int,
    context: _Context,
) -> int:
    """Parses whole lines in `chunk` into `outputs[j][row:...]`."""
    values = np.frombuffer(chunk, np.uint8)
    num_columns = len(kinds)
    ends = np.flatnonzero(values < _FIRST_NON_SEPARATOR)
    if ends.size % num_columns:
        _raise_structure_error(values, separator, row, first_line, context)
    num_rows = ends.size // num_columns
    ends_2d = ends.reshape(num_rows, num_columns)
    if not (
        np.all(values[ends_2d[:, -1]] == 10)
        and np.all(values[ends_2d[:, :-1]] == separator)
    ):
        _raise_structure_error(values, separator, row, first_line, context)
    starts = np.empty_like(ends_2d)
    starts[0, 0] = len(_PAD)
    starts[1:, 0] = ends_2d[:-1, -1] + 1
    starts[:, 1:] = ends_2d[:, :-1] + 1
    for column, kind in enumerate(kinds):
        field_starts = starts[:, column]
        field_ends = ends_2d[:, column]
        parsed: NDArray[np.int64] | NDArray[np.float64]
        if kind == "int":
            parsed, bad = _parse_integers(chunk, field_starts, field_ends)
        else:
            parsed, bad = _parse_decimals(values, field_starts, field_ends)
        if bad.any():
            index = int(np.argmax(bad))
            field = values[field_starts[index] : field_ends[index]].tobytes()
            _raise_line_error(
                row + index,
                first_line,
                context,
                f"the {context['columns'][column]} field "
                f"{field.decode('utf-8', 'replace')!r} is not "
                + ("a whole number" if kind == "int" else "a number"),
            )
        outputs[column][row : row + num_rows] = parsed
    return num_rows


def _parse_integers(
    chunk: bytes, starts: NDArray[np.intp], ends: NDArray[np.intp]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Parses digit fields of up to 16 digits, eight bytes at a time."""
    words = np.ndarray((len(chunk) - 7,), np.dtype("<u8"), chunk, 0, (1,))
    lengths = ends - starts
    low_length = np.minimum(lengths, 8)
    value, ok = _eight_digits(words, ends, low_length)
    bad = ~ok | (lengths == 0)
    if lengths.max(initial=0) > 8:
        high, high_ok = _eight_digits(
            words, ends - 8, np.minimum(lengths - low_length, 8)
        )
        value += high * _UINT64(100_000_000)
        bad |= ~high_ok | (lengths > 16)
    return value.astype(np.int64), bad


def _eight_digits(
    words: NDArray[np.uint64], ends: NDArray[np.intp], lengths: NDArray[np.intp]
) -> tuple[NDArray[np.uint64], NDArray[np.bool_]]:
    """Values of the `lengths` (0..8) digits just before each of `ends`."""
    # Little-endian: the field's first digit is in the lowest kept byte.
    word = words[ends - 8]
    shift = (64 - 8 * lengths).astype(np.uint64)
    keep = np.left_shift(_ALL_BITS, shift)  # A shift of 64 keeps nothing.
    x = (word & keep) - (_ZEROS & keep)
    ok = (
        (x | (x + _UINT64(0x7676767676767676))) & _UINT64(0x8080808080808080)
    ) == 0
    x = x * _UINT64(10) + (x >> _UINT64(8))
    x = (
        (x & _UINT64(0x000000FF000000FF)) * _UINT64(100 + (1000000 << 32))
        + ((x >> _UINT64(16)) & _UINT64(0x000000FF000000FF))
        * _UINT64(1 + (10000 << 32))
    ) >> _UINT64(32)
    return x, ok


def _parse_decimals(
    values: NDArray[np.uint8], starts: NDArray[np.intp], ends: NDArray[np.intp]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Parses fields such as `4`, `3.5` or `4.0` (one position at a time)."""
    lengths = ends - starts
    width = min(int(lengths.max(initial=0)), 18)
    mantissa = np.zeros(starts.size, np.int64)
    num_digits = np.zeros(starts.size, np.int64)
    num_dots = np.zeros(starts.size, np.int64)
    dot_at = np.full(starts.size, -1, np.int64)
    for offset in range(width, 0, -1):
        position = ends - offset
        byte = values[position]
        inside = position >= starts
        digit = byte - np.uint8(48)
        is_digit = (digit <= 9) & inside
        is_dot = (byte == 46) & inside
        num_digits += is_digit
        num_dots += is_dot
        dot_at = np.where(is_dot, position, dot_at)
        mantissa = np.where(is_digit, mantissa * 10 + digit, mantissa)
    bad = (
        (num_digits + num_dots != lengths)
        | (num_dots > 1)
        | (num_digits == 0)
        | (lengths > 18)
    )
    decimals = np.where(dot_at >= 0, ends - dot_at - 1, 0)
    return mantissa / 10.0**decimals, bad


def _raise_structure_error(
    values: NDArray[np.uint8],
    separator: int,
    row: int,
    first_line: int,
    context: _Context,
) -> NoReturn:
    """Finds the first line of a chunk with wrong fields, and raises."""
    newlines = np.flatnonzero(values == 10)
    separators = np.cumsum(values == separator)[newlines]
    per_line = np.diff(separators, prepend=0)
    expected = len(context["kinds"]) - 1
    wrong = np.flatnonzero(per_line != expected)
    if wrong.size:
        index = int(wrong[0])
        _raise_line_error(
            row + index,
            first_line,
            context,
            f"expected {expected + 1} fields separated by "
            f"{context['separator']!r}, found {per_line[index] + 1}",
        )
    stray = np.flatnonzero(
        (values < _FIRST_NON_SEPARATOR) & (values != 10) & (values != separator)
    )
    if not stray.size:
        raise ValueError(f"{context['filename']} could not be parsed.")
    index = int(np.searchsorted(newlines, stray[0]))
    _raise_line_error(
        row + index,
        first_line,
        context,
        f"unexpected character {chr(values[stray[0]])!r}; expected "
        f"numbers separated by {context['separator']!r}",
    )


def _raise_line_error(
    row: int, first_line: int, context: _Context, problem: str
) -> NoReturn:
    line_number = first_line + row
    text = context["text"]
    newlines = np.flatnonzero(np.frombuffer(text, np.uint8) == 10)
    start = int(newlines[line_number - 2]) + 1 if line_number > 1 else 0
    stop = newlines[line_number - 1] if line_number <= newlines.size else None
    line = text[start:stop]
    raise ValueError(
        f"Malformed line {line_number} in {context['filename']}: {problem}. "
        f"The line reads {line.decode('utf-8', 'replace')!r}; expected "
        f"{context['separator'].join(context['columns'])}."
    )
