"""Leak-free evaluation: splitting protocols and cross-validation."""

from keras_catembed.evaluation import protocols
