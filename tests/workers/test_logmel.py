"""The torch log-mel front end against librosa, chunked vs whole, batched vs single."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.synth import inject_fault, machine_sound
from workers.features import LOG_EPS, LogMel, LogMelSpec
from workers.windowing import SampleFramer

SPEC = LogMelSpec()  # 16 kHz, n_fft 1024, hop 512, 128 mels


def _librosa_db(y: np.ndarray, spec: LogMelSpec) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=y.astype(np.float64), sr=spec.sample_rate, n_fft=spec.n_fft,
                                         hop_length=spec.hop_length, n_mels=spec.n_mels,
                                         center=False, power=2.0, window="hann")
    return 10.0 * np.log10(mel + LOG_EPS).T  # [frames, mels]


def _signal(seconds: float = 4.0) -> np.ndarray:
    x = machine_sound(seconds=seconds, f0=97.0, seed=3)
    return inject_fault(x, kind="clicks", start_s=1.0, end_s=2.5, seed=4)


@pytest.mark.parametrize("spec", [SPEC, LogMelSpec(n_fft=2048, hop_length=512, n_mels=128)],
                         ids=["dcase-1024", "ws-ae-2048"])
def test_matches_librosa_within_0_01_db(spec):
    y = _signal()
    ours = LogMel(spec)(torch.from_numpy(y)).numpy()
    ref = _librosa_db(y, spec)
    assert ours.shape == ref.shape
    mask = ref > -100.0
    diff = np.abs(ours - ref)[mask]
    print(f"\nlog-mel parity vs librosa ({spec.n_fft}/{spec.hop_length}): max |diff| = {diff.max():.2e} dB "
          f"over {mask.sum()} bins above -100 dB ({mask.mean():.1%} of all)")
    assert mask.mean() > 0.9
    assert diff.max() <= 0.01


@pytest.mark.slow
def test_matches_librosa_on_a_real_valve_clip():
    import soundfile as sf

    from tests.conftest import shared_data

    folder = shared_data("audio", "dcase2023_valve", "valve", "test")
    y, sr = sf.read(sorted(folder.glob("*anomaly*.wav"))[0], dtype="float32")
    ours = LogMel(SPEC)(torch.from_numpy(y)).numpy()
    ref = _librosa_db(y, SPEC)
    mask = ref > -100.0
    diff = np.abs(ours - ref)[mask]
    print(f"\nlog-mel parity vs librosa on a real valve clip: max |diff| = {diff.max():.2e} dB "
          f"over {mask.sum()} bins ({mask.mean():.1%} above -100 dB)")
    assert diff.max() <= 0.01


def test_streamed_chunks_equal_whole_clip(rng):
    """Chunks of random sizes, 1 sample to 10 s, give the same frames as the whole clip."""
    y = np.concatenate([_signal(12.0), _signal(12.0)])
    lm = LogMel(SPEC)
    whole = lm(torch.from_numpy(y)).numpy()
    framer = SampleFramer(frame_len=SPEC.n_fft, hop=SPEC.hop_length)
    got, pos = [], 0
    sizes = np.concatenate([[1, 2, 3, 511, 513, 1023, 1025], rng.integers(1, 160_000, 64)])
    while pos < len(y):
        n = int(sizes[len(got) % len(sizes)])
        first, frames = framer.push(y[pos:pos + n])
        pos += n
        if len(frames):
            assert first == sum(len(g) for g in got)
            got.append(lm.forward_frames(torch.from_numpy(frames)).numpy())
        else:
            got.append(np.zeros((0, SPEC.n_mels), np.float32))
    streamed = np.concatenate(got)
    assert streamed.shape == whole.shape
    diff = np.abs(streamed - whole).max()
    print(f"\nlog-mel chunked vs whole: max |diff| = {diff:.2e} dB over {len(whole)} frames")
    assert diff <= 1e-3


def test_batched_streams_equal_single_and_depend_on_content():
    ys = np.stack([_signal(2.0), machine_sound(seconds=2.0, f0=140.0, seed=9), np.zeros(32000, np.float32)])
    lm = LogMel(SPEC)
    batched = lm(torch.from_numpy(ys)).numpy()
    single = np.stack([lm(torch.from_numpy(y)).numpy() for y in ys])
    assert batched.shape == (3, SPEC.frames_in(32000), 128)
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-4)
    assert not np.allclose(batched[0], batched[1])
    # Digital silence sits at the fixed floor, not at a per-clip reference.
    np.testing.assert_allclose(batched[2], 10 * np.log10(LOG_EPS), atol=1e-3)


def test_scaling_is_not_normalised_away():
    """A fixed dB reference: 6 dB louder audio is 6 dB higher in every loud bin."""
    y = _signal(2.0)
    lm = LogMel(SPEC)
    a, b = lm(torch.from_numpy(y)).numpy(), lm(torch.from_numpy(2 * y)).numpy()
    loud = a > -60
    np.testing.assert_allclose((b - a)[loud], 20 * np.log10(2), atol=1e-3)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    y = torch.from_numpy(np.stack([_signal(3.0)] * 4))
    cpu = LogMel(SPEC)(y)
    gpu = LogMel(SPEC).cuda()(y.cuda()).cpu()
    assert (cpu - gpu).abs().max().item() < 1e-2
