"""The Kafka service: the worker (a facade), its consumer checkpoint, health and metrics."""
