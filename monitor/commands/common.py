"""Small helpers the subcommands share: progress reporting and number formatting."""
from __future__ import annotations

import json
import logging
import sys
from typing import Any

log = logging.getLogger("monitor")


class EpochProgress:
    """A tqdm bar on a terminal, a log line every ``every`` epochs otherwise."""

    def __init__(self, label: str, *, every: int = 10) -> None:
        self.label, self.every = label, every
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm  # noqa: PLC0415

            self.bar = tqdm(desc=label, unit="epoch", leave=False)

    def __call__(self, epoch: int, epochs: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.total = epochs
            self.bar.set_postfix(loss=f"{loss:.4g}")
            self.bar.update(1)
        elif epoch == 1 or epoch % self.every == 0 or epoch == epochs:
            log.info("epoch %d/%d loss %.6g", epoch, epochs, loss,
                     extra={"stage": self.label, "epoch": epoch, "loss": loss})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class FileProgress:
    """A tqdm bar over files on a terminal (stderr), silent otherwise; call it with a count."""

    def __init__(self, label: str, *, total: int | None = None) -> None:
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm  # noqa: PLC0415

            self.bar = tqdm(desc=label, unit="file", total=total, leave=False)

    def __call__(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def threshold_arg(text: str) -> float:
    """``--threshold``: a finite, positive number (a negative one would alarm on every window)."""
    import argparse  # noqa: PLC0415
    import math  # noqa: PLC0415

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: a threshold must be finite and positive")
    return value


def add_channel_arg(p) -> None:
    p.add_argument("--channel", metavar="N|mean", help="multi-channel files: use channel N (0-based) "
                   "or mix all (mean); without it such files are skipped, naming their channel count")


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_default))


def _default(o: Any) -> Any:
    import numpy as np  # noqa: PLC0415

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
