"""Each epoch's row order on the host, drawn in a thread one epoch ahead."""

import concurrent.futures

import numpy as np

# Draws host permutations while the main thread works: NumPy's shuffle
# releases the GIL.
_SHUFFLING = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="keras_catembed_shuffle"
)


class HostOrders:
    """Each epoch's row order on the host, drawn one epoch ahead.

    Shuffling a million rows takes NumPy about 10 ms, time in which a
    step-bound loop would otherwise wait: each order is drawn in a thread
    while the arrays are copied and the epoch before trains. The orders
    come from `rng` one after the other, in epoch order, so they are those
    of `rng.permutation(num_samples)` drawn when needed.
    """

    def __init__(self, rng: np.random.Generator, num_samples: int, epochs: int):
        self._rng = rng
        self._num_samples = num_samples
        self._left = epochs
        self._next = self._submit()

    def _submit(self) -> "concurrent.futures.Future[np.ndarray] | None":
        if self._left <= 0:
            return None
        self._left -= 1
        return _SHUFFLING.submit(self._draw)

    def _draw(self) -> np.ndarray:
        # Shuffled as 64-bit integers, then narrowed: NumPy swaps 8-byte
        # items in its fast path and others item by item (16 ms against
        # 10 ms for a million here), with the same draws either way.
        order = np.arange(self._num_samples, dtype=np.int64)
        self._rng.shuffle(order)
        return order.astype(np.int32)

    def take(self) -> np.ndarray:
        """The next epoch's order; starts drawing the one after.

        Past the epochs it was sized for (a `BackupAndRestore` resume may
        start earlier than `fit`'s `initial_epoch`), it draws on demand.
        """
        if self._next is None:
            return self._draw()
        order = self._next.result()
        self._next = self._submit()
        return order
