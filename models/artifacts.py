"""Model directories: ``weights.pt`` (a flat state_dict of tensors) + ``meta.json``.

A model root holds versioned folders and a ``latest`` file naming the current one::

    M/
      latest                      # "ae-20261123T104501-3f2a9c1e"
      ae-20261123T104501-3f2a9c1e/
        meta.json  weights.pt

Weights are loaded with ``weights_only=True``: a foreign pickle is refused, never executed.
Every failure is a ``ModelFileError`` naming the file. A version whose weights, loss or
threshold are not finite is refused before anything is written, so ``latest`` never names a
broken model. Folders and files are created readable by group and others as far as the
process umask allows (a service running as another user reads models copied from elsewhere).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .errors import ModelFileError

FORMAT = "monitor-model/1"
META = "meta.json"
WEIGHTS = "weights.pt"
LATEST = "latest"
#: A few of the training windows (the scorer's input ``[k, T, F]``), stored beside the weights
#: so a new version can be tried on real input before it goes live (hot reload).
PROBE = "probe.windows"
REQUIRED_META = ("format", "scorer", "model_version", "input", "features", "threshold")


def new_model_version(scorer: str, state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return f"{scorer}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{digest.hexdigest()[:8]}"


def save_model(root: str | Path, *, meta: dict[str, Any], state: dict[str, torch.Tensor]) -> Path:
    """Write a new version under ``root`` and point ``root/latest`` at it; returns its folder."""
    root = Path(root)
    meta = {"format": FORMAT, **meta}
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ModelFileError(f"{root}: meta is missing {missing}")
    broken = broken_model_reason(meta, state)
    if broken:
        raise ModelFileError(f"{root}: model not saved, {broken}; {LATEST} left unchanged")
    version = meta["model_version"]
    final = root / version
    if final.exists():
        raise ModelFileError(f"{final}: a model version of that name already exists")
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
        os.chmod(tmp, 0o777 & ~process_umask())  # mkdtemp makes 0700: unreadable to a service user
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buf)
        (tmp / WEIGHTS).write_bytes(buf.getvalue())
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, final)
        set_latest(root, version)
    except OSError as exc:
        raise ModelFileError(f"{exc.filename or root}: cannot write the model ({exc.strerror or exc})") from None
    return final


def broken_model_reason(meta: dict[str, Any], state: dict[str, torch.Tensor]) -> str | None:
    """Why a trained model must not go live (a non-finite loss, threshold or weight), or None."""
    loss = meta.get("training", {}).get("fit", {}).get("final_loss")
    if isinstance(loss, (int, float)) and not math.isfinite(loss):
        return f"training ended with a non-finite loss ({loss})"
    thr = meta.get("threshold")
    value = thr.get("value") if isinstance(thr, dict) else None
    if isinstance(value, (int, float)) and not math.isfinite(value):
        return f"the fitted threshold is not finite ({value})"
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        return f"non-finite values in {', '.join(sorted(bad)[:3])}"
    return None


def process_umask() -> int:
    """The process umask, read without changing it where Linux allows (threads share it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def set_latest(root: str | Path, version: str) -> None:
    """Atomically point ``root/latest`` at ``version`` (a running service picks it up)."""
    root = Path(root)
    tmp = root / f".{LATEST}.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, root / LATEST)


def resolve_model_dir(path: str | Path) -> Path:
    """A version folder as given, or the one a root's ``latest`` names."""
    path = Path(path)
    try:
        return _resolve(path)
    except PermissionError as exc:
        raise ModelFileError(f"{exc.filename or path}: permission denied (the user running the monitor "
                             "must be able to read the model folders: chmod -R a+rX, or give them "
                             "its group)") from None


def _resolve(path: Path) -> Path:
    if (path / META).is_file():
        return path
    latest = path / LATEST
    if latest.is_file():
        version = latest.read_text().strip()
        if not version or "/" in version or version.startswith("."):
            raise ModelFileError(f"{latest}: does not name a model version ({version!r})")
        target = path / version
        if not (target / META).is_file():
            raise ModelFileError(f"{latest}: names {version!r}, but {target / META} does not exist")
        return target
    if not path.exists():
        raise ModelFileError(f"{path}: model directory does not exist")
    raise ModelFileError(f"{path}: not a model directory (no {META} and no {LATEST})")


def read_model(path: str | Path) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """(version folder, meta, state) of a model; every problem names the file it is in."""
    folder = resolve_model_dir(path)
    meta_path, weights_path = folder / META, folder / WEIGHTS
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{meta_path}: unreadable model metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{meta_path}: not a {FORMAT} file (format = {found!r})")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ModelFileError(f"{meta_path}: missing keys {missing}")
    if not weights_path.is_file():
        raise ModelFileError(f"{weights_path}: missing")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...: all one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{weights_path}: cannot be loaded as weights ({first[:200]})") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelFileError(f"{weights_path}: not a flat dict of tensors")
    return folder, meta, state


def split_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.`` with the prefix removed."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}


def fingerprint_files(paths: list[Path]) -> dict[str, Any]:
    """A content hash of the training data, so a model says what it was trained on."""
    digest = hashlib.sha256()
    total = 0
    for p in sorted(paths, key=lambda p: p.name):
        digest.update(p.name.encode())
        digest.update(file_sha256(p).encode())
        total += p.stat().st_size
    return {"sha256": digest.hexdigest(), "files": len(paths), "bytes": total}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
