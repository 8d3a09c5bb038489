"""Evaluation of rating models: leak-free protocols, cross-validation and
ranking metrics of recommendations."""

from keras_catembed.evaluation import protocols
from keras_catembed.evaluation.cross_validation import cross_validate
from keras_catembed.evaluation.error_baselines import baselines
from keras_catembed.evaluation.error_baselines import errors
from keras_catembed.evaluation.nested import nested_cross_validate
from keras_catembed.evaluation.popularity import MostPopular
from keras_catembed.evaluation.ranking import METRICS
from keras_catembed.evaluation.ranking import ranking_metrics
from keras_catembed.evaluation.ranking_report import ranking_rows

__all__ = [
    "METRICS",
    "MostPopular",
    "baselines",
    "cross_validate",
    "errors",
    "nested_cross_validate",
    "protocols",
    "ranking_metrics",
    "ranking_rows",
]
