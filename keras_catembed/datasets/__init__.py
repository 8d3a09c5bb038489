"""Rating data sets, loaded as arrays of contiguous ids ready to embed."""

from keras_catembed.datasets import movielens

__all__ = ["movielens"]
