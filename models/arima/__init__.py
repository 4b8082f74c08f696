"""Classical ARIMA forecaster (statsmodels), registry name ``arima``."""
from .scorer import ArimaScorer

__all__ = ["ArimaScorer"]
