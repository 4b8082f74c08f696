"""Plots a maintenance engineer reads: score timeline with threshold and events, score
histograms with the fitted gamma, ROC curve, spectrogram with anomalous frames marked."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.threshold import Threshold, gamma_pdf


def _plt():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def timeline(path: str | Path, *, streams: dict[str, tuple[np.ndarray, np.ndarray]],
             threshold: Threshold, events: list[dict[str, Any]], title: str = "") -> Path:
    """``streams`` maps a stream to (window start times in s, window scores)."""
    plt = _plt()
    n = max(1, len(streams))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.2 * n + 0.6), squeeze=False, sharex=False)
    for ax, (name, (t, s)) in zip(axes[:, 0], streams.items()):
        ax.plot(t, s, lw=1.0, label="window score")
        ax.axhline(threshold.value, color="tab:red", ls="--", lw=1,
                   label=f"threshold {threshold.value:.4g} ({threshold.method})")
        for e in events:
            if e["stream"] == name and e["status"] == "closed":
                ax.axvspan(e["start"], e["end"], color="tab:orange", alpha=0.3)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_ylabel("score")
    axes[-1, 0].set_xlabel("time (s); shaded = anomaly events")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def spectrogram(path: str | Path, *, logmel: np.ndarray, hop_s: float,
                marked: list[tuple[float, float]], title: str = "") -> Path:
    """Log-mel ``[frames, mels]`` with the time spans in ``marked`` shaded."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.imshow(logmel.T, origin="lower", aspect="auto", cmap="magma",
              extent=(0, len(logmel) * hop_s, 0, logmel.shape[1]))
    for a, b in marked:
        ax.axvspan(a, b, color="cyan", alpha=0.25)
    ax.set_xlabel("time (s); shaded = anomalous windows")
    ax.set_ylabel("mel band")
    ax.set_title(title, fontsize=9, loc="left")
    fig.tight_layout()
    return _save(fig, path)


def score_histogram(path: str | Path, *, normal: np.ndarray, anomaly: np.ndarray,
                    threshold: Threshold | None, title: str = "", fit_scores: np.ndarray | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    allv = np.concatenate([normal, anomaly]) if len(anomaly) else normal
    bins = np.linspace(allv.min(), allv.max(), 30)
    ax.hist(normal, bins=bins, alpha=0.6, density=True, label=f"normal ({len(normal)})")
    if len(anomaly):
        ax.hist(anomaly, bins=bins, alpha=0.6, density=True, label=f"anomaly ({len(anomaly)})")
    if threshold is not None:
        x = np.linspace(bins[0], bins[-1], 400)
        pdf = gamma_pdf(x, threshold)
        if pdf is not None:
            ax.plot(x, pdf, color="k", lw=1.2, label=f"fitted gamma ({threshold.fitted_on})")
        ax.axvline(threshold.value, color="tab:red", ls="--", label=f"threshold {threshold.value:.4g}")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def roc_curve(path: str | Path, *, labels: np.ndarray, scores: np.ndarray, title: str = "") -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve as _roc  # noqa: PLC0415

    plt = _plt()
    fpr, tpr, _ = _roc(labels, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(labels, scores):.3f}")
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.axvspan(0, 0.1, color="grey", alpha=0.1, label="pAUC region (FPR <= 0.1)")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
