"""The sensor default rules: period, bounded window, bounded training stride (seeded synthetic data)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.base import EarlyStopping, train_by_epochs
from models.registry import scorer_class
from models.sensor_rules import SensorRule, dominant_period, sensor_settings


def _sine(n: int, period: int, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(n))[:, None]


def test_period_of_a_noisy_sine_and_none_for_noise():
    assert dominant_period(_sine(3000, 48), 200) == 48
    assert dominant_period(np.random.default_rng(1).standard_normal((3000, 2)), 200) == 0
    assert dominant_period(_sine(30, 48), 200) == 0  # too short to search


def test_window_follows_the_period_within_bounds():
    rule = SensorRule(frames=100, min_frames=30, train_windows=500)
    assert rule.window([_sine(5000, 48)]) == (48, 48)
    assert rule.window([_sine(5000, 10)])[0] == 30  # below the floor
    assert rule.window([_sine(5000, 150)])[0] == 100  # a period longer than the cap
    assert rule.window([_sine(5000, 48), _sine(200, 48)])[0] == 48  # the longest segment decides
    noise = [np.random.default_rng(2).standard_normal((5000, 1))]
    assert rule.window(noise) == (100, 0)  # no period: the anchor window
    assert rule.window([noise[0][:320]])[0] == 64  # at most a fifth of the training rows
    assert SensorRule(frames=60, min_frames=20, train_windows=None, multiple=4).window([_sine(5000, 43)])[0] == 40
    assert SensorRule(frames=250, min_frames=30, no_period=30, period_extra=20,
                      train_windows=None).window(noise) == (30, 0)


def test_stride_bounds_the_windows_per_fit_and_hand_values_win():
    rule = SensorRule(frames=100, min_frames=30, train_windows=500)
    got = sensor_settings(rule, [_sine(4032, 288)])
    assert got["frames"] == 100 and got["train_stride"] == 8 and got["set_by"] == {"frames": "rule",
                                                                                   "train_stride": "rule"}
    assert len(range(0, 4032 - 100 + 1, got["train_stride"])) <= 500
    assert sensor_settings(rule, [_sine(4032, 288)], frames=50, train_stride=3) == {
        "frames": 50, "train_stride": 3, "period": 0, "set_by": {}}
    assert SensorRule(frames=250, min_frames=30, train_windows=None).stride(10**6) == 1


@pytest.mark.parametrize("name", ["tadgan", "lstm", "arima", "conv-ae", "ae"])
def test_every_sensor_scorer_declares_its_rule(name):
    rule = scorer_class(name).sensor_rule
    assert rule.min_frames <= rule.frames


def test_early_stopping_restores_the_best_epoch_or_keeps_the_last():
    net = torch.nn.Linear(1, 1, bias=False)
    vals = iter([3.0, 1.0, 2.0, 2.0, 2.0, 0.5])
    weights = []

    def epoch() -> float:
        with torch.no_grad():
            net.weight += 1.0
        weights.append(float(net.weight.detach()))
        return 1.0

    info = train_by_epochs("t", net, epoch, epochs=6, val_loss=lambda: next(vals),
                           stopping=EarlyStopping(patience=3))
    assert info["epochs"] == 5 and info["best_epoch"] == 2 and info["stopped_early"]
    assert float(net.weight.detach()) == weights[1]  # the best epoch's weights are back
    net2 = torch.nn.Linear(1, 1, bias=False)
    net = net2
    vals = iter([3.0, 1.0, 2.0, 2.0, 2.0])
    weights.clear()
    info = train_by_epochs("t", net, epoch, epochs=6, val_loss=lambda: next(vals),
                           stopping=EarlyStopping(patience=3, restore_best=False))
    assert float(net.weight.detach()) == weights[-1] and info["validation_loss"] == 1.0
    info = train_by_epochs("t", net, epoch, epochs=4, val_loss=None, stopping=EarlyStopping(patience=1))
    assert info["epochs"] == 4 and info["best_epoch"] is None
