"""What a user would run instead: the DCASE 2020 baseline way, one clip at a time.

Per clip, as the baseline's ``file_to_vector_array`` and test loop do it: ``soundfile`` read,
``librosa.feature.melspectrogram``, ``10*log10(mel + eps)``, a Python loop that stacks 5
frames into 640-d vectors, one forward pass of the trained module (BatchNorm as trained), the
MSE per vector, the clip score = their mean. Frames use ``center=False`` like our front end,
so both paths score the same vectors and their clip scores can be compared.

``tuned`` is the same per clip with the filterbank built once (librosa rebuilds it per call):
the benchmark takes the faster of the two, so our ratio is never flattered by a slow baseline.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from workers.model import LoadedModel

from monitor.bench.compute import Split

EPS = sys.float_info.epsilon


class DcaseWay:
    def __init__(self, model: LoadedModel, *, tuned: bool) -> None:
        import librosa  # noqa: PLC0415 - the baseline's own library

        if model.device.type != "cpu":
            raise ValueError("the DCASE way runs on the CPU")
        spec = model.frontend.spec
        self.librosa, self.spec = librosa, spec
        self.frames, self.n_mels = model.scorer.input_spec.frames, spec.n_mels
        self.module = model.scorer.module
        self.tuned = tuned
        self.fb = model.frontend.module.mel_fb.numpy() if tuned else None

    def log_mel(self, y: np.ndarray, sr: int) -> np.ndarray:
        s = self.spec
        if self.fb is None:
            mel = self.librosa.feature.melspectrogram(y=y, sr=sr, n_fft=s.n_fft, hop_length=s.hop_length,
                                                      n_mels=s.n_mels, power=2.0, center=False)
        else:
            stft = self.librosa.stft(y, n_fft=s.n_fft, hop_length=s.hop_length, center=False)
            mel = self.fb @ (np.abs(stft) ** 2)
        return 10.0 * np.log10(mel + EPS)  # 20/power * log10, power 2

    def vectors(self, log_mel: np.ndarray) -> np.ndarray:
        t, f = self.frames, self.n_mels
        n = log_mel.shape[1] - t + 1
        out = np.zeros((max(n, 0), t * f), dtype=np.float32)
        for i in range(t):
            out[:, f * i:f * (i + 1)] = log_mel[:, i:i + n].T
        return out

    def clip_score(self, path: Path, split: Split | None = None) -> float:
        t0 = time.perf_counter()
        import soundfile as sf  # noqa: PLC0415

        y, sr = sf.read(path, dtype="float32")
        t1 = time.perf_counter()
        x = torch.from_numpy(self.vectors(self.log_mel(y, sr)))
        t2 = time.perf_counter()
        with torch.inference_mode():
            errors = (x - self.module(x)).square().mean(dim=1)
        score = float(errors.double().mean())
        t3 = time.perf_counter()
        if split is not None:
            split.features_s += t2 - t0  # the read counts with the features, as in the baseline
            split.model_s += t3 - t2
            split.seconds += t3 - t0
            split.read_s += t1 - t0
        return score

    def scores(self, paths: list[Path], split: Split | None = None) -> np.ndarray:
        return np.array([self.clip_score(p, split) for p in paths])
