"""Sources: one file per source (files, microphone, Kafka)."""
from .base import AudioChunk
from .files import FileSource

__all__ = ["AudioChunk", "FileSource"]
