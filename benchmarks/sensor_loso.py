"""Leave-one-subset-out check of the sensor defaults, from the JSON results of
``benchmarks/sensor_benchmarks.py`` (no training here).

    .venv/bin/python benchmarks/sensor_loso.py   # writes benchmarks/results/sensors/loso.{md,json}

For each scorer there are three candidate settings: its default (rules from the training rows,
fixed before any default run; no subset's labels chose them), the default without the
confirmation level on NAB's overlapping windows (``--no-confirm``; on SKAB, whose windows do
not overlap, it is the default) and the hand-set rows (settings written per benchmark, each
chosen on the subset it is reported on). For each labelled subset
(NAB artificialWithAnomaly, NAB realKnownCause, SKAB), the candidate with the highest mean F1 on
the *other two* is "chosen" (ties go to the default; "not run" = a candidate lacks a result
there), and its F1 on the held-out subset is what a user with no labels
for that kind of data would get. NAB artificialNoAnomaly (no anomalies: every event is a false
alarm) is reported beside it for the defaults.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sensor_readme_table import HAND_SET, RESULTS, SCORERS, load  # noqa: E402

LABELLED = ("nab-art", "nab-real", "skab")


def candidates(scorer: str) -> dict[str, dict[str, dict | None]]:
    out = {"default": {p: load(f"{p}-{scorer}-default") for p in LABELLED}}
    out["no-confirm"] = {p: load(f"{p}-{scorer}-default" + ("" if p == "skab" else "-noconfirm")) for p in LABELLED}
    for label, (sk, art, real, _) in HAND_SET.items():
        if label.startswith(f"{scorer}, hand-set (") or label == f"{scorer}, hand-set":
            out["hand-set"] = {"nab-art": load(art), "nab-real": load(real), "skab": load(sk)}
    return out


def check(scorer: str) -> dict:
    cands = candidates(scorer)
    rows = {}
    for held in LABELLED:
        others = [p for p in LABELLED if p != held]
        scored = {}
        for name, res in cands.items():
            if all(res.get(p) for p in others):
                scored[name] = sum(res[p]["f1"] for p in others) / len(others)
        # every candidate must have run on the other two (ties go to the default)
        chosen = max(scored, key=scored.get) if len(scored) == len(cands) else None
        got = cands[chosen].get(held) if chosen else None
        default = cands["default"].get(held)
        rows[held] = {"chosen_on_others": chosen, "others_mean_f1": scored,
                      "held_out_f1": got["f1"] if got else None,
                      "default_f1": default["f1"] if default else None,
                      "default_far": default.get("far") if default else None}
    quiet, loud = load(f"nab-quiet-{scorer}-default"), load(f"nab-quiet-{scorer}-default-noconfirm")
    return {"scorer": scorer, "subsets": rows,
            "quiet_events": [r["detected"] for r in quiet["rows"]] if quiet else None,
            "quiet_events_no_confirm": [r["detected"] for r in loud["rows"]] if loud else None}


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    results = [check(s) for s in SCORERS]
    lines = ["| scorer | held out | chosen on the other two | its held-out F1 | default's F1 |",
             "|---|---|---|---|---|"]
    for r in results:
        for held, row in r["subsets"].items():
            far = f" (FAR {row['default_far']:.2f} %)" if row["default_far"] is not None else ""
            lines.append(f"| {r['scorer']} | {held} | {row['chosen_on_others'] or 'not run'} | {fmt(row['held_out_f1'])} | "
                         f"{fmt(row['default_f1'])}{far} |")
    lines += ["", "| scorer | NAB artificialNoAnomaly events per series, default | the same, `--no-confirm` |",
              "|---|---|---|"]
    lines += [f"| {r['scorer']} | {r['quiet_events'] if r['quiet_events'] is not None else '-'} | "
              f"{r['quiet_events_no_confirm'] if r['quiet_events_no_confirm'] is not None else '-'} |" for r in results]
    (RESULTS / "loso.md").write_text(__doc__.split("\n\n", 2)[2].strip() + "\n\n" + "\n".join(lines) + "\n")
    (RESULTS / "loso.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
