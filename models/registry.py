"""The explicit scorer registry: one line per scorer."""
from __future__ import annotations

from .ae import AutoencoderScorer
from .base import Scorer
from .errors import UnknownScorerError

SCORERS: dict[str, type[Scorer]] = {
    "ae": AutoencoderScorer,
}


def scorer_class(name: str) -> type[Scorer]:
    try:
        return SCORERS[name]
    except KeyError:
        raise UnknownScorerError(
            f"unknown scorer {name!r}; known scorers: {', '.join(sorted(SCORERS))}") from None
