"""``--config FILE`` for the offline commands: decide exactly as the service does.

``replay``, ``listen`` and ``evaluate`` take the service config's ``alerting:`` section
(hysteresis, input checks) and, when no ``--model`` is given, the model (and threshold
override) its ``models:`` routes give the stream ids at hand, so the same audio yields the same
events whichever way it arrives.
"""
from __future__ import annotations

import argparse
import fnmatch
from dataclasses import dataclass

from workers.input_health import AudioHealthSpec

from monitor.alerting import HysteresisSpec
from monitor.config import load_config
from monitor.errors import ConfigError


@dataclass(frozen=True)
class Decisions:
    model: str
    threshold: float | None
    hysteresis: HysteresisSpec
    health: AudioHealthSpec | None


def add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="a service config: use its alerting settings and, without --model, the model "
                        "its routes give these streams, so this command decides as the service does")


def decisions(args: argparse.Namespace, *, streams: list[str], health: AudioHealthSpec | None) -> Decisions:
    """The model and alerting settings for ``streams``; ``health`` applies without ``--config``."""
    threshold = getattr(args, "threshold", None)
    if not getattr(args, "config", None):
        if not args.model:
            raise ConfigError("give --model MODEL_DIR, or --config FILE whose routes name the model")
        return Decisions(args.model, threshold, HysteresisSpec(), health)
    cfg = load_config(args.config)
    model = args.model
    if not model:
        if not streams:
            raise ConfigError("no streams found to route: give --model MODEL_DIR")
        routed = {}
        for s in streams:
            hit = next((r for r in cfg.models if fnmatch.fnmatchcase(s, r.streams)), None)
            if hit is None:
                raise ConfigError(f"{args.config}: no models[].streams pattern matches stream {s!r}")
            routed.setdefault((hit.model, hit.threshold), []).append(s)
        if len(routed) != 1:
            parts = "; ".join(f"{m} for {', '.join(ss[:3])}" for (m, _), ss in routed.items())
            raise ConfigError(f"{args.config}: these streams route to different models ({parts}): "
                              "run one model at a time")
        model, route_threshold = next(iter(routed))
        threshold = threshold if threshold is not None else route_threshold
    return Decisions(model, threshold, cfg.alerting.hysteresis(), cfg.alerting.health())
