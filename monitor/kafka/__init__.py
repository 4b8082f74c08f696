"""Kafka clients: the consumer, the producer library, the embedded broker, and the security
options, connection probe and CLI options every client shares."""
