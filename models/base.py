"""The scorer contract every model in ``models/`` follows (DESIGN §4.1).

A scorer sees float tensors ``[B, T, F]`` (B vectors of T frames x F features) and returns
``[B]`` scores, higher = more anomalous. It never applies a threshold, and ``score`` never
changes its state: only ``fit`` learns.
"""
from __future__ import annotations

import copy
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import ScorerError
from .sensor_rules import SensorRule

#: ``progress(epoch, epochs, loss)``; the CLI passes a tqdm bar or a log line.
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class InputSpec:
    """The shape of one scorer input: ``frames`` x ``features``, vectors ``hop`` frames apart."""

    frames: int
    features: int
    hop: int = 1

    def __post_init__(self) -> None:
        if min(self.frames, self.features, self.hop) < 1:
            raise ScorerError(f"input spec must be positive: {self}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitReport:
    """What training did, for ``meta.json`` and the closing log line."""

    epochs: int
    seconds: float
    final_loss: float
    n_windows: int
    extra: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` = CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScorerError(f"device {device!r} requested but CUDA is not available (use auto or cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ScorerError(f"unknown device {device!r}: use auto, cpu or cuda[:N]")
    return torch.device(device)


#: The audio timing every part shares unless a scorer says otherwise (DESIGN §3): log-mel
#: settings, frames per scorer vector and between vectors, and the alerting window (seconds).
#: The front end (``workers.features.logmel.LogMelSpec``) and the alerting window
#: (``workers.model.AlertingWindow``) take their defaults from here.
AUDIO_DEFAULTS: dict[str, Any] = {
    "n_fft": 1024, "hop_length": 512, "n_mels": 128, "frames": 5, "vector_hop": 1,
    "window_s": 1.0, "hop_s": 0.5}


class Scorer(ABC):
    """Training and scoring wrapper around a pure ``nn.Module`` (``self.module``)."""

    name: ClassVar[str]
    #: Hyperparameters and their defaults; ``params()`` stores them in ``meta.json``.
    defaults: ClassVar[dict[str, Any]] = {}
    #: How audio is cut for this scorer: log-mel settings, frames per vector (``frames``),
    #: frames between vectors (``vector_hop``) and the alerting window (DESIGN §3).
    audio_defaults: ClassVar[dict[str, Any]] = AUDIO_DEFAULTS
    #: How sensor windows are cut for this scorer: window length and training stride from the
    #: training rows (``models/sensor_rules.py``).
    sensor_rule: ClassVar[SensorRule] = SensorRule(frames=10, min_frames=10, train_windows=5000)
    #: Buffers added after model folders of this scorer were first written: a folder without
    #: them loads with their initial values (which must reproduce the older behaviour).
    added_buffers: ClassVar[tuple[str, ...]] = ()
    #: Extra keyword arguments ``fit`` takes about the training vectors, one value per vector:
    #: ``clip_ids`` (which training clip it came from), ``conditions`` (the index of its
    #: clip's operating condition). Training passes the ones a scorer names here.
    fit_context: ClassVar[tuple[str, ...]] = ()
    #: How many folds ``monitor train`` cross-fits the threshold with when not told (0 = fit it
    #: on the held-out clips). A scorer whose held-out windows are too few to place a tail
    #: (a few clips of a classifier's distances) asks for out-of-fold scores of every clip.
    threshold_folds: ClassVar[int] = 0

    def __init__(self, *, input_spec: InputSpec, device: str | torch.device = "auto",
                 seed: int = 0, **hyper: Any) -> None:
        unknown = sorted(set(hyper) - set(self.defaults))
        if unknown:
            raise ScorerError(f"{self.name}: unknown parameter(s) {unknown}; "
                              f"known: {sorted(self.defaults)}")
        self.input_spec = input_spec
        self.device = resolve_device(device)
        self.seed = seed
        self.hyper = {**self.defaults, **hyper}
        self.module: nn.Module = self.build().to(self.device)
        self.module.eval()

    # -- to implement -------------------------------------------------------------------
    @abstractmethod
    def build(self) -> nn.Module:
        """Create the pure network from ``self.input_spec`` and ``self.hyper``."""

    @abstractmethod
    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitReport:
        """Learn from ``windows`` ``[N, T, F]`` (labels only for weakly-supervised scorers)."""

    @abstractmethod
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[B, T, F]`` -> (scores ``[B]``, per-feature contributions ``[B, F]`` or None)."""

    # -- shared -------------------------------------------------------------------------
    def score(self, batch: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` -> ``[B]`` scores on ``self.device``; batched == one by one."""
        return self.score_detail(batch)[0]

    def check_batch(self, batch: torch.Tensor) -> torch.Tensor:
        spec = self.input_spec
        if batch.ndim != 3 or tuple(batch.shape[1:]) != (spec.frames, spec.features):
            raise ScorerError(f"{self.name}: expected [B, {spec.frames}, {spec.features}], "
                              f"got {list(batch.shape)}")
        return batch.to(self.device, torch.float32, non_blocking=True)

    def params(self) -> dict[str, Any]:
        return dict(self.hyper)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        initial = self.module.state_dict()
        self.module.load_state_dict({**{k: initial[k] for k in self.added_buffers if k not in state}, **state})
        self.module.eval()

    def fit_minibatches(self, windows: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor], *,
                        stopping: EarlyStopping, progress: Progress | None = None) -> FitReport:
        """Mini-batch Adam on ``loss(windows)`` with early stopping on a time-ordered validation
        split: the recipe of scorers that train one module on one loss (hyperparameters ``lr``,
        ``batch_size``, ``epochs`` and ``validation``, the held-out fraction)."""
        check_training_windows(self.name, windows, self.input_spec)
        h = self.hyper
        torch.manual_seed(self.seed)  # dropout masks
        x = windows.to(self.device, torch.float32)
        train, val = time_ordered_split(x, h["validation"])
        gen = self._generator()
        opt = torch.optim.Adam(self.module.parameters(), lr=h["lr"])

        def validation() -> float:
            with torch.no_grad():
                return float(loss(val))

        t0 = time.perf_counter()
        info = train_by_epochs(
            self.name, self.module,
            lambda: minibatch_epoch(opt, lambda idx: loss(train[idx]), len(train), h["batch_size"], gen,
                                    self.device),
            epochs=h["epochs"], val_loss=validation if val is not None else None, stopping=stopping,
            progress=progress)
        return FitReport(epochs=info["epochs"], seconds=time.perf_counter() - t0, final_loss=info["final_loss"],
                         n_windows=int(len(x)), extra={"validation_loss": info["validation_loss"],
                                                       "best_epoch": info["best_epoch"]})

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Tiny settings for the contract test (a few epochs)."""
        return {}

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


def check_training_windows(name: str, windows: torch.Tensor, spec: InputSpec) -> None:
    if windows.ndim != 3 or tuple(windows.shape[1:]) != (spec.frames, spec.features):
        raise ScorerError(f"{name}: training windows must be [N, {spec.frames}, {spec.features}], "
                          f"got {list(windows.shape)}")
    if windows.shape[0] < 2:
        raise ScorerError(f"{name}: need at least 2 training windows, got {windows.shape[0]}")
    if not torch.isfinite(windows).all():
        raise ScorerError(f"{name}: training windows contain NaN or inf")


def time_ordered_split(x: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(training windows, the last ``fraction`` of them for early stopping, or None when under
    10 windows or the fraction rounds down to none): Keras' ``validation_split``, in time order."""
    n_val = int(len(x) * fraction) if len(x) >= 10 else 0
    return (x[:-n_val], x[-n_val:]) if n_val else (x, None)


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled permutation of ``range(n)`` cut into batches (the last one may be short)."""
    perm = torch.randperm(n, generator=generator)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)] if n else []


def finite_or_raise(name: str, loss: float) -> float:
    if not math.isfinite(loss):
        raise ScorerError(f"{name}: training diverged (loss = {loss})")
    return loss


@dataclass(frozen=True)
class EarlyStopping:
    """When training by epochs stops: ``patience`` epochs in a row whose validation loss is not
    below the best by more than ``min_delta`` x |best| (relative, so one value fits any loss
    scale); ``restore_best`` puts the best epoch's weights back (Keras' ``restore_best_weights``),
    else the last epoch's are kept."""

    patience: int
    min_delta: float = 0.0
    restore_best: bool = True


def train_by_epochs(name: str, module: nn.Module, run_epoch: Callable[[], float], *, epochs: int,
                    val_loss: Callable[[], float] | None, stopping: EarlyStopping,
                    progress: Progress | None = None) -> dict[str, Any]:
    """The one early-stopping loop of every scorer that trains by epochs.

    ``run_epoch()`` trains one epoch (its own batches and optimisers, the module in train mode)
    and returns the epoch's mean training loss; ``val_loss()`` (module in eval mode) is checked
    after every epoch. Without ``val_loss`` all ``epochs`` run. Returns what happened, for
    ``FitReport.extra``.
    """
    best, best_state, best_epoch, stale = float("inf"), None, 0, 0
    train_loss, epoch = float("nan"), 0
    for epoch in range(1, epochs + 1):
        module.train()
        train_loss = finite_or_raise(name, run_epoch())
        module.eval()
        if val_loss is not None:
            v = finite_or_raise(name, val_loss())
            if best_epoch == 0 or v < best - stopping.min_delta * abs(best):
                best, best_epoch, stale = v, epoch, 0
                if stopping.restore_best:
                    best_state = copy.deepcopy(module.state_dict())
            else:
                stale += 1
        if progress is not None:
            progress(epoch, epochs, train_loss)
        if val_loss is not None and stale >= stopping.patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return {"epochs": epoch, "best_epoch": best_epoch if val_loss is not None else None,
            "validation_loss": best if val_loss is not None else None, "final_loss": train_loss,
            "stopped_early": epoch < epochs}


def minibatch_epoch(opt: torch.optim.Optimizer, loss_of: Callable[[torch.Tensor], torch.Tensor], n: int,
                    batch_size: int, generator: torch.Generator, device: torch.device, *,
                    min_batch: int = 1) -> float:
    """One epoch of plain mini-batch descent over shuffled indices ``0..n-1``: the mean of
    ``loss_of(batch indices)`` weighted by batch size. A batch under ``min_batch`` indices
    (the short last one) is skipped: BatchNorm cannot train on one sample."""
    total, count = 0.0, 0
    for idx in epoch_batches(n, batch_size, generator):
        if idx.numel() < min_batch:
            continue
        idx = idx.to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_of(idx)
        loss.backward()
        opt.step()
        total += loss.item() * idx.numel()
        count += idx.numel()
    return total / max(count, 1)
