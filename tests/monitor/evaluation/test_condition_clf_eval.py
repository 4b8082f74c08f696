"""monitor evaluate on a condition-clf model: each clip's row says what it claimed (its
condition) and what it looked most like."""
from __future__ import annotations

import soundfile as sf

from monitor.evaluation.dcase import evaluate_audio
from monitor.synth import machine_sound
from monitor.training.audio import TrainOptions, train_audio
from workers.model import load_model


def test_rows_name_the_condition_a_clip_looked_most_like(tmp_path):
    for part, n in (("train", 8), ("test", 4)):
        (tmp_path / part).mkdir()
        for i in range(n):
            pat, f0 = ("pat_00", 110.0) if i % 2 else ("pat_01", 190.0)
            sf.write(tmp_path / part / f"section_00_source_{part}_normal_{i:04d}_{pat}.wav",
                     machine_sound(seconds=6.0, f0=f0, seed=i + 10 * (part == "test")), 16000, subtype="PCM_16")
    sf.write(tmp_path / "test" / "section_00_source_test_anomaly_0000_pat_00.wav",
             machine_sound(seconds=6.0, f0=150.0, seed=30), 16000, subtype="PCM_16")
    folder, _ = train_audio(tmp_path / "train", tmp_path / "m", TrainOptions(
        scorer="condition-clf", device="cpu", holdout=0.25,
        params={"epochs": 8, "channels": [4, 4], "embed": 8, "stats_embed": 4}))
    res = evaluate_audio(load_model(folder, device="cpu"), tmp_path / "test")
    rows = res["rows"]
    assert all(r["condition"] in ("section_00_pat_00", "section_00_pat_01") for r in rows)
    assert all(set(r["condition_distances"]) == {"section_00_pat_00", "section_00_pat_01"} for r in rows)
    assert all(r["looked_most_like"] == min(r["condition_distances"], key=r["condition_distances"].get)
               for r in rows)
    assert 0.0 <= res["normal_clips_nearest_own_condition"] <= 1.0
