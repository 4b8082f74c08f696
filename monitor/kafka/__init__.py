"""Kafka clients: the consumer, the producer library, the embedded broker."""
