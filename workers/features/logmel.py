"""A thin module holding the log-mel front end's buffers (window and mel filterbank)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import functional as F
from models.base import AUDIO_DEFAULTS

from .fast import FastLogMel


@dataclass(frozen=True)
class LogMelSpec:
    """Front-end parameters; stored in a model's ``meta.json`` under ``features``."""

    sample_rate: int = 16000
    n_fft: int = AUDIO_DEFAULTS["n_fft"]
    hop_length: int = AUDIO_DEFAULTS["hop_length"]
    n_mels: int = AUDIO_DEFAULTS["n_mels"]
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    window: str = "hann"
    center: bool = False

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"log-mel parameters must be positive: {self}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length {self.hop_length} > n_fft {self.n_fft} would skip samples")
        if self.power != 2.0 or self.window != "hann" or self.center:
            raise ValueError("the streaming front end supports power=2, window='hann', center=False only")

    def to_dict(self) -> dict:
        return {"kind": "logmel", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "LogMelSpec":
        d = {k: v for k, v in d.items() if k != "kind"}
        return cls(**d)

    def frames_in(self, n_samples: int) -> int:
        """Whole frames in ``n_samples`` samples (``center=False``)."""
        return 0 if n_samples < self.n_fft else 1 + (n_samples - self.n_fft) // self.hop_length


class LogMel(nn.Module):
    """``(..., samples)`` or framed ``(..., frames, n_fft)`` audio -> ``(..., frames, n_mels)`` dB.

    Buffers ``window`` and ``mel_fb`` follow ``.to(device)`` and ``state_dict()``; the
    filterbank is passed in (from librosa at training time, from ``weights.pt`` at scoring).
    """

    def __init__(self, spec: LogMelSpec, mel_fb: torch.Tensor | None = None) -> None:
        super().__init__()
        self.spec = spec
        if mel_fb is None:
            mel_fb = F.librosa_mel_filterbank(sample_rate=spec.sample_rate, n_fft=spec.n_fft,
                                              n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax)
        expected = (spec.n_mels, spec.n_fft // 2 + 1)
        if tuple(mel_fb.shape) != expected:
            raise ValueError(f"mel filterbank has shape {tuple(mel_fb.shape)}, expected {expected}")
        self.register_buffer("window", torch.hann_window(spec.n_fft, periodic=True))
        self.register_buffer("mel_fb", mel_fb.to(torch.float32).contiguous())

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = F.frame_signal(audio, n_fft=self.spec.n_fft, hop_length=self.spec.hop_length)
        return self.forward_frames(frames)

    #: Use the CPU hot path (``fast.py``) for ``[N, n_fft]`` float32 frames; ``False`` = plain.
    fast: bool = True

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if (self.fast and frames.ndim == 2 and frames.device.type == "cpu"
                and frames.dtype == torch.float32 and not frames.requires_grad):
            return self._fast()(frames)
        return self.forward_frames_plain(frames)

    def forward_frames_plain(self, frames: torch.Tensor) -> torch.Tensor:
        """The reference maths (``functional.log_mel_frames``) the fast path must equal."""
        return F.log_mel_frames(frames, window=self.window, mel_fb=self.mel_fb)

    def _fast(self) -> FastLogMel:
        key = (self.window.data_ptr(), self.mel_fb.data_ptr(), self.mel_fb._version)
        cached = getattr(self, "_fast_cache", None)
        if cached is None or cached[0] != key:
            self._fast_cache = (key, FastLogMel(window=self.window, mel_fb=self.mel_fb))
        return self._fast_cache[1]
