"""LSTM forecaster after telemanom (Hundman et al. 2018), registry name ``lstm``."""
from .scorer import LstmForecastScorer

__all__ = ["LstmForecastScorer"]
