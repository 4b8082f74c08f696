"""What training tells a scorer about its vectors beyond the audio (``Scorer.fit_context``)."""
from __future__ import annotations

from typing import Any

import torch

from models.base import Scorer


def fit_context(cls: type[Scorer], vectors_of: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The ``fit`` keywords ``cls`` asks for, one value per vector of ``vectors_of`` (clip name
    -> its vectors, in the order training concatenates them)."""
    out: dict[str, Any] = {}
    if "clip_ids" in cls.fit_context:
        out["clip_ids"] = torch.cat([torch.full((len(v),), i, dtype=torch.long)
                                     for i, v in enumerate(vectors_of.values())])
    return out
