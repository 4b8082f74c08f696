"""Condition classifier: a compact CNN with an ArcFace head trained to tell apart the
conditions of the normal clips; score = cosine distance to the own condition's centre.
See README.md for defaults and anchors.
"""
from .scorer import ConditionClassifierScorer

__all__ = ["ConditionClassifierScorer"]
