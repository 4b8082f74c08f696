"""Errors the service and CLI report as one clear line (exit code 2)."""
from models.errors import ModelFileError, MonitorError, ScorerError, ThresholdError, UnknownScorerError


class DataError(MonitorError):
    """Input data (a folder, a file, a CSV) cannot be used as given."""


class ConfigError(MonitorError):
    """A configuration file, key or value is invalid; the message names its path."""


__all__ = ["ConfigError", "DataError", "ModelFileError", "MonitorError", "ScorerError",
           "ThresholdError", "UnknownScorerError"]
