"""The rows a JAX sparse step reads and writes: distinct rows, gathers."""

from typing import Any

import jax.numpy as jnp


class EveryRow:
    """Indices that stand for every row of a table, row `i` at slot `i`.

    What `unique_rows` returns when a step's lookups are at least
    `EVERY_ROW_SHARE` times the table's rows: gathering every row is then
    the table itself, and a write keeps the rows outside `read` (those the
    step did not read) as they were, as a write at distinct indices leaves
    the other rows.
    """

    def __init__(self, read: Any) -> None:
        # Whether the step read each row, shape `(num_rows,)`.
        self.read = read

    def where(self, rows: Any, value: Any) -> Any:
        """`rows` where the step read the row, else `value`."""
        read = self.read.reshape(self.read.shape + (1,) * (value.ndim - 1))
        return jnp.where(read, rows, value)


def gather_rows(value: Any, indices: Any) -> Any:
    """The `indices` rows of `value`; rows past its end read as zeros."""
    if isinstance(indices, EveryRow):
        return value
    return jnp.take(value, indices, axis=0, mode="fill", fill_value=0)


def scatter_rows(value: Any, indices: Any, rows: Any, how: str) -> Any:
    """`value` with `rows` set (`how="set"`) or subtracted at `indices`.

    Indices past the end are dropped.
    """
    if isinstance(indices, EveryRow):
        return indices.where(rows if how == "set" else value - rows, value)
    at = value.at[indices]
    if how == "set":
        return at.set(rows, mode="drop")
    return at.add(-rows, mode="drop")


# Whether a small table keeps every row at its own slot (`EveryRow`)
# rather than gathering its distinct rows; off only to measure the
# difference.
EVERY_ROW = True

# A table is small when a step's lookups are at least this share of its
# rows: passing over every row then costs less than finding, gathering
# and writing back the distinct ones (measured on the course model at
# batch 16384, `benchmarks/throughput.py --every-row-shares`).
EVERY_ROW_SHARE = 0.5

# Largest table (in rows, beyond 32 per batch row) whose rows a step
# deduplicates through a table-sized scratch array rather than a sort.
_SCRATCH_ROWS = 2**20


def unique_rows(rows: Any, num_rows: int) -> tuple[Any, Any]:
    """The distinct values of `rows` and the position of each element.

    Returns `(unique, positions)`. When `rows` has at least
    `EVERY_ROW_SHARE * num_rows` values, `unique` is `EveryRow` (each row
    at its own slot, with the rows read marked) and `positions` is
    `rows`. Otherwise `unique` has the length of `rows`: its distinct
    values first (in order of first occurrence) and then `num_rows` (an
    index past the table's end, dropped by the updates), and
    `unique[positions] == rows`: like
    `jnp.unique(rows, size=n, fill_value=num_rows, return_inverse=True)`
    up to the order, without its sort (which XLA runs slowly on CPU):
    each row's first position is a scatter-min into a table-sized scratch
    array, and a cumulative sum numbers the first occurrences. Very large
    tables use the sort.
    """
    n = rows.shape[0]
    if EVERY_ROW and n >= EVERY_ROW_SHARE * num_rows:
        # A small table: every row gets its own slot, and the step reads
        # and writes whole arrays rather than gathering.
        read = jnp.zeros((num_rows,), bool).at[rows].set(True)
        return EveryRow(read), rows
    size = min(n, num_rows + 1)
    if num_rows > _SCRATCH_ROWS + 32 * n:
        unique, positions = jnp.unique(
            rows, size=size, fill_value=num_rows, return_inverse=True
        )
        return unique, positions.reshape(rows.shape)
    order = jnp.arange(n, dtype=jnp.int32)
    first = jnp.full((num_rows + 1,), n, jnp.int32).at[rows].min(order)[rows]
    is_first = first == order
    rank = jnp.cumsum(is_first.astype(jnp.int32)) - 1
    unique = (
        jnp.full((size,), num_rows, rows.dtype)
        .at[jnp.where(is_first, rank, size)]
        .set(rows, mode="drop")
    )
    return unique, rank[first]
