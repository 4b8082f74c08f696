"""Evaluate a model on labelled clips: DCASE clip AUC / pAUC, and the service's decisions.

Clip score = mean of all the clip's vector scores (the DCASE protocol). A clip is flagged
when the alerting stage (stored threshold + hysteresis) opens an event in it, which is the
decision the running service would make.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.artifacts import file_sha256
from workers.conditioned import looked_most_like, score_clips_conditioned
from workers.model import LoadedModel
from workers.offline import ClipResult

from monitor.alerting import AlertContext, HysteresisSpec, StreamAlerts
from monitor.conditions import condition_from_name
from monitor.datasets import ReadReport, list_clips, read_clip, require_usable
from monitor.errors import DataError

log = logging.getLogger(__name__)
PAUC_MAX_FPR = 0.1


def roc_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """ROC AUC and sklearn's standardised partial AUC (max_fpr 0.1); None if one class only."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.min() == labels.max():
        return {"auc": None, "pauc": None}
    return {"auc": float(roc_auc_score(labels, scores)),
            "pauc": float(roc_auc_score(labels, scores, max_fpr=PAUC_MAX_FPR))}


def decision_metrics(labels: np.ndarray, flagged: np.ndarray) -> dict[str, float | int | None]:
    y, p = np.asarray(labels, bool), np.asarray(flagged, bool)
    tp, fp = int((y & p).sum()), int((~y & p).sum())
    fn, tn = int((y & ~p).sum()), int((~y & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall and precision + recall else 0.0 if recall is not None else None)
    return {"precision": precision, "recall": recall, "f1": f1,
            "fpr": fp / (fp + tn) if fp + tn else None, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def flagged_by_alerting(model: LoadedModel, result: ClipResult,
                        spec: HysteresisSpec = HysteresisSpec()) -> tuple[bool, list[dict]]:
    """Run the alerting stage over one clip's windows: (an event opened?, the events)."""
    ctx = AlertContext(stream=result.name, scorer=model.name, model_version=model.version,
                       sample_rate=model.frontend.sample_rate)
    alerts = StreamAlerts(ctx, model.threshold, spec)
    events = [e for w in result.windows for e in alerts.update(w)] + alerts.finish()
    return alerts.opened_count > 0, events


def check_no_leak(model: LoadedModel, paths: list[Path]) -> None:
    """Refuse a test set that holds a clip the model trained on (by content hash)."""
    trained = set(model.meta.get("training", {}).get("clip_sha256", []))
    trained |= set(model.meta.get("training", {}).get("weak_clip_sha256", []))
    if not trained:
        return
    leaks = [p.name for p in paths if file_sha256(p) in trained]
    if leaks:
        raise DataError(f"{paths[0].parent}: {len(leaks)} test clip(s) were used to train this model "
                        f"(same content): {', '.join(leaks[:5])}{' ...' if len(leaks) > 5 else ''}")


def evaluate_audio(model: LoadedModel, data: str | Path, *,
                   hysteresis: HysteresisSpec = HysteresisSpec(), channel: int | str | None = None,
                   progress=None,
                   condition_of: Callable[[str], str | None] = condition_from_name) -> dict[str, Any]:
    """``progress(n)``: called as each clip has been read (scoring follows reading closely)."""
    if getattr(model.frontend, "kind", None) == "sensor":
        raise DataError(f"{model.folder}: a sensor model (channels {', '.join(model.frontend.spec.channels)}) "
                        f"cannot score the audio clips of {data}; evaluate sensor scorers with "
                        "--protocol skab|nab, or replay a CSV with `monitor replay --model ... --data FILE.csv`")
    clips = [c for c in list_clips(data) if c.label in ("normal", "anomaly")]
    if not clips:
        raise DataError(f"{data}: no clips named 'normal' or 'anomaly' (evaluation needs the label "
                        "in each file name)")
    check_no_leak(model, [c.path for c in clips])
    report = ReadReport()
    sr = model.frontend.sample_rate
    min_samples = model.window.samples(sr)[0]
    audio = {}

    def read_all():
        for c in clips:
            a = read_clip(c.path, sample_rate=sr, min_samples=min_samples, report=report, channel=channel)
            if progress is not None:
                progress(1)
            if a is not None:
                audio[c.path.name] = (c, a)
                yield c.path.name, a

    results = score_clips_conditioned(model, read_all(), condition_of)
    require_usable(data, len(clips), len(results), report, what="labelled clips")
    rows = []
    for r in results:
        clip = audio[r.name][0]
        flagged, events = flagged_by_alerting(model, r, hysteresis) if model.threshold else (False, [])
        rows.append({"clip": r.name, "label": clip.label, "domain": clip.domain, "section": clip.section,
                     "score": r.clip_score, "flagged": flagged,
                     "max_window_score": max((w.score for w in r.windows), default=None),
                     "events": sum(e["status"] == "open" for e in events)})
        like = looked_most_like(model, audio[r.name][1])
        if like is not None:  # condition-clf: what the clip sounded like, beside what it claimed
            rows[-1].update({"condition": condition_of(r.name), "looked_most_like": like[0],
                             "condition_distances": like[1]})
    y = np.array([r["label"] == "anomaly" for r in rows])
    s = np.array([r["score"] for r in rows])
    out: dict[str, Any] = {"model": str(model.folder), "model_version": model.version,
                           "scorer": model.name, "data": str(data), "clips": len(rows),
                           "normal": int((~y).sum()), "anomaly": int(y.sum()), **roc_metrics(y, s)}
    out["threshold"] = model.threshold.to_dict() if model.threshold else None
    out.update(decision_metrics(y, np.array([r["flagged"] for r in rows])))
    domains = sorted({r["domain"] for r in rows if r["domain"]})
    if domains:
        out["domains"] = {}
        for d in domains:
            sel = np.array([r["domain"] == d or r["label"] == "anomaly" for r in rows])
            out["domains"][d] = roc_metrics(y[sel], s[sel])
    own = [r["looked_most_like"] == r["condition"] for r in rows if "looked_most_like" in r and r["label"] == "normal"]
    if own:
        out["normal_clips_nearest_own_condition"] = sum(own) / len(own)
    out["read"] = report.to_dict()
    out["rows"] = rows
    out["_results"] = results
    return out
