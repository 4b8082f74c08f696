"""Choosing alerting settings (gamma quantile, hysteresis) without deciding on the labels
they are judged by: leave-one-group-out cross-validation over labelled runs.

A benchmark like SKAB has labelled runs in groups (its folders: valve1, valve2, other). For
each group, the setting is chosen on the *other* groups' runs (the highest point F1 among the
settings whose false-alarm rate stays within a limit, or the lowest false-alarm rate when none
does) and applied to the group's own runs; the pooled counts of those held-out decisions are
an honest estimate of what choosing settings from labelled history gives on new runs.

The window scores are computed once; only the decision is re-run per setting, through the
product's own alerting stage (``StreamAlerts``), exactly as the live service decides.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.threshold import Threshold, fit_threshold
from workers.windowing import WindowScore

from monitor.alerting import AlertContext, HysteresisSpec, StreamAlerts
from monitor.evaluation.timeseries import flags_from_events, point_counts, point_metrics

COUNT_KEYS = ("tp", "fp", "fn", "tn")


@dataclass(frozen=True)
class AlertSetting:
    q: float
    hysteresis: HysteresisSpec
    #: the scorer configuration the scores came from, when configurations are chosen too
    config: str = ""

    @property
    def label(self) -> str:
        h = self.hysteresis
        return (f"{self.config} " if self.config else "") + f"q={self.q} open {h.k}/{h.n} close {h.m}"


def alert_flags(windows: Sequence[WindowScore], threshold: Threshold, spec: HysteresisSpec,
                n_rows: int) -> np.ndarray:
    """Rows inside a closed machine event when ``windows`` go through the alerting stage."""
    alerts = StreamAlerts(AlertContext(stream="run", scorer="", model_version="", sample_rate=1),
                          threshold, spec)
    events = [e for w in windows for e in alerts.update(w)] + alerts.finish()
    return flags_from_events([e for e in events if e["status"] == "closed"], n_rows)


def counts(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(tp, fp, fn, tn) of point decisions, as an array (runs' counts are summed)."""
    c = point_counts(truth, pred)
    return np.array([c[k] for k in COUNT_KEYS], dtype=np.int64)


def f1_far_mar(c: Iterable[int]) -> tuple[float, float, float]:
    """Point F1, false-alarm rate and missed-alarm rate (both in %) from (tp, fp, fn, tn)."""
    m = point_metrics(dict(zip(COUNT_KEYS, (int(v) for v in c))))
    return m["f1"], m["far"] or 0.0, m["mar"] or 0.0


def choose(counts_by_setting: dict[AlertSetting, np.ndarray], far_limit: float) -> AlertSetting:
    """The setting with the best F1 among those within ``far_limit`` % false alarms (ties: the
    first given); the lowest false-alarm rate when none is within it."""
    scored = [(s, *f1_far_mar(c)) for s, c in counts_by_setting.items()]
    within = [t for t in scored if t[2] <= far_limit]
    if within:
        return max(within, key=lambda t: t[1])[0]
    return min(scored, key=lambda t: t[2])[0]


def leave_one_group_out(per_run: dict[str, dict[AlertSetting, np.ndarray]], group_of: dict[str, str], *,
                        far_limit: float) -> dict[str, Any]:
    """``per_run[run][setting]`` = that run's (tp, fp, fn, tn) under the setting. Returns the
    setting chosen for each group (on the others), its held-out counts and the pooled figures."""
    groups = sorted(set(group_of.values()))
    if len(groups) < 2:
        raise ValueError("leave-one-group-out needs runs from at least two groups")
    settings = list(next(iter(per_run.values())))
    total = np.zeros(4, dtype=np.int64)
    out: dict[str, Any] = {"groups": {}}
    for g in groups:
        others = {s: sum(c[s] for r, c in per_run.items() if group_of[r] != g) for s in settings}
        pick = choose(others, far_limit)
        held = sum(c[pick] for r, c in per_run.items() if group_of[r] == g)
        total += held
        f1, far, mar = f1_far_mar(held)
        tf1, tfar, _ = f1_far_mar(others[pick])
        out["groups"][g] = {"chosen": pick.label, "chosen_on_others": {"f1": tf1, "far": tfar},
                            "held_out": {"f1": f1, "far": far, "mar": mar},
                            "runs": sum(group_of[r] == g for r in per_run)}
    f1, far, mar = f1_far_mar(total)
    out.update(f1=f1, far=far, mar=mar, **dict(zip(COUNT_KEYS, map(int, total))), far_limit=far_limit)
    return out


def refit(threshold: Threshold, holdout_scores: np.ndarray, q: float) -> Threshold:
    """The same calibrator as ``threshold`` at another quantile, on the same held-out scores."""
    return fit_threshold(holdout_scores, method=threshold.method, convention=threshold.convention or "dcase",
                         q=q, fitted_on=threshold.fitted_on)
