"""What ``check-config`` finds wrong beyond types and ranges: things on this machine.

``load_config`` checks the file by itself (keys, types, ranges, duplicates). Here: does the
config route anything, are the TLS files there and readable, can the service write where its
sinks point. Each problem is one line naming the key; all are reported at once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monitor.kafka.security import security_problems


def config_problems(cfg: Any, *, routes_required: bool = True) -> list[str]:
    problems = []
    if routes_required and not cfg.models:
        problems.append("models: no routes; add at least one '- streams: GLOB' with 'model: FOLDER' "
                        "(without one every message goes to the dead-letter topic)")
    problems += security_problems(cfg.kafka)
    for key, value in (("sinks.jsonl", cfg.sinks.jsonl), ("service.windows_log", cfg.service.windows_log)):
        if value:
            problem = _file_target_problem(Path(value))
            if problem:
                problems.append(f"{key}: {value}: {problem}")
    if cfg.sinks.event_audio:
        problem = _folder_target_problem(Path(cfg.sinks.event_audio))
        if problem:
            problems.append(f"sinks.event_audio: {cfg.sinks.event_audio}: {problem}")
    return problems


def _writable_dir(folder: Path) -> str | None:
    if not folder.exists():
        return f"the folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable by this user"
    return None


def _file_target_problem(path: Path) -> str | None:
    if path.exists():
        if path.is_dir():
            return "is a folder, not a file"
        return None if os.access(path, os.W_OK) else "the file is not writable by this user"
    return _writable_dir(path.parent if str(path.parent) else Path("."))


def _folder_target_problem(path: Path) -> str | None:
    if path.exists():
        return _writable_dir(path)
    return _writable_dir(path.parent)  # the service creates the folder itself
