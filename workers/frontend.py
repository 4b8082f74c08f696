"""Front ends turn raw stream samples into feature frames ``[N, F]`` on the scoring device.

A front end says how raw samples are framed (``frame_len``, ``frame_hop``) and computes the
features of many frames in one batched call, whatever streams they came from.
"""
from __future__ import annotations

import numpy as np
import torch

from .features import LogMel, LogMelSpec, frame_signal
from .sensor_frontend import SensorFrontEnd


class AudioFrontEnd:
    """Log-mel frames for mono audio: frames of ``n_fft`` samples, ``hop_length`` apart."""

    kind = "logmel"

    def __init__(self, spec: LogMelSpec, *, mel_fb: torch.Tensor | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.spec = spec
        self.module = LogMel(spec, mel_fb).to(device)
        self.device = torch.device(device)
        #: how raw samples are framed, and the features per frame (the spec's, named alike
        #: across front ends)
        self.sample_rate, self.frame_len, self.frame_hop = spec.sample_rate, spec.n_fft, spec.hop_length
        self.n_features = spec.n_mels

    def features(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``[N, n_fft]`` raw frames -> ``[N, n_mels]`` dB on the device."""
        x = torch.as_tensor(frames).to(self.device, torch.float32, non_blocking=True)
        with torch.inference_mode():
            return self.module.forward_frames(x)

    def clip_features(self, audio: np.ndarray) -> torch.Tensor:
        """A whole clip ``[samples]`` -> ``[frames, n_mels]`` (training and plots).

        Uses the reference maths, not the CPU hot path: training data must not depend on the
        hot path's rounding (~1e-5 dB), because a trained model amplifies it chaotically (on the
        10-clip fan split it moved one seed's AUC by 0.06). Scoring uses the hot path, which
        equals this within 1e-5 relative (tests/workers/test_fast_path.py).
        """
        x = torch.as_tensor(np.ascontiguousarray(audio, dtype=np.float32)).to(self.device)
        spec = self.spec
        with torch.inference_mode():
            frames = frame_signal(x, n_fft=spec.n_fft, hop_length=spec.hop_length)
            return self.module.forward_frames_plain(frames)

    def feature_names(self) -> list[str]:
        """``mel017@1.2kHz``: each band with the centre of its filter, for event explanations."""
        fb = self.module.mel_fb.detach().cpu()
        hz = fb.argmax(dim=1).double() * self.spec.sample_rate / self.spec.n_fft
        return [f"mel{i:03d}@{f / 1000:.2f}kHz" for i, f in enumerate(hz.tolist())]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mel_fb": self.module.mel_fb.detach().cpu()}

    def to_meta(self) -> dict:
        return self.spec.to_dict()

    @classmethod
    def from_meta(cls, meta: dict, state: dict[str, torch.Tensor], *, device) -> "AudioFrontEnd":
        return cls(LogMelSpec.from_dict(meta), mel_fb=state.get("mel_fb"), device=device)


FRONT_ENDS = {"logmel": AudioFrontEnd, "sensor": SensorFrontEnd}
