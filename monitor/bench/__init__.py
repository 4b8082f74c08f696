"""``monitor bench``: real-time capacity, the compute ceiling, the DCASE way, cold start.

Kept import-light: ``coldstart`` runs as ``python -m monitor.bench.coldstart`` and must not
pay for librosa or the Kafka client.
"""
