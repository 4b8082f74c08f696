"""Mahalanobis distance of pooled log-mel statistics (the DCASE 2023 baseline's Mahalanobis
idea on band statistics). Fitted on normal spans in one pass. See README.md for defaults.
"""
from .scorer import StatsMahalanobisScorer

__all__ = ["StatsMahalanobisScorer"]
