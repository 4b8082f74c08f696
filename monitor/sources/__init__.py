"""Sources: one file per source (files, microphone, standard input, Kafka wire formats).

``LIVE`` names the live inputs ``monitor listen --input NAME`` can open ("module:class", imported
only when chosen, so a machine without PortAudio can still read a pipe). A new live source is
one file here plus one line in ``LIVE``: ``listen`` builds the class with keyword arguments
``sample_rate``, ``stream``, ``machine``, ``block_ms`` and ``max_samples``, plus the listen
options (argument names, e.g. ``device``) that its ``listen_options`` tuple names.
"""
from monitor.sources.base import AudioChunk, Source
from monitor.sources.files import FileSource

LIVE = {
    "mic": "monitor.sources.microphone:MicrophoneSource",
    "-": "monitor.sources.stdin_pcm:StdinSource",
}

__all__ = ["LIVE", "AudioChunk", "FileSource", "Source"]
