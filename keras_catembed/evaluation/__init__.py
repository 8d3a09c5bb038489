"""Evaluation of trained models: ranking metrics of recommendations."""

from keras_catembed.evaluation.ranking import METRICS
from keras_catembed.evaluation.ranking import MostPopular
from keras_catembed.evaluation.ranking import ranking_metrics
