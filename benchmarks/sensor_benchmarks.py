"""Full SKAB / NAB runs for the sensor scorers (outside CI: tens of minutes on 2 CPU cores).

    .venv/bin/python benchmarks/sensor_benchmarks.py --out benchmarks/results/sensors \
        [--only arima,ae] [--protocols skab,nab-art,nab-real,nab-quiet] [--threads 1] [--defaults]

Each configuration is one call of ``monitor evaluate --protocol ...`` (the same functions).
``<protocol>-<scorer>-default`` rows run the scorer with no settings at all: window, training
stride and epochs come from its rules (``models/sensor_rules.py``, early stopping in
``models/base.py``), exactly what ``monitor evaluate`` / ``monitor train`` do without sensor
flags. Every other row is a hand-set variant, named by what it sets; those settings were fixed
per benchmark (TadGAN's 5 / 10 epochs and training strides 8 / 16 were cut to what 2 shared
CPU cores allowed). ``nab-quiet`` is NAB artificialNoAnomaly: every event there is a false
alarm. On NAB's overlapping alerting windows the defaults raise an event only once its peak
stands 13 % over the threshold (telemanom's pruning, ``models.threshold.confirm_ratio``);
``<protocol>-<scorer>-default-noconfirm`` rows are the defaults without it (``monitor evaluate
--no-confirm``), and the hand-set rows are pinned without it, as they ran.
``<protocol>-<scorer>-overlapq`` rows are the defaults with ``overlap_q`` (the gamma read
at the quantile at which the hysteresis opens on NAB's overlapping windows as often as on
independent ones; ``monitor evaluate --overlap-q``).
Results are written as JSON per configuration plus a summary table (``summary.md``);
``--summary`` rewrites it from the JSON files.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.evaluation.timeseries import SensorEvalOptions, evaluate_nab, evaluate_skab  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "timeseries"

SCORERS = ("tadgan", "lstm", "arima", "conv-ae", "ae")
PROTOCOLS = ("nab-art", "nab-real", "skab", "nab-quiet")
SUBSETS = {"nab-art": "artificialWithAnomaly", "nab-real": "realKnownCause", "nab-quiet": "artificialNoAnomaly"}
#: The defaults: no options at all.
DEFAULTS = {f"{p}-{s}-default": (p, s, {}) for p in PROTOCOLS for s in SCORERS}
#: Hand-set variants: name -> (protocol, scorer, options). SKAB runs train on 320 rows.
VARIANTS = {
    "skab-arima": ("skab", "arima", {}),
    "skab-ae": ("skab", "ae", {"frames": 10, "params": {"epochs": 100, "batch_size": 64}}),
    "skab-lstm": ("skab", "lstm", {"frames": 60, "params": {"context": 30, "horizon": 10, "epochs": 35}}),
    "skab-tadgan": ("skab", "tadgan", {"frames": 60, "params": {"epochs": 5}}),
    # the multivariate EWMA chart on the forecast residuals instead of the mean of |errors|
    "skab-arima-mewma": ("skab", "arima", {"params": {"combine": "mewma"}}),
    "skab-lstm-mewma": ("skab", "lstm", {"frames": 60, "params": {"context": 30, "horizon": 10, "epochs": 35,
                                                                  "combine": "mewma"}}),
    # the SKAB leaderboard's Conv-AE with its own defaults (window 60), added 2026-12-02
    "skab-conv-ae": ("skab", "conv-ae", {}),
    "nab-art-arima": ("nab-art", "arima", {}),
    # seasonal differencing at the lag of the highest training autocorrelation (no labels), in
    # Orion's 250-step windows; the zero-inflated gamma threshold takes its exact-zero errors
    "nab-art-arima-season250": ("nab-art", "arima", {"frames": 250, "params": {"season": "auto"}}),
    "nab-art-arima-season250-mewma": ("nab-art", "arima", {"frames": 250, "params": {"season": "auto",
                                                                                      "combine": "mewma"}}),
    "nab-art-ae": ("nab-art", "ae", {"frames": 10, "params": {"epochs": 50}}),
    "nab-art-lstm": ("nab-art", "lstm", {"frames": 260, "train_stride": 8, "params": {"epochs": 10}}),
    # the scorer's default 35 epochs (telemanom's), on a quiet machine
    "nab-art-lstm-35ep": ("nab-art", "lstm", {"frames": 260, "train_stride": 8, "params": {"epochs": 35}}),
    "nab-art-tadgan": ("nab-art", "tadgan", {"frames": 100, "train_stride": 8, "params": {"epochs": 5}}),
    "nab-art-conv-ae": ("nab-art", "conv-ae", {}),
    "nab-real-arima": ("nab-real", "arima", {}),
    "nab-real-arima-season250": ("nab-real", "arima", {"frames": 250, "params": {"season": "auto"}}),
    "nab-real-arima-season250-mewma": ("nab-real", "arima", {"frames": 250, "params": {"season": "auto",
                                                                                        "combine": "mewma"}}),
    "nab-real-ae": ("nab-real", "ae", {"frames": 10, "train_stride": 2, "params": {"epochs": 30}}),
    "nab-real-lstm": ("nab-real", "lstm", {"frames": 260, "train_stride": 16, "params": {"epochs": 15}}),
    "nab-real-lstm-35ep": ("nab-real", "lstm", {"frames": 260, "train_stride": 16, "params": {"epochs": 35}}),
    "nab-real-tadgan": ("nab-real", "tadgan", {"frames": 100, "train_stride": 16, "params": {"epochs": 10}}),
    "nab-real-conv-ae": ("nab-real", "conv-ae", {}),
}
#: Before the rules, the hand-set rows above that leave window or stride out used the fixed
#: window the scorer then declared and stride 1 (ARIMA season 0, TadGAN without a validation
#: split); pin them so a rerun measures the same thing.
_OLD_FRAMES = {"arima": 30, "ae": 10, "conv-ae": 60, "lstm": 260, "tadgan": 100}
for _name, (_p, _s, _kw) in VARIANTS.items():
    _kw.setdefault("frames", _OLD_FRAMES[_s])
    _kw.setdefault("train_stride", 1)
    if _s == "arima":
        _kw.setdefault("params", {}).setdefault("season", 0)
    if _s == "tadgan":  # trained on every window, all its epochs
        _kw.setdefault("params", {}).setdefault("validation", 0.0)
    if _p != "skab":  # raised every excursion over the threshold (no confirmation level yet)
        _kw.setdefault("confirm", False)
#: The defaults without the confirmation level on NAB's overlapping windows (``--no-confirm``):
#: what the defaults did before telemanom's pruning rule was adopted.
NO_CONFIRM = {f"{p}-{s}-default-noconfirm": (p, s, {"confirm": False}) for p in PROTOCOLS if p != "skab"
              for s in SCORERS}
#: The defaults with the overlap quantile on NAB (SKAB's one-step windows do not overlap).
OVERLAP_Q = {f"{p}-{s}-overlapq": (p, s, {"overlap_q": True}) for p in PROTOCOLS if p != "skab" for s in SCORERS}
CONFIGS = {**DEFAULTS, **VARIANTS, **NO_CONFIRM, **OVERLAP_Q}


def run(name: str, out: Path) -> dict:
    protocol, scorer, kw = CONFIGS[name]
    kw = dict(kw)
    opts = SensorEvalOptions(scorer=scorer, device="auto", params=kw.pop("params", {}), **kw)
    t0 = time.perf_counter()
    say = lambda m: print(f"  {m}", flush=True)  # noqa: E731
    if protocol == "skab":
        res = evaluate_skab(DATA / "SKAB", opts, progress=say)
    else:
        res = evaluate_nab(DATA / "NAB", SUBSETS[protocol], opts, progress=say)
    res["wall_seconds"] = round(time.perf_counter() - t0, 1)
    res["config"] = name
    (out / f"{name}.json").write_text(json.dumps(res, indent=2, default=str))
    return res


def line(res: dict) -> str:
    def f1_of(key: str) -> str:
        f1 = (res.get(key) or {}).get("f1")
        return "-" if f1 is None else f"{f1:.3f}"

    anchors = f"anchor rules F1: Orion {f1_of('anchor_rule')}, telemanom {f1_of('telemanom_rule')}"
    if res["protocol"] == "skab":
        skab = res.get("skab_rule")
        if skab:
            anchors += f", SKAB {skab['f1']:.3f} / FAR {skab['far']:.2f} %"
        return (f"| {res['config']} | F1 {res['f1']:.3f} | FAR {res['far']:.2f} % | MAR {res['mar']:.2f} % | "
                f"{anchors} | {res['fit_seconds_per_run']:.1f} s/run | {res['wall_seconds']:.0f} s |")
    return (f"| {res['config']} | F1 {res['f1']:.3f} | P {res['precision']:.3f} | R {res['recall']:.3f} | "
            f"tp {res['tp']} fp {res['fp']} fn {res['fn']} | {anchors} | "
            f"{res['fit_seconds_per_signal']:.1f} s/signal | {res['wall_seconds']:.0f} s |")


HEADERS = {"skab": "| config | F1 | FAR | MAR | anchors' rules | training | wall |\n|---|---|---|---|---|---|---|",
           "nab": "| config | F1 | precision | recall | counts | anchors' rules | training | wall |\n"
                  "|---|---|---|---|---|---|---|---|"}


def summarize(out: Path) -> None:
    """One table per protocol from the evaluate results in ``out`` (other JSON files there,
    such as ``drift_allowance.json``, are not evaluate results and are skipped)."""
    rows: dict[str, list[str]] = {k: [] for k in HEADERS}
    for f in sorted(out.glob("*.json")):
        res = json.loads(f.read_text())
        if not isinstance(res, dict) or res.get("protocol") not in HEADERS:
            continue
        res.setdefault("wall_seconds", float("nan"))
        res["config"] = f.stem
        rows[res["protocol"]].append(line(res))
    tables = [HEADERS[k] + "\n" + "\n".join(v) for k, v in rows.items() if v]
    (out / "summary.md").write_text("\n\n".join(tables) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sensors"))
    ap.add_argument("--only", help="comma-separated config names or scorers")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--defaults", action="store_true", help="only the -default rows")
    ap.add_argument("--summary", action="store_true", help="only rewrite summary.md from the JSON files")
    args = ap.parse_args()
    if args.summary:
        summarize(Path(args.out))
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    want = list(dict.fromkeys(args.only.split(","))) if args.only else None
    protos = set(args.protocols.split(","))
    order = [n for n in want if n in CONFIGS] if want else []  # named configs run in the order given
    for name, (protocol, scorer, _) in {**{n: CONFIGS[n] for n in order}, **CONFIGS}.items():
        if protocol not in protos or (want and name not in want and scorer not in want):
            continue
        if args.defaults and name not in DEFAULTS:
            continue
        print(f"== {name}", flush=True)
        res = run(name, out)
        print(line(res), flush=True)
        summarize(out)


if __name__ == "__main__":
    main()
