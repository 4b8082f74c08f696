"""Operating conditions of clips, and what training tells a scorer beyond the audio.

A condition is the machine and program a clip was recorded under. It comes from the clip
name when the name carries it (DCASE 2020 ``id_XX``; DCASE 2022+ ``section_XX`` and the
attribute tokens after the clip number, e.g. a valve's ``pat_01``: ``section_00_pat_01``) or
from a CSV the user passes (``clip`` column, then condition columns, joined by ``_``).
"""
from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.base import Scorer

from .errors import DataError

_MACHINE = re.compile(r"(?:^|_)(section|id)_(\d+)(?=_|$)")
_ATTRIBUTES = re.compile(r"(?:^|_)(?:normal|anomaly)_\d+_(.+)$")


def condition_from_name(name: str) -> str | None:
    """``section_00_source_test_normal_0001_pat_01.wav`` -> ``section_00_pat_01``; None when
    the name carries neither a machine nor attributes."""
    stem = Path(name).stem
    machine, attrs = _MACHINE.search(stem), _ATTRIBUTES.search(stem)
    parts = ([f"{machine.group(1)}_{machine.group(2)}"] if machine else []) + ([attrs.group(1)] if attrs else [])
    return "_".join(parts) or None


def read_conditions_csv(path: str | Path) -> dict[str, str]:
    """``clip,<column>...`` rows -> clip file name -> condition (the columns' values joined)."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the conditions file ({exc.strerror})") from None
    if not rows or "clip" not in rows[0] or len(rows[0]) < 2:
        raise DataError(f"{path}: a conditions file needs a 'clip' column and one or more condition columns")
    cols = [c for c in rows[0] if c != "clip"]
    out = {}
    for n, row in enumerate(rows, 2):
        values = [(row.get(c) or "").strip() for c in cols]
        if not row["clip"] or not all(values):
            raise DataError(f"{path}:{n}: empty clip name or condition value")
        out[Path(row["clip"]).name] = "_".join(values)
    return out


def condition_lookup(conditions_csv: str | Path | None) -> Callable[[str], str | None]:
    """The condition of a clip name: from the CSV when given (a clip missing from it is an
    error), else from the name."""
    if conditions_csv is None:
        return condition_from_name
    table = read_conditions_csv(conditions_csv)

    def lookup(name: str) -> str:
        try:
            return table[Path(name).name]
        except KeyError:
            raise DataError(f"{conditions_csv}: no condition for clip {Path(name).name}") from None
    return lookup


def fit_context(cls: type[Scorer], vectors_of: dict[str, torch.Tensor], *,
                condition_of: Callable[[str], str | None] = condition_from_name,
                exposure: torch.Tensor | None = None) -> dict[str, Any]:
    """The ``fit`` keywords ``cls`` asks for, one value per vector of ``vectors_of`` (clip name
    -> its vectors, in the order training concatenates them)."""
    out: dict[str, Any] = {}
    if "clip_ids" in cls.fit_context:
        out["clip_ids"] = torch.cat([torch.full((len(v),), i, dtype=torch.long)
                                     for i, v in enumerate(vectors_of.values())])
    if "conditions" in cls.fit_context:
        named = {n: condition_of(n) for n in vectors_of}
        if any(c is not None for c in named.values()):
            missing = [n for n, c in named.items() if c is None]
            if missing:
                raise DataError(f"no condition in the names of {len(missing)} training clip(s), e.g. "
                                f"{missing[0]} (name them as DCASE does or pass --conditions FILE)")
            out["conditions"] = [named[n] for n, v in vectors_of.items() for _ in range(len(v))]
    if "exposure" in cls.fit_context and exposure is not None:
        out["exposure"] = exposure
    elif exposure is not None:
        raise DataError(f"--exposure: scorer {cls.name!r} does not learn from other machines' clips")
    return out
