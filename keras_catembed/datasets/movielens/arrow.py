"""The fast path of the ratings parser: `pyarrow.csv`, when installed.

`pyarrow` is an optional extra (`pip install keras-catembed[fast-csv]`).
`_parse_table_arrow` returns the same arrays as the NumPy parser, or
`None` whenever the file is not plainly well formed: a carriage return,
an exponent, a minus sign, an empty field or line, a too long or
non-finite number, a header that differs, anything `pyarrow` refuses.
The NumPy parser then reads the file and either parses it or raises its
error, which names the file and the line, so both paths accept the same
files and report errors the same way.
"""

from collections.abc import Sequence
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

_UNSET = object()
_PYARROW: object = _UNSET
# Bytes the NumPy parser refuses but pyarrow may take: carriage returns
# (a lone one ends a line for pyarrow), exponents, signs, and the spaces
# pyarrow trims around a float.
_REFUSED = (b"\r", b"e", b"E", b"-", b"+", b" ")
_MAX_DIGITS = 16  # As the NumPy parser: ids and timestamps below 10**16.


def _modules() -> tuple[ModuleType, ModuleType] | None:
    """`(pyarrow, pyarrow.csv)`, or None when pyarrow is not installed."""
    global _PYARROW
    if _PYARROW is _UNSET:
        try:
            import pyarrow
            import pyarrow.csv
        except ImportError:
            _PYARROW = None
        else:
            _PYARROW = (pyarrow, pyarrow.csv)
    return _PYARROW  # type: ignore[return-value]  # set just above


def _parse_table_arrow(
    data: bytes,
    *,
    separator: bytes,
    kinds: Sequence[str],
    header: bytes | None,
) -> list[NDArray[np.generic]] | None:
    """The column arrays of `data` (BOM already dropped), or None."""
    modules = _modules()
    if modules is None:
        return None
    pa, csv = modules
    if len(separator) > 1:
        data = data.replace(separator, b"\t")
        separator = b"\t"
    start = 0
    if header is not None:
        end_of_header = data.find(b"\n")
        if end_of_header < 0 or data[:end_of_header].strip() != header:
            return None
        start = end_of_header + 1
    end = len(data)
    while end > start and data[end - 1] == 10:
        end -= 1
    if end == start or any(data.find(b, start, end) >= 0 for b in _REFUSED):
        return None
    names = [f"f{i}" for i in range(len(kinds))]
    types = [pa.int64() if kind == "int" else pa.float64() for kind in kinds]
    try:
        table = csv.read_csv(
            pa.py_buffer(memoryview(data)[start:end]),
            # One thread: on the two-core machine of benchmarks/loader.py,
            # pyarrow's threads were no faster than one.
            read_options=csv.ReadOptions(column_names=names, use_threads=False),
            parse_options=csv.ParseOptions(
                delimiter=separator.decode(),
                quote_char=False,
                ignore_empty_lines=False,
            ),
            convert_options=csv.ConvertOptions(
                column_types=dict(zip(names, types, strict=True)),
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    outputs: list[NDArray[np.generic]] = []
    for name, kind in zip(names, kinds, strict=True):
        column = table.column(name)
        if column.null_count:
            return None
        values = column.to_numpy()
        if kind == "int" and values.size and values.max() >= 10**_MAX_DIGITS:
            return None
        if kind != "int" and not np.all(np.isfinite(values)):
            return None
        outputs.append(values)
    return outputs
