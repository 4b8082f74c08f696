"""Helpers for the ``kafka`` integration tests: a real Tansu broker, service processes, topics."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TOPICS = {"machine-audio": 4, "machine-sensors": 2, "machine-events": 1, "machine-dead-letter": 1}


def write_config(path: Path, *, bootstrap: str, routes: list[tuple[str, str]], events: Path,
                 windows: Path | None = None, health_port: int = 0, group: str | None = None,
                 extra: str = "", client: str = "auto") -> Path:
    group = group or f"test-{uuid.uuid4().hex[:10]}"
    lines = [
        "kafka:", f'  bootstrap: "{bootstrap}"', f"  group_id: {group}", f"  client: {client}",
        "  session_timeout_ms: 6000", "  heartbeat_interval_ms: 2000", "models:"]
    for pattern, model in routes:
        lines += [f'  - streams: "{pattern}"', f"    model: {model}"]
    lines += ["service:", "  device: cpu", "  commit_interval_ms: 300", "  max_wait_ms: 100"]
    if windows is not None:
        lines.append(f"  windows_log: {windows}")
    lines += ["sinks:", f"  jsonl: {events}", "health:", f"  port: {health_port}"]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def start_worker(config: Path, *, log: Path, workers: int | None = None, extra: list[str] = ()) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "monitor", "--log-format", "json", "run", "--config", str(config), *extra]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env)


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut by kill -9
    return out


def wait_for(pred, *, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def log_has(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text(errors="replace")


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout)


def windows_by_key(rows: list[dict]) -> dict[tuple, float]:
    return {(r["stream"], r["model_version"], r["index"]): r["score"] for r in rows}


def replay_reference(model_dir, folder) -> tuple[list[dict], dict[tuple, float]]:
    """Events and window scores of ``monitor replay`` on the same clips (the reference), with the
    input checks the service runs by default (``alerting.input_health``)."""
    from monitor.runtime.replay import replay
    from workers.input_health import AudioHealthSpec
    from workers.model import load_model

    model = load_model(model_dir, device="cpu")
    res = replay(model, folder, health=AudioHealthSpec())
    windows = {(r.summary.stream, model.version, w.index): w.score for r in res.streams for w in r.windows}
    return res.events, windows


def assert_scores_match(got: dict, want: dict, *, rel: float = 1e-5) -> None:
    missing = sorted(set(want) - set(got))
    assert not missing, f"{len(missing)} windows never scored, e.g. {missing[:3]}"
    extra = sorted(set(got) - set(want))
    assert not extra, f"{len(extra)} windows the replay does not have, e.g. {extra[:3]}"
    bad = [(k, got[k], want[k]) for k in want
           if abs(got[k] - want[k]) > rel * max(abs(want[k]), 1e-12)]
    assert not bad, f"{len(bad)} window scores differ beyond {rel}: {bad[:3]}"


def event_key(e: dict) -> tuple:
    return (e["event_id"], e["status"])


def consume_all(bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0) -> list:
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"reader-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=6000, heartbeat_interval_ms=2000)
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                out.extend(msgs)
        # a short grace poll: more than expected is a failure the caller should see
        for msgs in c.poll(timeout_ms=500).values():
            out.extend(msgs)
    finally:
        c.close()
    return out


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))
