"""Training: audio and sensor scorers, their thresholds, and the weakly-supervised selection."""
