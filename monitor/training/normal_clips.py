"""Which clips of a folder are normal recordings to train on.

By default the ``normal`` token of a file name says so (the DCASE and MIMII conventions). A
user's own recordings rarely carry it (``pump_rec_001.wav``), so ``--normal GLOB`` names them
instead; a file the glob picks that is named ``anomaly`` is refused rather than trained on.
"""
from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

from monitor.datasets import EXPECTED_NAMES, Clip, list_clips
from monitor.errors import DataError


def select_normal_clips(data: str | Path, normal_glob: str | None = None) -> list[Clip]:
    clips = list_clips(data)
    if normal_glob:
        chosen = [c for c in clips if fnmatch(c.path.name, normal_glob)]
        named_anomaly = [c.path.name for c in chosen if c.label == "anomaly"]
        if named_anomaly:
            raise DataError(f"{data}: --normal {normal_glob!r} picks clips named 'anomaly': "
                            f"{', '.join(named_anomaly[:5])}; narrow the pattern")
        if not chosen:
            raise DataError(f"{data}: no clip matches --normal {normal_glob!r} ({len(clips)} audio "
                            f"files, e.g. {clips[0].path.name})")
        return chosen
    chosen = [c for c in clips if c.label == "normal"]
    if not chosen:
        raise DataError(f"{data}: no clips named 'normal' ({len(clips)} audio files, e.g. "
                        f"{clips[0].path.name}); if they are all normal recordings say so with "
                        f"--normal '*' (or a pattern such as --normal 'pump_rec_*'), or name them "
                        f"like {EXPECTED_NAMES}")
    return chosen
