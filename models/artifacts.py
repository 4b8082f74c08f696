"""Model directories: ``weights.pt`` (a flat state_dict of tensors) + ``meta.json``.

A model root holds versioned folders and a ``latest`` file naming the current one::

    M/
      latest                      # "ae-20261123T104501-3f2a9c1e"
      ae-20261123T104501-3f2a9c1e/
        meta.json  weights.pt

Weights are loaded with ``weights_only=True``: a foreign pickle is refused, never executed.
Every failure is a ``ModelFileError`` naming the file.
"""
from __future__ import annotations

import hashlib
import io
import json
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
    root.mkdir(parents=True, exist_ok=True)
    version = meta["model_version"]
    final = root / version
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buf)
    (tmp / WEIGHTS).write_bytes(buf.getvalue())
    (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if final.exists():
        raise ModelFileError(f"{final}: a model version of that name already exists")
    os.replace(tmp, final)
    set_latest(root, version)
    return final


def set_latest(root: str | Path, version: str) -> None:
    """Atomically point ``root/latest`` at ``version`` (a running service picks it up)."""
    root = Path(root)
    tmp = root / f".{LATEST}.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, root / LATEST)


def resolve_model_dir(path: str | Path) -> Path:
    """A version folder as given, or the one a root's ``latest`` names."""
    path = Path(path)
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
