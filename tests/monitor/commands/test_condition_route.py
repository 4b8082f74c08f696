"""A condition-clf model behind a service route: the route names the stream's condition, and
check-config --load-models refuses a route without one or with one the model does not know."""
from __future__ import annotations

import pytest
import soundfile as sf

from monitor.cli import main
from monitor.synth import machine_sound
from monitor.training.audio import TrainOptions, train_audio


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond")
    data = root / "train"
    data.mkdir()
    for i in range(8):  # two 'programs' of one valve: different fundamentals
        pat, f0 = ("pat_00", 110.0) if i % 2 else ("pat_01", 190.0)
        sf.write(data / f"section_00_source_train_normal_{i:04d}_{pat}.wav",
                 machine_sound(seconds=6.0, f0=f0, seed=i), 16000, subtype="PCM_16")
    folder, meta = train_audio(data, root / "model", TrainOptions(
        scorer="condition-clf", device="cpu", holdout=0.25,
        params={"epochs": 2, "channels": [4, 4], "embed": 8, "stats_embed": 4}))
    assert meta["params"]["conditions"][:meta["params"]["known"]] == ["section_00_pat_00", "section_00_pat_01"]
    return folder


def _check(tmp_path, capsys, route_extra: str, model_dir):
    p = tmp_path / "c.yaml"
    p.write_text(f"models:\n  - streams: 'line1/valve-*'\n    model: {model_dir}\n{route_extra}")
    rc = main(["check-config", "--load-models", str(p)])
    return rc, capsys.readouterr().err


def test_a_route_with_a_known_condition_loads(tmp_path, capsys, model_dir):
    rc, err = _check(tmp_path, capsys, "    condition: section_00_pat_01\n", model_dir)
    assert rc == 0, err


@pytest.mark.parametrize("extra, needle", [
    ("", "the stream's condition must be given"),
    ("    condition: section_00_pat_07\n", "unknown condition 'section_00_pat_07'; this model knows "
                                           "section_00_pat_00, section_00_pat_01"),
])
def test_a_route_without_or_with_an_unknown_condition_is_refused(tmp_path, capsys, model_dir, extra, needle):
    rc, err = _check(tmp_path, capsys, extra, model_dir)
    assert rc != 0 and "models[0].model" in err and needle in err
