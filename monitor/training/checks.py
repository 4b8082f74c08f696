"""Checks that keep a broken model from going live, run before and after training.

Before: the arguments (epochs, sizes, fractions) and the output folder, so a mistake costs
seconds, not a training run. After: a loss, a threshold or scores that are not finite stop
the run before ``save_model`` writes anything, so ``latest`` keeps naming the last good version.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from models.artifacts import LATEST
from models.base import FitReport
from workers.model import LoadedModel
from workers.model_check import broken_reason

from monitor.errors import DataError, ModelFileError


def _need(ok: bool, flag: str, value, rule: str) -> None:
    if not ok:
        raise DataError(f"{flag} {value}: must be {rule}")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def validate_train_args(args: argparse.Namespace) -> None:
    """Refuse values no training can use, naming the flag and the rule."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    if get("epochs") is not None:
        _need(get("epochs") >= 1, "--epochs", get("epochs"), "1 or more")
    if get("seed") is not None:
        _need(get("seed") >= 0, "--seed", get("seed"), "0 or more")
    if get("holdout") is not None:
        _need(_finite(get("holdout")) and 0.0 < get("holdout") < 1.0, "--holdout", get("holdout"),
              "a fraction between 0 and 1 (exclusive)")
    if get("threshold_q") is not None:
        _need(_finite(get("threshold_q")) and 0.0 < get("threshold_q") < 1.0, "--threshold-q",
              get("threshold_q"), "a quantile between 0 and 1 (exclusive)")
    folds = get("threshold_folds")
    if folds:
        _need(folds >= 2, "--threshold-folds", folds, "0 (off) or 2 or more")
    if get("margin_factor") is not None:
        _need(_finite(get("margin_factor")) and get("margin_factor") >= 0, "--margin-factor",
              get("margin_factor"), "a finite number >= 0")
    if get("frames") is not None:
        _need(get("frames") >= 1, "--frames", get("frames"), "1 or more steps")
    for flag in ("step", "max_gap"):
        if get(flag) is not None:
            _need(_finite(get(flag)) and get(flag) > 0, f"--{flag.replace('_', '-')}", get(flag),
                  "a positive number of seconds")


def check_out_writable(out: str | Path) -> None:
    """The model root (or the nearest folder that exists above it) is writable by this user."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; --out takes a model folder")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    try:  # a real write: catches modes, ACLs and read-only mounts alike
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ModelFileError(f"{probe}: not writable by this user ({exc.strerror or exc}); the model "
                             f"cannot be saved under {out}") from None
    if (out / LATEST).exists() and not os.access(out / LATEST, os.R_OK):
        raise ModelFileError(f"{out / LATEST}: not readable by this user")


def check_fit(fit: FitReport, out: str | Path) -> None:
    """A non-finite final loss: the weights cannot be trusted; stop before the threshold."""
    if not _finite(fit.final_loss):
        raise ModelFileError(f"{out}: model not saved, training ended with a non-finite loss "
                             f"({fit.final_loss}) after {fit.epochs} epoch(s); {LATEST} left unchanged")


def check_trained(model: LoadedModel, out: str | Path) -> None:
    """The trained model with its threshold, tried on its probe windows before saving."""
    reason = broken_reason(model)
    if reason:
        raise ModelFileError(f"{out}: model not saved, {reason.replace('its ', 'the ')}; "
                             f"{LATEST} left unchanged")
