"""The rows a JAX sparse step reads and writes: distinct rows, gathers."""

from typing import Any

import jax.numpy as jnp


def gather_rows(value: Any, indices: Any) -> Any:
    """The `indices` rows of `value`; rows past its end read as zeros."""
    return jnp.take(value, indices, axis=0, mode="fill", fill_value=0)


# Largest table (in rows, beyond 32 per batch row) whose rows a step
# deduplicates through a table-sized scratch array rather than a sort.
_SCRATCH_ROWS = 2**20


def unique_rows(rows: Any, num_rows: int) -> tuple[Any, Any]:
    """The distinct values of `rows` and the position of each element.

    Returns `(unique, positions)`: `unique` has the length of `rows` or,
    for a table with fewer rows, `num_rows + 1` (the most distinct values
    there can be: every step then handles fewer rows); its distinct values
    first (in order of first occurrence) and then `num_rows` (an index
    past the table's end, dropped by the updates), and
    `unique[positions] == rows`. Like `jnp.unique(rows, size=n,
    fill_value=num_rows, return_inverse=True)` up to the order, without
    its sort (which XLA runs slowly on CPU): each row's first position is
    a scatter-min into a table-sized scratch array, and a cumulative sum
    numbers the first occurrences. Very large tables use the sort.
    """
    n = rows.shape[0]
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
