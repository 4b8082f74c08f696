"""One root error for the whole product; each stage raises its own subclass.

The CLI turns any ``MonitorError`` into one line on stderr and exit code 2.
"""


class MonitorError(Exception):
    """Base of every error the product reports to a user as one clear line."""


class UnknownScorerError(MonitorError, KeyError):
    """A scorer name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ScorerError(MonitorError):
    """A scorer cannot train or score on what it was given."""


class ThresholdError(MonitorError):
    """A threshold cannot be fitted (too few or degenerate scores) or is invalid."""


class ModelFileError(MonitorError):
    """A model directory or one of its files is missing, truncated or foreign."""
