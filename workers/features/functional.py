"""Stateless log-mel maths on framed audio, in plain torch.

Frames start at the stream's first sample (``center=False``): a stream has no edges to
pad, so a frame's features never depend on how the audio was chunked. The dB reference
is fixed (1.0, no top-dB clamp): a frame never depends on its neighbours or its batch.
"""
from __future__ import annotations

import sys

import torch

#: The floor added before the logarithm, as the DCASE baselines use it.
LOG_EPS = sys.float_info.epsilon


def frame_signal(x: torch.Tensor, *, n_fft: int, hop_length: int) -> torch.Tensor:
    """Cut ``(..., samples)`` into ``(..., frames, n_fft)`` frames starting at sample 0.

    Samples after the last whole frame are left out; a stream keeps them for the next chunk.
    """
    if x.shape[-1] < n_fft:
        return x.new_zeros((*x.shape[:-1], 0, n_fft))
    return x.unfold(-1, n_fft, hop_length)


def power_spectrum(frames: torch.Tensor, *, window: torch.Tensor) -> torch.Tensor:
    """``(..., frames, n_fft)`` -> ``(..., frames, n_fft // 2 + 1)`` power (|X|^2)."""
    spec = torch.fft.rfft(frames * window, dim=-1)
    return spec.real.square() + spec.imag.square()


def log_mel_frames(
    frames: torch.Tensor, *, window: torch.Tensor, mel_fb: torch.Tensor, eps: float = LOG_EPS
) -> torch.Tensor:
    """``(..., frames, n_fft)`` -> ``(..., frames, n_mels)`` in dB: ``10*log10(mel + eps)``.

    ``mel_fb`` is ``(n_mels, n_fft // 2 + 1)``, librosa's filterbank layout.
    """
    mel = power_spectrum(frames, window=window) @ mel_fb.T
    return 10.0 * torch.log10(mel + eps)


def stack_frames(frames: torch.Tensor, *, n_frames: int, hop: int = 1) -> torch.Tensor:
    """``(..., N, F)`` log-mel frames -> ``(..., V, n_frames, F)`` vectors of consecutive frames.

    The DCASE autoencoder uses 5 frames (640 inputs); vector ``v`` holds frames
    ``v*hop .. v*hop + n_frames - 1``.
    """
    if frames.shape[-2] < n_frames:
        return frames.new_zeros((*frames.shape[:-2], 0, n_frames, frames.shape[-1]))
    return frames.unfold(-2, n_frames, hop).transpose(-1, -2)


def librosa_mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int,
                           fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """The librosa (Slaney) mel filterbank, computed once at training time.

    librosa is imported here only: scoring loads the stored filterbank and never pays
    librosa's import or numba's JIT.
    """
    import librosa  # noqa: PLC0415 - training-time only

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(fb).to(torch.float32)
