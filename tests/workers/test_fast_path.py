"""The optimised hot path scores what the plain path scores (DESIGN §3: within 1e-5 relative).

Optimised = the CPU log-mel (``workers/features/fast.py``: sparse mel, in-place power and log)
and the BatchNorm-folded autoencoder (``models/ae/fast.py``, oneDNN fused linear+ReLU).
Plain = ``functional.log_mel_frames`` and the module as trained.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.ae import AutoencoderScorer
from models.ae.fast import FoldedAutoencoder
from models.base import InputSpec
from monitor.synth import inject_fault, machine_sound
from workers.features import LogMel, LogMelSpec, frame_signal
from workers.features.fast import FastLogMel

SPEC = LogMelSpec()


def _audio(seconds: float = 6.0, seed: int = 3) -> torch.Tensor:
    x = machine_sound(seconds=seconds, f0=97.0, seed=seed)
    return torch.from_numpy(inject_fault(x, kind="clicks", start_s=1.0, end_s=3.0, seed=seed + 1))


def _scorer_with_real_statistics(seed: int = 0) -> AutoencoderScorer:
    """An AE whose BatchNorm layers hold non-trivial statistics and affine parameters."""
    sc = AutoencoderScorer(input_spec=InputSpec(frames=5, features=128), device="cpu", seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in sc.module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 3.0)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 20.0 + 0.05)
                m.weight.copy_(1.0 + 0.3 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
    sc.module.eval()
    return sc


def _model():
    """A loaded model (front end + AE with real BatchNorm statistics), no training needed."""
    from workers.frontend import AudioFrontEnd
    from workers.model import AlertingWindow, LoadedModel

    return LoadedModel(None, {}, AudioFrontEnd(SPEC), _scorer_with_real_statistics(seed=3), None,
                       AlertingWindow())


def _vectors(seconds: float = 6.0) -> torch.Tensor:
    lm = LogMel(SPEC)
    with torch.inference_mode():
        feats = lm.forward_frames_plain(frame_signal(_audio(seconds), n_fft=1024, hop_length=512))
    return feats.unfold(0, 5, 1).transpose(1, 2).contiguous()


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()).abs() / b.double().abs().clamp_min(1e-30)).max())


def test_fast_log_mel_equals_plain():
    lm = LogMel(SPEC)
    frames = frame_signal(_audio(), n_fft=1024, hop_length=512).contiguous()
    with torch.inference_mode():
        plain = lm.forward_frames_plain(frames)
        fast = FastLogMel(window=lm.window, mel_fb=lm.mel_fb, chunk=100)(frames)  # odd chunk: boundaries
        via_module = lm.forward_frames(frames)
    assert fast.shape == plain.shape == (len(frames), 128)
    diff = (fast - plain).abs().max().item()
    print(f"\nfast vs plain log-mel: max |diff| = {diff:.2e} dB over {plain.numel()} bins")
    assert diff <= 1e-3
    torch.testing.assert_close(via_module, fast, rtol=0, atol=0)


def test_folding_keeps_the_module_output():
    sc = _scorer_with_real_statistics()
    x = _vectors().reshape(-1, 640)
    with torch.inference_mode():
        ref = sc.module(x)
        for backend in (True, False):
            folded = FoldedAutoencoder(sc.module, chunk=97, use_onednn=backend)
            out = folded(x)
            err = float((out - ref).abs().max() / ref.abs().max())
            print(f"\nfolded ({folded.backend}) vs module: max |diff| / max |out| = {err:.1e}")
            assert err <= 1e-5


@pytest.mark.parametrize("use_onednn", [True, False], ids=["onednn", "torch"])
def test_optimised_scores_equal_plain_within_1e_5(use_onednn):
    sc = _scorer_with_real_statistics(seed=1)
    v = _vectors(8.0)
    folded = FoldedAutoencoder(sc.module, chunk=64, use_onednn=use_onednn)
    fast_s, fast_c = folded.score_detail(v)
    plain_s, plain_c = sc.score_detail_plain(v)
    via_scorer, _ = sc.score_detail(v)
    rel = _max_rel(fast_s, plain_s)
    print(f"\n{folded.backend}: {len(v)} vectors, max relative score diff {rel:.1e}")
    assert rel <= 1e-5
    assert _max_rel(via_scorer, plain_s) <= 1e-5
    # contributions (event explanations) agree on the scale of the score
    assert float((fast_c - plain_c).abs().max() / plain_c.abs().max()) <= 1e-5


def test_fold_follows_new_weights_and_handles_empty_batches():
    sc = _scorer_with_real_statistics(seed=2)
    v = _vectors(3.0)
    before = sc.score(v)
    other = _scorer_with_real_statistics(seed=5)
    sc.load_state_dict(other.state_dict())
    after = sc.score(v)
    assert _max_rel(after, other.score_detail_plain(v)[0]) <= 1e-5
    assert not torch.allclose(before, after)
    s, c = sc.score_detail(v[:0])
    assert s.shape == (0,) and c.shape == (0, 128)


def test_pipeline_window_scores_equal_plain():
    """Whole clips through ``ScoringPipeline``: optimised and plain windows match."""
    from monitor.bench.compute import plain_mode
    from workers.offline import score_clips

    model = _model()
    clips = [(f"c{i}", machine_sound(seconds=4.0, f0=110.0 + 9 * i, seed=40 + i)) for i in range(3)]
    fast = score_clips(model, clips)
    with plain_mode(model):
        plain = score_clips(model, clips)
    fw = np.array([w.score for r in fast for w in r.windows])
    pw = np.array([w.score for r in plain for w in r.windows])
    assert len(fw) == len(pw) > 0
    rel = float(np.max(np.abs(fw - pw) / np.abs(pw)))
    print(f"\npipeline: {len(fw)} windows, max relative window-score diff {rel:.1e}")
    assert rel <= 1e-5


@pytest.mark.parametrize(("T", "h"), [(5, 1), (32, 8), (3, 2)])
def test_stack_many_equals_each_stackers_push(T, h):
    """The one-gather stacking of many streams == ``VectorStacker.push`` stream by stream."""
    from workers.windowing import VectorStacker, stack_many

    rng = np.random.default_rng(T * 10 + h)
    n_streams, F = 5, 7
    starts = rng.integers(0, 20, n_streams)
    ref = [VectorStacker(frames=T, hop=h) for _ in range(n_streams)]
    many = [VectorStacker(frames=T, hop=h) for _ in range(n_streams)]
    nxt = list(starts)
    for _ in range(12):
        counts = rng.integers(0, 3 * T, n_streams)  # some empty, some shorter than a vector
        feats = torch.from_numpy(rng.standard_normal((int(counts.sum()), F)).astype(np.float32))
        parts, row, expect = [], 0, []
        for i, n in enumerate(counts):
            parts.append((int(nxt[i]), row, int(n)))
            v0, vec = ref[i].push(int(nxt[i]), feats[row:row + n])
            expect.append((v0, vec))
            row += n
            nxt[i] += n
        got, vectors = stack_many(many, parts, feats)
        off = 0
        for (v0, vec), (g0, gn) in zip(expect, got):
            assert gn == len(vec)
            if gn:
                assert g0 == v0
                torch.testing.assert_close(vectors[off:off + gn], vec, rtol=0, atol=0)
            off += gn
        assert off == len(vectors)
    for a, b in zip(ref, many):
        assert (a.next_vector, a.tail_start) == (b.next_vector, b.tail_start)
        torch.testing.assert_close(a.tail, torch.as_tensor(b.tail), rtol=0, atol=0)  # numpy on CPU


def test_pipeline_any_chunking_gives_the_same_windows():
    """Streams pushed in random chunk sizes and flushed at random times == whole clips."""
    from workers.pipeline import ScoringPipeline

    model = _model()
    rng = np.random.default_rng(11)
    clips = {f"m{i}": machine_sound(seconds=3.0, f0=100.0 + 13 * i, seed=60 + i) for i in range(4)}
    whole = ScoringPipeline(model)
    for name, x in clips.items():
        whole.push(name, x)
    ref = {(w.stream, w.index): w.score for w in whole.flush()}
    pipe, pos, got = ScoringPipeline(model), {n: 0 for n in clips}, {}
    while any(pos[n] < len(x) for n, x in clips.items()):
        for name, x in clips.items():
            step = int(rng.integers(1, 4000))
            pipe.push(name, x[pos[name]:pos[name] + step], start_sample=pos[name])
            pos[name] += step
        if rng.random() < 0.4:
            got.update({(w.stream, w.index): w.score for w in pipe.flush()})
    got.update({(w.stream, w.index): w.score for w in pipe.flush()})
    assert got.keys() == ref.keys() and len(ref) > 10
    rel = max(abs(got[k] - ref[k]) / abs(ref[k]) for k in ref)
    assert rel <= 1e-5
