"""Sources: one file per source (files, microphone, standard input, Kafka wire formats).

``LIVE`` names the live inputs ``monitor listen --input NAME`` can open ("module:class", imported
only when chosen, so a machine without PortAudio can still read a pipe). A new live source is
one file here plus one line in ``LIVE``.
"""
from monitor.sources.base import AudioChunk, Source
from monitor.sources.files import FileSource

LIVE = {
    "mic": "monitor.sources.microphone:MicrophoneSource",
    "-": "monitor.sources.stdin_pcm:StdinSource",
}

__all__ = ["LIVE", "AudioChunk", "FileSource", "Source"]
