"""Prints how many blocks glibc maps for one 15 MiB torch tensor.

Run by `tests/test_fast_fit.py` in a fresh process: `none` allocates
right after the imports, `fit` after a device-loop `fit`, `skip` after a
`fit` that does not settle the allocator.
"""

import ctypes
import sys

import numpy as np
import torch

import keras_catembed
from keras_catembed.backend import torch as torch_backend

libc = ctypes.CDLL("libc.so.6")
FIELDS = (
    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks "
    "keepcost"
).split()


class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]


libc.mallinfo2.restype = Info
if sys.argv[1] == "skip":
    torch_backend.settle_allocator = lambda: None
if sys.argv[1] != "none":
    model = keras_catembed.RatingModel({"user": 5, "movie": 4})
    model.compile("adam", "mse")
    x = {"user": np.arange(8) % 5, "movie": np.arange(8) % 4}
    model.fit(x, np.ones(8, "float32"), epochs=1, verbose=0)
before = libc.mallinfo2().hblks
block = torch.empty(15 * 2**20, dtype=torch.uint8)
print("MAPPED", libc.mallinfo2().hblks - before)
