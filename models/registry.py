"""The explicit scorer registry: one line per scorer."""
from __future__ import annotations

from .ae import AutoencoderScorer
from .arima import ArimaScorer
from .base import Scorer
from .condition_clf import ConditionClassifierScorer
from .conv_ae import ConvAutoencoderScorer
from .errors import UnknownScorerError
from .lstm_forecast import LstmForecastScorer
from .stats_maha import StatsMahalanobisScorer
from .tadgan import TadGanScorer
from .ws_ae import WeaklySupervisedAEScorer

SCORERS: dict[str, type[Scorer]] = {
    "ae": AutoencoderScorer,
    "conv-ae": ConvAutoencoderScorer,
    "lstm": LstmForecastScorer,
    "tadgan": TadGanScorer,
    "arima": ArimaScorer,
    "ws-ae": WeaklySupervisedAEScorer,
    "stats-maha": StatsMahalanobisScorer,
    "condition-clf": ConditionClassifierScorer,
}


def scorer_class(name: str) -> type[Scorer]:
    try:
        return SCORERS[name]
    except KeyError:
        raise UnknownScorerError(
            f"unknown scorer {name!r}; known scorers: {', '.join(sorted(SCORERS))}") from None
