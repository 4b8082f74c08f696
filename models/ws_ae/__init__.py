"""Weakly-supervised autoencoder (the source paper, seeds/002): an autoencoder trained on
normal sound, then fine-tuned so a few labelled anomalies score above its gamma threshold.
"""
from .scorer import WeaklySupervisedAEScorer

__all__ = ["WeaklySupervisedAEScorer"]
