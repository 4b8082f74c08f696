"""Scoring with a stream's operating condition, for scorers that know several.

A scorer with ``with_condition(name)`` (``condition-clf``) scores a stream against the
condition it runs under; binding happens once per stream (or per group of clips), so the
scorer API stays ``score(batch) -> [B]``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import numpy as np

from models.errors import ScorerError

from .features import stack_frames
from .model import LoadedModel
from .offline import ClipResult, score_clips


def needs_condition(model: LoadedModel) -> bool:
    return hasattr(model.scorer, "with_condition")


def bind_condition(model: LoadedModel, condition: str | None) -> LoadedModel:
    """``model`` scoring against ``condition`` (unchanged for scorers without conditions).
    An unknown condition, or none for a model that knows several, raises ``ScorerError``
    naming the known ones: at load, not at the first score."""
    if not needs_condition(model):
        if condition is not None:
            raise ScorerError(f"{model.name}: condition {condition!r} given, but this scorer "
                              "knows no conditions")
        return model
    if condition is None:
        model.scorer.condition_index()  # raises unless the model knows one condition only
        return model
    return dataclasses.replace(model, scorer=model.scorer.with_condition(condition))


def score_clips_conditioned(model: LoadedModel, clips: Iterable[tuple[str, np.ndarray]],
                            condition_of: Callable[[str], str | None]) -> list[ClipResult]:
    """``score_clips`` with every clip scored under its own condition; results in input order."""
    clips = list(clips)
    if not needs_condition(model):
        return score_clips(model, clips)
    groups: dict[str | None, list[tuple[str, np.ndarray]]] = {}
    for name, audio in clips:
        groups.setdefault(condition_of(name), []).append((name, audio))
    done = {r.name: r for cond, items in groups.items()
            for r in score_clips(bind_condition(model, cond), items)}
    return [done[name] for name, _ in clips]


def looked_most_like(model: LoadedModel, audio: np.ndarray) -> tuple[str, dict[str, float]] | None:
    """For a scorer that knows conditions: the condition a clip's audio looked most like (its
    patches' mean embedding nearest that condition's centres) and the distance to each; None
    for other scorers or audio shorter than one vector."""
    scorer = model.scorer
    if not hasattr(scorer, "looked_most_like"):
        return None
    fe, spec = model.frontend, scorer.input_spec
    n = fe.spec.frames_in(len(audio))
    if n < spec.frames:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(audio, dtype=np.float32), fe.frame_len)
    vectors = stack_frames(fe.features(np.ascontiguousarray(frames[::fe.frame_hop][:n])),
                           n_frames=spec.frames, hop=spec.hop)
    return scorer.looked_most_like(vectors)
