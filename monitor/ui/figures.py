"""The event page's figure: the log-mel spectrogram of the stored event audio with the windows
over the threshold shaded, and the windows' score trace against the threshold; for a sensor
event, each channel's trace over the stored rows with the event's start and end marked, the
channels the explanation names first (``sensor_figure``).

The window scores come from the service's windows log (``service.windows_log``), the exact
scores the service alerted on; without it the figure shades the event's whole span and says so.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

#: How much of the windows log's end is searched for an event's windows.
TAIL_BYTES = 32 << 20
#: Channels drawn in a sensor event's figure (the explanation's first); the rest are named.
MAX_CHANNELS = 12


def event_windows(ev: dict[str, Any], windows_log: str | Path, lo: int, hi: int) -> list[tuple[int, float]]:
    """(start sample, score) of the stream's windows starting in [lo, hi), from the log's tail."""
    path = Path(windows_log)
    if not path.is_file():
        return []
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - TAIL_BYTES))
        data = f.read()
    needle = json.dumps(ev["stream"]).encode()
    out = {}
    for line in data.split(b"\n"):
        if needle not in line:
            continue
        try:
            w = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (w.get("stream") == ev["stream"] and w.get("model_version") == ev.get("model_version")
                and lo <= w["start_sample"] < hi):
            out[w["start_sample"]] = float(w["score"])
    return sorted(out.items())


def log_mel(y: np.ndarray, sr: int, *, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """``[n_mels, frames]`` log-mel power in dB, for display (numpy only: librosa's first
    melspectrogram call JIT-compiles for ~6 s, too long for a page to wait)."""
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    n = 1 + (len(y) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(y[idx] * np.hanning(n_fft), axis=1)) ** 2  # [frames, bins]
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    edges_hz = 700.0 * (10 ** (np.linspace(mel(0.0), mel(sr / 2), n_mels + 2) / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lo, mid, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    fb = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return 10.0 * np.log10(fb @ power.T + 1e-10)


def event_figure(ev: dict[str, Any], wav: Path, *, windows_log: str = "") -> bytes:
    import matplotlib  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    side_path = wav.with_suffix(".json")
    side = json.loads(side_path.read_text()) if side_path.is_file() else {}
    audio, sr = sf.read(wav, dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    a0 = int(side.get("audio_start_sample", ev.get("start_sample", 0)))
    hop = 256
    logmel = log_mel(audio, sr, n_fft=1024, hop=hop, n_mels=64)
    wins = event_windows(ev, windows_log, a0 - 10 * sr, a0 + len(audio)) if windows_log else []
    thr = ev.get("threshold")
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 2]})
    dur = len(audio) / sr
    ax.imshow(logmel, origin="lower", aspect="auto", cmap="magma", extent=(0, dur, 0, logmel.shape[0]))
    ax.set_ylabel("mel band")
    if wins:
        starts = [s for s, _ in wins]
        stride = int(np.median(np.diff(starts))) if len(starts) > 1 else sr // 2
        t = [(s - a0) / sr for s in starts]
        for (s, v), ts in zip(wins, t):
            if thr is not None and v > thr:
                ax.axvspan(max(ts, 0), min(ts + stride / sr, dur), color="cyan", alpha=0.3)
        bx.plot(t, [v for _, v in wins], marker=".", color="tab:blue", label="window score")
        note = "shaded = windows over the threshold (service windows log)"
    else:
        e0 = (ev.get("start_sample", a0) - a0) / sr
        e1 = (ev.get("end_sample", a0 + len(audio)) - a0) / sr
        ax.axvspan(max(e0, 0), min(e1, dur), color="cyan", alpha=0.2)
        note = "shaded = the event's span (no windows log configured: per-window scores unknown)"
    if thr is not None:
        bx.axhline(thr, color="tab:red", linestyle="--", label=f"threshold {thr:.4g}")
    if "peak_score" in ev:
        bx.axhline(ev["peak_score"], color="grey", linestyle=":", label=f"peak {ev['peak_score']:.4g}")
    bx.set_xlim(0, dur)
    bx.set_xlabel("seconds from the start of the kept audio")
    bx.set_ylabel("score")
    bx.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{ev['stream']}  {ev['event_id']}  ({note})", fontsize=8, loc="left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()



def channel_order(ev: dict[str, Any], channels: list[str]) -> list[str]:
    """The channels the event's explanation names, in its order, then the others as stored."""
    top = (ev.get("explanation") or {}).get("top_features") or []
    named = [t.get("name") for t in top if isinstance(t, dict) and t.get("name") in channels]
    named = list(dict.fromkeys(named))
    return named + [c for c in channels if c not in named]


def sensor_figure(ev: dict[str, Any], doc: dict[str, Any], *, windows_log: str = "") -> bytes:
    """A sensor event's channels over its stored rows (``sensor_events.py``): one panel per
    channel, the event's span shaded and its start and end marked, x in seconds from the start;
    below them the windows' scores against the threshold when the windows log has them."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    channels = list(doc["channels"])
    step = float(doc["step_s"])
    index = np.asarray(doc["index"], dtype=np.int64)
    values = np.array([[np.nan if v is None else v for v in r] for r in doc["rows"]],
                      dtype=np.float64).reshape(len(index), len(channels))
    start = int(ev.get("start_sample", doc["event_start_index"]))
    end = int(ev.get("end_sample", doc["event_end_index"]))
    t = (index - start) * step
    e1 = (end - start) * step
    shares = {x.get("name"): x.get("share") for x in (ev.get("explanation") or {}).get("top_features") or []
              if isinstance(x, dict)}
    order = channel_order(ev, channels)
    shown, hidden = order[:MAX_CHANNELS], order[MAX_CHANNELS:]
    lo, hi = int(index[0]) if len(index) else start, int(index[-1]) + 1 if len(index) else end
    wins = event_windows(ev, windows_log, lo, hi) if windows_log else []
    n = len(shown) + bool(wins)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.0 + 1.15 * n), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, name in zip(axes, shown):
        col = values[:, channels.index(name)]
        named = name in shares
        ax.plot(t, col, color="tab:red" if named else "tab:blue", linewidth=1.2, marker="." if len(t) < 80 else None)
        ax.axvspan(0, e1, color="orange", alpha=0.15)
        for x in (0, e1):
            ax.axvline(x, color="black", linestyle="--", linewidth=0.8)
        label = name if not named or shares[name] is None else f"{name}  ({shares[name]:.0%} of the score)"
        ax.text(0.005, 0.92, label, transform=ax.transAxes, fontsize=8, va="top",
                fontweight="bold" if named else "normal")
        ax.tick_params(labelsize=7)
    if wins:
        bx = axes[-1]
        thr = ev.get("threshold")
        bx.plot([(s - start) * step for s, _ in wins], [v for _, v in wins], marker=".",
                color="tab:blue", label="window score")
        if thr is not None:
            bx.axhline(thr, color="tab:red", linestyle="--", label=f"threshold {thr:.4g}")
        bx.axvspan(0, e1, color="orange", alpha=0.15)
        for x in (0, e1):
            bx.axvline(x, color="black", linestyle="--", linewidth=0.8)
        bx.set_ylabel("score", fontsize=8)
        bx.legend(loc="upper right", fontsize=7)
        bx.tick_params(labelsize=7)
    if len(t):
        axes[-1].set_xlim(min(t[0], 0), max(t[-1] + step, e1))
    axes[-1].set_xlabel(f"seconds from the event's start (one row per {step:g} s; dashed: start and end)")
    note = "shaded = the event's span" + ("" if doc.get("complete", True) else
                                          "; the store kept part of its rows only")
    if hidden:
        note += f"; not drawn: {', '.join(hidden)}"
    axes[0].set_title(f"{ev['stream']}  {ev['event_id']}  ({note})", fontsize=8, loc="left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
