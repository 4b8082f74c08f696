"""Streaming polyphase resampling, for inputs that cannot deliver the model's sample rate.

A microphone that only opens at 44.1 or 48 kHz must still feed a 16 kHz model. Resampling
each block on its own would click at every block edge, so ``StreamResampler`` keeps the
filter history between blocks: chunked output equals the output of one call over the whole
signal, whatever the block sizes. The filter is the one ``scipy.signal.resample_poly`` uses
(Kaiser-windowed sinc, beta 5, 10 zero crossings per side).
"""
from __future__ import annotations

from math import gcd

import numpy as np


class StreamResampler:
    """Mono float32 blocks at ``sr_in`` -> float32 blocks at ``sr_out``, output delay-compensated.

    Output sample ``n`` is the band-limited value of the input at time ``n / sr_out``; the
    filter's half-length is held back, so the first blocks return fewer samples and
    ``flush()`` returns the tail (zero-padded past the end of the input).
    """

    def __init__(self, *, sr_in: int, sr_out: int, half_width: int = 10, beta: float = 5.0) -> None:
        if sr_in <= 0 or sr_out <= 0:
            raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
        from scipy.signal import firwin  # noqa: PLC0415

        g = gcd(sr_in, sr_out)
        self.up, self.down = sr_out // g, sr_in // g
        self.sr_in, self.sr_out = sr_in, sr_out
        self.identity = self.up == self.down
        m = max(self.up, self.down)
        if self.identity:  # same rate: pass samples through unchanged
            m = 2
        half = half_width * m
        h = firwin(2 * half + 1, 1.0 / m, window=("kaiser", beta)) * self.up
        # Pad so the filter length is a multiple of ``up``; phase p holds taps h[p::up].
        taps_per_phase = -(-len(h) // self.up)
        h = np.concatenate([h, np.zeros(taps_per_phase * self.up - len(h))])
        self.taps = taps_per_phase
        self.phases = h.reshape(taps_per_phase, self.up).T[:, ::-1].astype(np.float64)  # [up, taps]
        self.delay = half  # in the upsampled domain
        self.hist = np.zeros(self.taps - 1, dtype=np.float64)  # input samples before the block
        self.hist_start = -(self.taps - 1)  # input index of hist[0]
        self.n_in = 0
        self.n_out = 0  # output samples emitted so far

    def _emit(self, x: np.ndarray, total_in: int) -> np.ndarray:
        """Output samples whose taps all lie inside ``hist + x`` (input indices < total_in)."""
        buf = np.concatenate([self.hist, x])
        # Output n needs upsampled index u = n*down + delay; its input taps end at i = u // up.
        n_end = ((total_in - 1) * self.up - self.delay) // self.down + 1 if total_in else 0
        n = np.arange(self.n_out, max(self.n_out, n_end))
        if len(n) == 0:
            return np.zeros(0, dtype=np.float32)
        u = n * self.down + self.delay
        last = u // self.up  # newest input index each output uses
        phase = u % self.up
        idx = (last - self.hist_start)[:, None] - np.arange(self.taps)[::-1][None, :]
        good = idx >= 0
        vals = np.where(good, buf[np.clip(idx, 0, None)], 0.0)
        y = np.einsum("nt,nt->n", vals, self.phases[phase])
        self.n_out += len(n)
        return y.astype(np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        if self.identity:
            self.n_in += len(x)
            self.n_out += len(x)
            return np.asarray(x, dtype=np.float32).reshape(-1).copy()
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        self.n_in += len(x)
        y = self._emit(x, self.n_in)
        buf = np.concatenate([self.hist, x])
        keep = self.taps - 1
        self.hist_start += len(buf) - keep
        self.hist = buf[len(buf) - keep:]
        return y

    def flush(self) -> np.ndarray:
        """The remaining output (input treated as zeros past its end), up to the nominal length
        ``ceil(n_in * sr_out / sr_in)``."""
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        want = -(-self.n_in * self.up // self.down)
        start = self.n_out
        y = self._emit(np.zeros(self.taps), self.n_in + self.taps)[: max(0, want - start)]
        self.n_out = start + len(y)
        return y
