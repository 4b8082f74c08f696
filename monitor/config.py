"""Service configuration: YAML -> frozen dataclasses (DESIGN §4.6).

Overrides, later wins: defaults < file < env ``MONITOR__SECTION__KEY`` < ``--set section.key=value``.
Unknown keys are rejected with their path, values are type- and range-checked at load, and
secrets are masked whenever the config is printed or logged.
"""
from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workers.input_health import AudioHealthSpec

from monitor.alerting.hysteresis import HysteresisSpec
from monitor.errors import ConfigError

SECRET = "***"


def _f(default: Any, *, lo: float | None = None, hi: float | None = None,
       choices: tuple | None = None, secret: bool = False, help: str = "") -> Any:
    meta = {"lo": lo, "hi": hi, "choices": choices, "secret": secret, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str = _f("localhost:9092", help="host:port[,host:port...] of the Kafka brokers")
    group_id: str = _f("machine-monitor", help="consumer group; workers with the same id share partitions")
    client_id: str = _f("machine-monitor")
    audio_topic: str = _f("machine-audio")
    sensor_topic: str = _f("machine-sensors", help="'' to not consume sensor readings")
    events_topic: str = _f("machine-events")
    dead_letter_topic: str = _f("machine-dead-letter")
    state_topic: str = _f("", help="where the service checkpoints each audio stream's state "
                          "(service.checkpoint_state); '' = <group_id>-<audio_topic>-state, created "
                          "compacted with the audio topic's partition count when missing")
    auto_offset_reset: str = _f("earliest", choices=("earliest", "latest"))
    session_timeout_ms: int = _f(10000, lo=1000, hi=300000)
    heartbeat_interval_ms: int = _f(3000, lo=100, hi=100000)
    max_poll_records: int = _f(2000, lo=1, hi=100000)
    max_poll_interval_ms: int = _f(300000, lo=1000)
    fetch_max_bytes: int = _f(52428800, lo=1024)
    max_partition_fetch_bytes: int = _f(8388608, lo=1024)
    fetch_max_wait_ms: int = _f(20, lo=0, hi=60000, help="longest the broker may hold a fetch "
                                "waiting for data: every chunk can wait this long before the worker "
                                "sees it")
    security_protocol: str = _f("PLAINTEXT", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    sasl_mechanism: str = _f("", choices=("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    sasl_username: str = _f("")
    sasl_password: str = _f("", secret=True)
    ssl_cafile: str = _f("")
    ssl_certfile: str = _f("")
    ssl_keyfile: str = _f("")
    connect_retry_max_s: float = _f(5.0, lo=0.1, hi=300)
    client: str = _f("auto", choices=("auto", "kafka-python", "confluent"),
                     help="the worker's consumer: confluent (librdkafka, ~4x less CPU per message; "
                     "pip install 'machine-monitor[fast-kafka]'), kafka-python (pure Python), or "
                     "auto = confluent when installed")

    def __post_init__(self) -> None:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ConfigError(f"kafka.heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be at most "
                              f"a third of kafka.session_timeout_ms ({self.session_timeout_ms})")


@dataclass(frozen=True)
class RouteConfig:
    streams: str = _f("*", help="glob over stream ids (the Kafka key), e.g. 'line3/pump-*'")
    model: str = _f("", help="model folder (its 'latest' version) or a version folder")
    threshold: float | None = _f(None, help="override the model's stored threshold for these streams")
    condition: str | None = _f(None, help="the operating condition these streams run under, for a "
                               "model that knows several (condition-clf), e.g. 'section_00_pat_01'")

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("models[].model is required")
        if self.threshold is not None and not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ConfigError(f"threshold must be a finite number above 0, got {self.threshold}")


@dataclass(frozen=True)
class ServiceConfig:
    device: str = _f("auto", help="auto = CUDA when present, else CPU")
    workers: int = _f(1, lo=1, hi=256)
    max_batch: int = _f(1024, lo=1, hi=1_000_000, help="vectors queued before a scoring call: smaller "
                        "batches cost a little per-call overhead but wait less")
    max_wait_ms: int = _f(200, lo=0, hi=60000, help="longest a chunk waits before it is scored")
    commit_interval_ms: int = _f(1000, lo=10, hi=600000)
    gap_tolerance_ms: float = _f(50.0, lo=0, hi=3_600_000)
    poll_timeout_ms: int = _f(100, lo=1, hi=10000)
    windows_log: str = _f("", help="JSON-lines audit of every scored window ('' = off)")
    torch_threads: int = _f(1, lo=0, hi=256, help="torch intra-op threads per worker (0 = torch's "
                            "default, one per core): the consumer and the scorer share a worker, and "
                            "extra threads spin against it on a busy box; scale out with --workers")
    gc_gen0_threshold: int = _f(50000, lo=0, hi=10_000_000, help="allocations between the "
                                "youngest garbage collections (Python's default 700; 0 = keep it): "
                                "with many streams frequent collections cost CPU and delay; the "
                                "objects alive at start (models, torch) are frozen out of "
                                "collections either way")
    heap_keep_mb: int = _f(64, lo=0, hi=65536, help="freed C-heap memory the worker keeps for "
                           "the next flush instead of returning it and faulting its pages in "
                           "again (glibc; 0 = the C library's default); costs at most this much "
                           "more resident memory")
    stream_idle_s: float = _f(10.0, lo=0, hi=86400, help="a stream with no message for this long "
                              "(while the worker is caught up with its partitions) is finished as if "
                              "its last chunk carried eos: last windows scored, an open event closed, "
                              "a 'stream-idle' event raised, its state dropped, so it no longer holds "
                              "its partition's commit back; 0 = never. 10 s = 20 alerting-window hops "
                              "(an open event needs 3 quiet hops to close), 100 chunk periods at 100 ms, "
                              "and the consumer's session timeout, so a hiccup is not a stopped machine")
    max_chunk_s: float = _f(5.0, lo=0.001, hi=3600, help="longest audio one message may carry; a "
                            "longer chunk goes to the dead-letter topic as 'oversized-chunk' "
                            "(producers send 0.1 s chunks; 50x that is no live capture)")
    max_ts_ahead_s: float = _f(300.0, lo=0, hi=10 * 365 * 86400, help="a capture time (ts) more than "
                               "this after the message's Kafka timestamp is implausible (recorded "
                               "after it was sent): dead letter 'ts-ahead-of-message'; allows for "
                               "unsynchronised clocks; 0 = no check")
    max_ts_behind_s: float = _f(0.0, lo=0, hi=100 * 365 * 86400, help="a capture time more than this "
                                "before the message's Kafka timestamp: dead letter "
                                "'ts-behind-message'; 0 = no check (the default: recorded audio "
                                "replayed through Kafka and edge buffers emptied after an outage carry "
                                "old capture times, and `monitor demo` streams start at the epoch)")
    checkpoint_state: bool = _f(True, help="at every commit, write each audio stream's state "
                                "(open event, hysteresis, where its unfinished window starts) to "
                                "kafka.state_topic, so a partition commits what its scored windows no "
                                "longer need and a restart takes the streams over where they were; "
                                "false = a partition commits at its streams' last quiet point and a "
                                "restart re-reads from there")
    model_reload_s: float = _f(5.0, lo=0, hi=86400, help="how often each worker looks for a new "
                               "version in an audio model's folder (its 'latest' file) and swaps it "
                               "in without a restart, re-scoring the windows not yet emitted; 0 = off")


@dataclass(frozen=True)
class AlertingConfig:
    """How window scores become events; `replay`, `listen` and `evaluate` read it too (--config)."""

    k: int = _f(HysteresisSpec.k, lo=1, hi=1000, help="an event opens when k of the last n windows "
                "are over the threshold")
    n: int = _f(HysteresisSpec.n, lo=1, hi=1000)
    m: int = _f(HysteresisSpec.m, lo=1, hi=1000, help="an event closes after m windows in a row "
                "under the threshold")
    input_health: bool = _f(True, help="audio input checks: clipping and a dead input are reported "
                            "as their own event kinds, and a dead input's windows are kept out of "
                            "machine alerting")

    def __post_init__(self) -> None:
        try:
            self.hysteresis()
        except ValueError as exc:
            raise ConfigError(f"alerting.k/n/m: {exc}") from None

    def hysteresis(self) -> HysteresisSpec:
        return HysteresisSpec(self.k, self.n, self.m)

    def health(self) -> AudioHealthSpec | None:
        return AudioHealthSpec() if self.input_health else None


@dataclass(frozen=True)
class SinksConfig:
    kafka: bool = _f(True, help="publish events to kafka.events_topic")
    jsonl: str = _f("", help="also append events to this JSON-lines file ('' = off)")
    stdout: bool = _f(False, help="print one line per event")
    event_audio: str = _f("", help="folder where the audio of each machine event is kept as "
                          "<event_id>.wav, so `monitor label` has sound behind a label, and a "
                          "sensor model's event as its grid rows, <event_id>.json ('' = off)")
    event_audio_max_mb: int = _f(256, lo=1, hi=1_000_000, help="size bound of that folder per "
                                 "worker and model; the oldest events are evicted first")
    event_audio_retain_s: float = _f(5.0, lo=0.5, hi=600, help="seconds of recent audio kept per "
                                     "stream in memory (must cover an event's first windows); "
                                     "sensor streams keep at least what their model's events need")


@dataclass(frozen=True)
class HealthConfig:
    host: str = _f("127.0.0.1")
    port: int = _f(9108, lo=0, hi=65535, help="0 = no HTTP server; worker i listens on port + i")
    stream_metrics: int = _f(200, lo=0, hi=100000, help="per-stream series (latest window score, "
                             "events) for the first this many streams a worker sees; later ones "
                             "are counted under stream=\"other\"; 0 = none")
    stall_s: float = _f(60.0, lo=1, hi=86400, help="/healthz/live turns false when the worker's "
                        "poll loop has not come round for this long (a hung scoring call, a "
                        "blocked sink); well under kafka.max_poll_interval_ms, after which the "
                        "group drops the worker anyway")
    max_threads: int = _f(8, lo=1, hi=256, help="HTTP requests served at once; more are refused "
                          "(a scraper and a probe need two)")
    request_timeout_s: float = _f(5.0, lo=0.1, hi=300, help="an HTTP connection idle this long is "
                                  "closed, so slow or idle clients cannot hold the threads")


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    models: list[RouteConfig] = field(default_factory=list)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    health: HealthConfig = field(default_factory=HealthConfig)


def _build(cls: type, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown key {where}{unknown[0]} (known: {', '.join(fields)})")
    kw = {}
    for name, value in data.items():
        kw[name] = _convert_field(hints[name], value, f"{path}.{name}" if path else name, fields[name].metadata)
    try:
        return cls(**kw)
    except ConfigError as exc:
        raise ConfigError(f"{path + ': ' if path else ''}{exc}") from None


class _OverrideText(str):
    """An env or ``--set`` value as typed: a string key takes it verbatim (``0123`` stays
    ``0123``, ``0x1F`` stays ``0x1F``); any other key reads it as YAML (numbers, lists, null)."""


def _convert(tp: Any, value: Any, path: str, meta: Any) -> Any:
    if isinstance(value, _OverrideText):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        value = str(value) if (tp is str or args == [str]) else _parse_value(str(value))
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        tp = args[0]
        origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return [_convert(item, v, f"{path}[{i}]", {}) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            value = value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
    elif tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            value = tp(value) if tp is float or not isinstance(value, float) or value.is_integer() else None
        except ValueError:
            value = None
        if value is None:
            raise ConfigError(f"{path}: expected {'an integer' if tp is int else 'a number'}")
        lo, hi = meta.get("lo"), meta.get("hi")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{path}: {value} is out of range [{lo}, {hi if hi is not None else 'inf'}]")
    elif tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
    choices = meta.get("choices") if meta else None
    if choices and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, choices))}")
    return value


def _convert_field(tp: Any, value: Any, path: str, meta: Any) -> Any:
    """``_convert``, with a secret's value kept out of the error message."""
    try:
        return _convert(tp, value, path, meta)
    except ConfigError as exc:
        if not meta.get("secret"):
            raise
        raise ConfigError(f"{path}: expected a string (value not shown: it is a secret), got a "
                          f"{type(value).__name__}") from None


def _set_path(tree: dict, dotted: str, value: Any, origin: str) -> None:
    keys = [k for k in dotted.split(".") if k]
    if not keys:
        raise ConfigError(f"{origin}: empty key")
    node = tree
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{origin}: {k} is not a section")
        node = nxt
    node[keys[-1]] = value


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (the later one would
    silently win: a pasted ``ssl_cafile`` below an older one)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path | None = None, *, overrides: list[str] = (),
                env: dict[str, str] | None = None) -> Config:
    """Read ``path`` (or defaults), then env ``MONITOR__SECTION__KEY``, then ``section.key=value``."""
    tree: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            tree = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{p}: {where}{problem}") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot be read ({exc.strerror})") from None
        if tree is None:
            raise ConfigError(f"{p}: the file is empty (a service config needs at least kafka: "
                              "and models:; see configs/edge.yaml)")
        if not isinstance(tree, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
    env = os.environ if env is None else env
    for key, value in sorted(env.items()):
        if key.startswith("MONITOR__"):
            dotted = ".".join(k.lower() for k in key[len("MONITOR__"):].split("__"))
            _set_path(tree, dotted, _OverrideText(value), f"env {key}")
    for item in overrides:
        if "=" not in item:
            raise ConfigError("--set: expected section.key=value, got an item without '='")
        k, v = item.split("=", 1)
        _set_path(tree, k.strip(), _OverrideText(v), f"--set {k.strip()}=...")
    try:
        return _build(Config, tree, "")
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None


def to_dict(cfg: Any, *, mask: bool = True) -> Any:
    """The config as plain data; secret values replaced by ``***`` when set and ``mask``."""
    if dataclasses.is_dataclass(cfg):
        out = {}
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            out[f.name] = SECRET if (mask and f.metadata.get("secret") and v) else to_dict(v, mask=mask)
        return out
    if isinstance(cfg, list):
        return [to_dict(v, mask=mask) for v in cfg]
    return cfg


def dump(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)

