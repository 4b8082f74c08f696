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
