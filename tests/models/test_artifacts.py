"""Model folders: round trip, latest, and every broken file is one clear error."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from models.artifacts import LATEST, read_model, resolve_model_dir, save_model
from models.errors import ModelFileError

META = {"scorer": "ae", "model_version": "ae-1", "input": {"frames": 5, "features": 4},
        "features": {}, "threshold": None}


def _save(root, version="ae-1"):
    return save_model(root, meta={**META, "model_version": version},
                      state={"scorer.w": torch.arange(4.0), "frontend.mel_fb": torch.ones(2, 3)})


def test_round_trip_and_latest(tmp_path):
    v1 = _save(tmp_path, "ae-1")
    v2 = _save(tmp_path, "ae-2")
    assert (tmp_path / LATEST).read_text().strip() == "ae-2"
    folder, meta, state = read_model(tmp_path)
    assert folder == v2 and meta["model_version"] == "ae-2"
    torch.testing.assert_close(state["scorer.w"], torch.arange(4.0))
    assert read_model(v1)[1]["model_version"] == "ae-1"


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        resolve_model_dir(tmp_path / "nope")
    with pytest.raises(ModelFileError, match="not a model directory"):
        resolve_model_dir(tmp_path)
    v = _save(tmp_path)
    os.remove(v / "weights.pt")
    with pytest.raises(ModelFileError, match=r"weights\.pt: missing"):
        read_model(v)


def test_truncated_weights(tmp_path):
    v = _save(tmp_path)
    data = (v / "weights.pt").read_bytes()
    (v / "weights.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"weights\.pt: cannot be loaded"):
        read_model(v)


def test_foreign_pickle_is_refused_not_executed(tmp_path):
    v = _save(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (v / "weights.pt").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(ModelFileError, match=r"weights\.pt"):
        read_model(v)
    assert not marker.exists()


def test_foreign_or_broken_meta(tmp_path):
    v = _save(tmp_path)
    (v / "meta.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"meta\.json: unreadable"):
        read_model(v)
    (v / "meta.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="not a monitor-model/1 file"):
        read_model(v)
    (tmp_path / LATEST).write_text("../../etc\n")
    with pytest.raises(ModelFileError, match="does not name a model version"):
        read_model(tmp_path)
