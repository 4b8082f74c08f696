"""The sensor front end and the fixed-step grid sensor readings are put on.

A sensor stream is a sequence of readings of C channels. ``SensorGrid`` puts irregular
readings on a fixed step (sample and hold: a grid point takes the last reading within half a
step of it or before, each channel forward-filled), and cuts the stream where no reading came
for longer than ``max_gap_s``: the caller ends the stream there (its windows close) and reports
a ``gap`` health event, and the stream restarts on the same grid after the gap.

``SensorFrontEnd`` is the sensor counterpart of the log-mel front end: a "frame" is one grid
row of C raw values (``frame_len`` = ``frame_hop`` = 1) and its features are the values
normalised with the per-channel mean and standard deviation learned at training time and
stored in the model's ``meta.json``. Sensor scorers score a window about its newest reading,
so ``scores_last_step`` tells the pipeline to attribute a vector's score to its last step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class SensorSpec:
    channels: tuple[str, ...]
    step_s: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    max_gap_s: float
    time_column: str | None = None
    #: Training range per channel (for the out-of-range health check).
    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None
    #: 99.9th percentile of one-step |change| per channel in training (the step check).
    step_q: tuple[float, ...] | None = None
    #: Longest run of unchanged values per channel in training (the flat-line check).
    flat_run: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        c = len(self.channels)
        if c < 1 or len(set(self.channels)) != c:
            raise ValueError(f"sensor channels must be distinct and non-empty: {self.channels}")
        if not (self.step_s > 0 and math.isfinite(self.step_s)) or not self.max_gap_s > 0:
            raise ValueError(f"step_s and max_gap_s must be positive, got {self.step_s}, {self.max_gap_s}")
        for name in ("mean", "std", "lo", "hi", "step_q", "flat_run"):
            v = getattr(self, name)
            if v is not None and len(v) != c:
                raise ValueError(f"sensor {name} has {len(v)} values for {c} channels")
        if any(s <= 0 for s in self.std):
            raise ValueError("sensor std must be positive")

    def to_dict(self) -> dict:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        return {"kind": SensorFrontEnd.kind, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "SensorSpec":
        d = {k: v for k, v in d.items() if k != "kind"}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class SensorFrontEnd:
    """Grid rows ``[N, 1, C]`` (or ``[N, 1]`` for one channel) -> normalised ``[N, C]``."""

    kind = "sensor"
    frame_len = 1
    frame_hop = 1
    scores_last_step = True

    def __init__(self, spec: SensorSpec, *, device: torch.device | str = "cpu") -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.mean = torch.tensor(spec.mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(spec.std, dtype=torch.float32, device=self.device)

    @property
    def sample_rate(self) -> float:
        """Grid rows per second (a float: one row per ``step_s`` seconds)."""
        return 1.0 / self.spec.step_s

    @property
    def n_channels(self) -> int:
        return len(self.spec.channels)

    @property
    def n_features(self) -> int:
        return self.n_channels

    def features(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(frames).to(self.device, torch.float32).reshape(len(frames), self.n_channels)
        return (x - self.mean) / self.std

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Raw ``[n, C]`` values -> normalised float32 (training and offline paths)."""
        return ((np.asarray(values, dtype=np.float64) - np.asarray(self.spec.mean))
                / np.asarray(self.spec.std)).astype(np.float32)

    def feature_names(self) -> list[str]:
        return list(self.spec.channels)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def to_meta(self) -> dict:
        return self.spec.to_dict()

    @classmethod
    def from_meta(cls, meta: dict, state: dict[str, torch.Tensor], *, device) -> "SensorFrontEnd":
        return cls(SensorSpec.from_dict(meta), device=device)


@dataclass
class GridRows:
    """Consecutive grid rows ``values[n, C]`` starting at grid index ``start``."""

    start: int
    values: np.ndarray


@dataclass
class GridGap:
    """No reading between ``from_s`` and ``to_s`` (> max_gap_s): the stream restarts at ``resume``."""

    from_s: float
    to_s: float
    last_index: int
    resume: int


@dataclass
class SensorGrid:
    """One stream's readings -> rows on a fixed step.

    Row 0 is the point of the epoch lattice (multiples of ``step_s``) nearest the first
    reading, so two processes that start reading a stream at different readings put rows on
    the same instants; ``lattice_index`` is row 0's index on that lattice (event ids use it).
    """

    step_s: float
    n_channels: int
    max_gap_s: float
    origin_s: float | None = None
    dropped: int = 0  # readings out of time order (or duplicates), skipped and counted
    _k: int = 0
    _pending: np.ndarray | None = None
    _last_ts: float | None = None
    _rows: list[np.ndarray] = field(default_factory=list)
    _rows_start: int = 0

    @property
    def lattice_index(self) -> int:
        return int(math.floor(self.origin_s / self.step_s + 0.5)) if self.origin_s is not None else 0

    def index(self, ts_s: float) -> int:
        return int(math.floor((ts_s - self.origin_s) / self.step_s + 0.5))

    def push(self, ts_s: np.ndarray, values: np.ndarray, *, final: bool = False) -> list[GridRows | GridGap]:
        """Readings in time order (NaN = channel missing in that reading) -> rows and gaps.

        The newest grid row is held back until a later reading (or ``final``) completes it.
        """
        out: list[GridRows | GridGap] = []
        values = np.asarray(values, dtype=np.float64).reshape(len(ts_s), self.n_channels)
        for t, v in zip(np.asarray(ts_s, dtype=np.float64), values):
            if self.origin_s is None:
                self.origin_s = math.floor(float(t) / self.step_s + 0.5) * self.step_s
                self._k, self._rows_start = 0, 0
                self._pending, self._last_ts = v.copy(), float(t)
                continue
            if t <= self._last_ts:
                self.dropped += 1
                continue
            if t - self._last_ts > self.max_gap_s:
                self._emit_pending()
                last = self._k
                self._flush_rows(out)
                k = self.index(t)
                out.append(GridGap(self._last_ts, float(t), last, k))
                self._k, self._rows_start, self._pending, self._last_ts = k, k, v.copy(), float(t)
                continue
            k = self.index(t)
            if k > self._k:
                self._emit_pending()
                filled = self._pending.copy()
                for _ in range(self._k + 1, k):
                    self._rows.append(filled)
                self._k = k
            self._pending = np.where(np.isnan(v), self._pending, v)
            self._last_ts = float(t)
        if final and self._pending is not None:
            self._emit_pending()
            self._pending = None
        self._flush_rows(out)
        return out

    def _emit_pending(self) -> None:
        if self._pending is not None:
            self._rows.append(self._pending.copy())

    def _flush_rows(self, out: list) -> None:
        if not self._rows:
            return
        rows = np.stack(self._rows)
        start = self._rows_start
        self._rows, self._rows_start = [], start + len(rows)
        # rows where a channel has never been seen cannot be scored: start after them
        bad = np.isnan(rows).any(axis=1)
        if bad.any():
            keep = int(np.flatnonzero(bad).max()) + 1
            rows, start = rows[keep:], start + keep
        if len(rows):
            out.append(GridRows(start, rows.astype(np.float32)))
