"""No broken model goes live: bad training arguments, a non-finite loss or threshold, NaN
weights in a new version, and model folders another user cannot read (issue 19, item 3)."""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from models.artifacts import LATEST, PROBE, read_model, save_model, set_latest
from models.errors import ModelFileError
from monitor.cli import main
from monitor.runtime.model_watch import ModelWatcher
from monitor.training.audio import TrainOptions, train_audio
from workers.model import load_model

ROOT = Path(__file__).resolve().parents[3]
NOBODY = 65534


def _copy_version(folder: Path, name: str, *, meta_edit=None, state_edit=None) -> Path:
    """A copy of the version ``folder`` beside it under a new name, with edited meta or weights."""
    folder, meta, state = read_model(folder)
    new = folder.parent / name
    shutil.copytree(folder, new)
    meta["model_version"] = name
    if meta_edit:
        meta_edit(meta)
    if state_edit:
        state_edit(state)
        torch.save(state, new / "weights.pt")
    (new / "meta.json").write_text(json.dumps(meta))
    return new


def test_negative_epochs_is_refused_before_any_work(factory, tmp_path, capsys):
    """Why: `train --epochs -3` printed loss nan, exited 0 and moved latest."""
    out = tmp_path / "m"
    assert main(["train", "--data", factory["train"], "--out", str(out), "--epochs", "-3"]) == 2
    err = capsys.readouterr().err
    assert "--epochs -3: must be 1 or more" in err and not out.exists()
    for flags, text in ((["--holdout", "1.5"], "--holdout 1.5"), (["--threshold-q", "nan"], "--threshold-q nan"),
                        (["--threshold-folds", "1"], "--threshold-folds 1")):
        assert main(["train", "--data", factory["train"], "--out", str(out), *flags]) == 2
        assert text in capsys.readouterr().err


def test_a_run_ending_with_a_nan_loss_writes_nothing(factory, tmp_path, trained_model):
    root = tmp_path / "M"
    shutil.copytree(trained_model, root)
    before = sorted(p.name for p in root.iterdir())
    # zero epochs (what --epochs -3 did): the scorer reports a NaN loss and random weights
    with pytest.raises(ModelFileError, match=r"non-finite loss \(nan\).*latest left unchanged"):
        train_audio(factory["train"], root, TrainOptions(epochs=0, device="cpu"))
    assert sorted(p.name for p in root.iterdir()) == before


def test_save_refuses_a_non_finite_threshold_or_weights(tmp_path):
    meta = {"scorer": "ae", "model_version": "ae-1", "input": {}, "features": {},
            "threshold": {"value": 3.0}}
    save_model(tmp_path, meta=meta, state={"scorer.w": torch.ones(3)})
    with pytest.raises(ModelFileError, match=r"threshold is not finite \(inf\)"):
        save_model(tmp_path, meta={**meta, "model_version": "ae-2", "threshold": {"value": math.inf}},
                   state={"scorer.w": torch.ones(3)})
    with pytest.raises(ModelFileError, match=r"non-finite values in scorer\.w"):
        save_model(tmp_path, meta={**meta, "model_version": "ae-3"},
                   state={"scorer.w": torch.tensor([1.0, float("nan")])})
    assert (tmp_path / LATEST).read_text().strip() == "ae-1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae-1", LATEST]


def test_trained_models_store_probe_windows_that_score_finite(trained_model):
    model = load_model(trained_model, device="cpu")
    assert model.probe is not None and model.probe.shape[1:] == (model.scorer.input_spec.frames,
                                                                 model.scorer.input_spec.features)
    assert 1 <= len(model.probe) <= 8
    assert torch.isfinite(model.scorer.score(model.probe)).all()


@pytest.mark.parametrize("fault", ["nan-weights", "inf-threshold"])
def test_hot_reload_keeps_serving_the_old_model_when_the_new_one_is_broken(trained_model, tmp_path,
                                                                           fault, caplog):
    """Why: running workers hot-loaded the broken version within 5 s."""
    root = tmp_path / "M"
    shutil.copytree(trained_model, root)
    model = load_model(root, device="cpu")
    watcher = ModelWatcher(root, current_version=model.version, every_s=0.0, device="cpu")
    if fault == "nan-weights":
        def edit(state):
            key = next(k for k in state if k.startswith("scorer.") and state[k].is_floating_point())
            state[key] = torch.full_like(state[key], float("nan"))
        _copy_version(model.folder, "ae-broken", state_edit=edit)
    else:
        _copy_version(model.folder, "ae-broken", meta_edit=lambda m: m["threshold"].update(value=math.inf))
    set_latest(root, "ae-broken")
    with caplog.at_level(logging.WARNING):
        assert watcher.poll() is None
    assert watcher.current == model.version
    text = caplog.text
    assert "ae-broken not used, still serving " + model.version in text
    assert ("score non-finite" in text or "non-finite weights" in text) if fault == "nan-weights" \
        else "threshold is not finite" in text
    # a good version after it is taken
    _copy_version(model.folder, "ae-good")
    set_latest(root, "ae-good")
    assert watcher.poll().version == "ae-good"


def test_a_model_without_probe_windows_still_reloads(trained_model, tmp_path):
    root = tmp_path / "M"
    shutil.copytree(trained_model, root)
    model = load_model(root, device="cpu")
    watcher = ModelWatcher(root, current_version=model.version, every_s=0.0, device="cpu")
    _copy_version(model.folder, "ae-old-format", state_edit=lambda s: s.pop(PROBE))
    set_latest(root, "ae-old-format")
    assert watcher.poll().version == "ae-old-format"


@pytest.mark.parametrize("umask,dir_mode,file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_version_folders_follow_the_umask_not_0700(tmp_path, umask, dir_mode, file_mode):
    """Why: version folders were 0700 (tempfile.mkdtemp), unreadable to the unit's User=monitor."""
    old = os.umask(umask)
    try:
        folder = save_model(tmp_path, meta={"scorer": "ae", "model_version": "ae-1", "input": {},
                                            "features": {}, "threshold": None},
                            state={"scorer.w": torch.ones(2)})
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == dir_mode
    for name in ("meta.json", "weights.pt"):
        assert (folder / name).stat().st_mode & 0o777 == file_mode
    assert (tmp_path / LATEST).stat().st_mode & 0o777 == file_mode


def _without_root_powers(args: list[str]) -> subprocess.CompletedProcess:
    """The command as a user whom file modes bind: root without the capabilities that bypass
    them (the interpreter lives under /root, so another uid could not even start it)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv (util-linux) to drop the file-permission capabilities")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable,
                           "-m", "monitor", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def shared_tmp():
    """A folder every user can enter (pytest's own tmp_path is 0700 under root)."""
    d = Path(tempfile.mkdtemp(prefix="golive-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def test_a_model_another_user_cannot_read_is_one_line_naming_the_path(trained_model, factory, shared_tmp):
    """Why: the permission problem was a traceback."""
    root = shared_tmp / "M"
    shutil.copytree(trained_model, root)
    version = root / (root / LATEST).read_text().strip()
    for p in [version, *version.iterdir()]:
        os.chown(p, NOBODY, NOBODY)  # another user's files ...
    version.chmod(0o700)  # ... in a 0700 folder, what tempfile.mkdtemp used to leave
    data = shared_tmp / "clips"
    shutil.copytree(factory["test"], data)
    r = _without_root_powers(["evaluate", "--model", str(root), "--data", str(data), "--device", "cpu"])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{version}" in r.stderr and "permission denied" in r.stderr


def test_an_unwritable_output_folder_is_refused_before_training(factory, shared_tmp):
    locked = shared_tmp / "models"
    locked.mkdir(mode=0o755)
    os.chown(locked, NOBODY, NOBODY)  # another user's folder, not writable by us
    r = _without_root_powers(["train", "--data", factory["train"], "--out", str(locked / "pump"), "--epochs", "1"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{locked}: not writable by this user" in r.stderr and "epoch" not in r.stderr
