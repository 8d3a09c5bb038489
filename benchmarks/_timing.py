"""Timing `fit` calls epoch by epoch, for the benchmarks."""

import time


def epoch_timer(from_epoch_begin=False):
    """A Keras callback that records each epoch's seconds (`.seconds`).

    By default an epoch runs from the end of the one before (the call's
    start for the first) to its own end, so the time between epochs
    counts. With `from_epoch_begin=True` it runs from `on_epoch_begin` to
    `on_epoch_end`.
    """
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_train_begin(self, logs=None):
            self._start = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            if from_epoch_begin:
                self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            self.seconds.append(now - self._start)
            self._start = now

    return EpochTimer()
