"""Convolutional autoencoder of the SKAB leaderboard (its best outlier detector, Conv-AE).

Trained on normal sensor windows; score = reconstruction error. See README.md for defaults.
"""
from .scorer import ConvAutoencoderScorer

__all__ = ["ConvAutoencoderScorer"]
