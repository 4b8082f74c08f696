"""The service: CLI, config, sources, sinks, alerting, pipeline wiring, metrics, evaluation."""
__version__ = "0.1.0"
