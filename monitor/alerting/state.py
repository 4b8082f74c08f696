"""Alert state as plain JSON values, for the service's state topic (DESIGN §4.4).

A window's score and an event's explanation terms are float64; arrays travel as base64 of
their bytes and scores as JSON numbers (Python writes a float's shortest exact repr), so a
state read back is bit-identical to the one written and a restored stream raises exactly the
events an uninterrupted one would.
"""
from __future__ import annotations

import base64
from typing import Any

import numpy as np

from workers.windowing import WindowScore


def encode_array(a: np.ndarray | None) -> str | None:
    if a is None:
        return None
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float64).tobytes()).decode("ascii")


def decode_array(s: str | None) -> np.ndarray | None:
    if s is None:
        return None
    return np.frombuffer(base64.b64decode(s), dtype=np.float64).copy()


def encode_window(w: WindowScore, *, contributions: bool = True) -> dict[str, Any]:
    """``contributions=False`` leaves out the explanation terms (a window whose terms no
    future event can use: under the threshold, or an event's first and last window)."""
    return {"i": w.index, "s": w.start_sample, "e": w.end_sample, "x": w.score, "n": w.n_vectors,
            "c": encode_array(w.contributions) if contributions else None}


def decode_window(d: dict[str, Any], stream: str) -> WindowScore:
    return WindowScore(stream, int(d["i"]), int(d["s"]), int(d["e"]), float(d["x"]), int(d["n"]),
                       decode_array(d.get("c")))
