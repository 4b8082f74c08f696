"""Sources: one file per source (files, microphone, Kafka)."""
from monitor.sources.base import AudioChunk
from monitor.sources.files import FileSource

__all__ = ["AudioChunk", "FileSource"]
