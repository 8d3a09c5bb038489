"""Leak-free evaluation: splitting protocols and cross-validation."""

from keras_catembed.evaluation import protocols
from keras_catembed.evaluation.cross_validation import cross_validate
from keras_catembed.evaluation.cross_validation import nested_cross_validate
