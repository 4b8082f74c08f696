"""Conditions of clips: from DCASE names, from a CSV, and what training hands a scorer."""
from __future__ import annotations

import pytest
import torch

from models.registry import scorer_class
from monitor.conditions import condition_from_name, condition_lookup, fit_context
from monitor.errors import DataError


@pytest.mark.parametrize("name,condition", [
    ("section_00_source_test_normal_0001_pat_01.wav", "section_00_pat_01"),
    ("fan_train_section_00_source_train_normal_0040_m-n_X.wav", "section_00_m-n_X"),
    ("gearbox_test_section_00_target_test_anomaly_0040_volt_1.5_wt_130.wav", "section_00_volt_1.5_wt_130"),
    ("normal_id_00_00000000.wav", "id_00"),
    ("clip_0003.wav", None),
])
def test_condition_from_dcase_names(name, condition):
    assert condition_from_name(name) == condition


def test_conditions_csv_joins_columns_and_names_missing_clips(tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text("clip,machine,program\na.wav,press-2,P7\nsub/b.wav,press-2,P8\n")
    lookup = condition_lookup(csv)
    assert lookup("a.wav") == "press-2_P7" and lookup("b.wav") == "press-2_P8"
    with pytest.raises(DataError, match="no condition for clip c.wav"):
        lookup("c.wav")
    (tmp_path / "bad.csv").write_text("name,x\na,b\n")
    with pytest.raises(DataError, match="'clip' column"):
        condition_lookup(tmp_path / "bad.csv")


def test_fit_context_gives_one_value_per_vector():
    vectors = {"section_00_source_train_normal_0001_pat_01.wav": torch.zeros(3, 2, 2),
               "section_00_source_train_normal_0002_pat_02.wav": torch.zeros(2, 2, 2)}
    ctx = fit_context(scorer_class("condition-clf"), vectors)
    assert ctx["conditions"] == ["section_00_pat_01"] * 3 + ["section_00_pat_02"] * 2
    ids = fit_context(scorer_class("stats-maha"), vectors)["clip_ids"]
    assert ids.tolist() == [0, 0, 0, 1, 1]
    assert fit_context(scorer_class("ae"), vectors) == {}
    with pytest.raises(DataError, match="no condition in the names"):
        fit_context(scorer_class("condition-clf"), {**vectors, "clip.wav": torch.zeros(1, 2, 2)})
    with pytest.raises(DataError, match="does not learn from other machines"):
        fit_context(scorer_class("ae"), vectors, exposure=torch.zeros(1, 2, 2))
