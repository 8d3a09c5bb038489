"""The dtype of the implicit-feedback and neighbourhood pairs.

`check` reads a `pair_dtype` argument: `None` or `"float32"`,
`"bfloat16"`, or `"auto"`. A narrow dtype (bfloat16) holds the dense
pair matrix, so a pair layer in the lists layout keeps float32;
`lists_reason` says, in words, what puts a layer in that layout.
`resolve` turns `"auto"` into bfloat16 where every pair layer is dense
and this machine multiplies bfloat16 natively (`native_bfloat16`), and
into float32 elsewhere. Models and layers keep the resolved dtype, so a
saved model loads with the weights it was saved with on any machine.
"""

import functools
from collections.abc import Iterable
from typing import Any

from keras import ops

from keras_catembed import backend

AUTO = "auto"

# Linux's names (`/proc/cpuinfo`) of the x86 features that multiply
# bfloat16 natively: Intel's AMX and AVX512-BF16 (the latter also on AMD's
# Zen 4). oneDNN (TensorFlow, torch) and XLA use them for bfloat16
# products accumulated in float32.
BFLOAT16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def check(name: str, pair_dtype: Any, lists_reason: str | None = None) -> str:
    """`pair_dtype` as a name: "float32" (None), "bfloat16" or "auto".

    A pair layer in the lists layout passes `lists_reason` (what chose
    that layout): bfloat16 is refused then, and "auto" stays "auto" for
    `resolve`.
    """
    if pair_dtype is None:
        return "float32"
    if pair_dtype not in ("float32", "bfloat16", AUTO):
        raise ValueError(
            f"{name}: `pair_dtype` expects None, 'float32', 'bfloat16' or "
            f"'auto'. Received: pair_dtype={pair_dtype!r}"
        )
    if is_narrow(pair_dtype) and lists_reason is not None:
        raise ValueError(
            f"{name}: `pair_dtype={pair_dtype!r}` holds the dense pair "
            "matrix in a narrow dtype, and this layer uses the lists layout "
            f"({lists_reason}). Expected `pair_dtype=None` (or 'float32' or "
            "'auto') with the lists layout."
        )
    return str(pair_dtype)


def is_narrow(pair_dtype: str) -> bool:
    """Whether a checked `pair_dtype` is narrower than float32."""
    return pair_dtype == "bfloat16"


def lists_reason(
    num_targets: int,
    num_sources: int,
    *,
    limit: int,
    dense: bool | None = None,
    max_pairs_per_id: int | None = None,
    pairs_per_step: int | None = None,
) -> str | None:
    """What puts a pair layer in the lists layout, in words; or None.

    The arguments are the layer's; `limit` is the most target-source
    pairs a dense matrix holds.
    """
    if dense is False:
        return "dense=False"
    if max_pairs_per_id is not None:
        return f"max_pairs_per_id={max_pairs_per_id}"
    if pairs_per_step is not None:
        return f"pairs_per_step={pairs_per_step}"
    size = num_targets * num_sources
    if size > limit:
        return (
            f"{num_targets:,} x {num_sources:,} = {size:,} "
            f"target-source pairs, more than the dense matrix's {limit:,}"
        )
    return None


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16() -> bool:
    """Whether the pairs' products run natively in bfloat16 here.

    True on a CPU with one of `BFLOAT16_FLAGS`, where bfloat16 pairs
    trained about twice as fast as float32 on each backend
    (`benchmarks/pair_dtype.py`). False on other CPUs, where bfloat16 is
    emulated, and on accelerators, where it has not been measured.
    """
    if backend.current.on_accelerator(ops.zeros(())):
        return False
    return bool(cpu_flags() & BFLOAT16_FLAGS)


def resolve(pair_dtype: str, reasons: Iterable[str | None]) -> str:
    """A checked `pair_dtype`, with "auto" made "bfloat16" or "float32".

    `reasons` holds the `lists_reason` of each pair layer: "auto" is
    bfloat16 when there is at least one layer, every layer is dense and
    `native_bfloat16()`; float32 otherwise.
    """
    if pair_dtype != AUTO:
        return pair_dtype
    reasons = list(reasons)
    if reasons and all(r is None for r in reasons) and native_bfloat16():
        return "bfloat16"
    return "float32"


def check_used(owner: str, value: str, has_pairs: bool, expected: str) -> None:
    """Raises for a narrow `value` where there are no pairs to narrow."""
    if is_narrow(value) and not has_pairs:
        raise ValueError(
            f"`pair_dtype={value!r}` sets the dtype of the pairs of "
            f"`implicit` and `neighborhood`, and this {owner} has neither. "
            f"Expected `pair_dtype=None` or {expected}."
        )
