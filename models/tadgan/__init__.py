"""TadGAN (Geiger et al. 2020), a PyTorch port of Orion's architecture; registry ``tadgan``."""
from .scorer import TadGanScorer

__all__ = ["TadGanScorer"]
