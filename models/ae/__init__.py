"""DCASE 2020 Task 2 baseline autoencoder (Koizumi et al., the challenge baseline).

Trained on normal vectors only; score = reconstruction MSE. See README.md for defaults.
"""
from .scorer import AutoencoderScorer

__all__ = ["AutoencoderScorer"]
