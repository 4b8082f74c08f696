"""Secured Kafka for real: stunnel4 terminates TLS in front of Tansu, with a CA, server and client
certificates made by the test (openssl).

- The service consumes and publishes through plain TLS and mutual TLS, fed by ``monitor produce
  --config``, and delivers the same events as a plaintext run of the same clips (and as replay).
- A wrong CA, a client without the required certificate, a client certificate from a CA the
  server does not trust, and an unreachable endpoint each give a distinct one-line cause and the
  right exit status within 30 s: 2 for a refusal (settings), 69 for unreachable in one-shot
  commands, while ``monitor run`` keeps retrying an unreachable broker with the cause in each line.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from monitor.kafka.broker import create_topics, free_port

from .kafka_utils import (ROOT, TOPICS, event_key, read_jsonl, replay_reference, start_worker,
                          stop, wait_for, windows_by_key, write_config)
from .tls_utils import Stunnel, make_pki, start_endpoint, tls_lines

pytestmark = [pytest.mark.kafka, pytest.mark.wallclock]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def endpoints(pki, tmp_path_factory):
    work = tmp_path_factory.mktemp("endpoints")
    eps = {}
    try:
        for mode in ("plain", "tls", "mtls"):
            eps[mode] = start_endpoint(pki, mode, work)
            create_topics(eps[mode].bootstrap, TOPICS, client_options=eps[mode].options())
        yield eps
    finally:
        for ep in eps.values():
            ep.stop()


def _config(path: Path, bootstrap: str, kafka_lines: list[str], **kw) -> Path:
    p = write_config(path, bootstrap=bootstrap, **kw)
    p.write_text(p.read_text().replace("kafka:\n", "kafka:\n" + "".join(f"  {x}\n" for x in kafka_lines), 1))
    return p


def _monitor(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "monitor", "--log-format", "json", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _read_events(ep, *, expect: int, timeout: float = 30) -> list[dict]:
    import json

    from kafka import KafkaConsumer

    c = KafkaConsumer("machine-events", bootstrap_servers=ep.bootstrap, group_id=f"r-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=6000,
                      heartbeat_interval_ms=2000, **ep.options())
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                out.extend(json.loads(m.value) for m in msgs)
        for msgs in c.poll(timeout_ms=500).values():
            out.extend(json.loads(m.value) for m in msgs)
    finally:
        c.close()
    return out


def test_tls_and_mutual_tls_deliver_the_same_events_as_plaintext(endpoints, trained_model, factory, tmp_path):
    ref_events, ref_windows = replay_reference(trained_model, factory["test"])
    want = sorted(event_key(e) for e in ref_events)
    assert want, "the reference clips must raise events for this comparison to mean anything"
    got = {}
    # the consumer is kafka-python on one TLS run and librdkafka on the other: both mappings
    for mode, client in (("plain", "kafka-python"), ("tls", "kafka-python"), ("mtls", "confluent")):
        ep, d = endpoints[mode], tmp_path / mode
        d.mkdir()
        cfg = _config(d / "c.yaml", ep.bootstrap, ep.kafka_lines, routes=[("*", str(trained_model))],
                      events=d / "events.jsonl", windows=d / "windows.jsonl", client=client)
        # --start-ts 0: the clips sit on the sample grid as replay reads them (same windows)
        r = _monitor("produce", "audio", "--config", str(cfg), "--data", str(factory["test"]), "--start-ts", "0")
        assert r.returncode == 0, f"{mode}: produce failed: {r.stderr[-800:]}"
        proc = start_worker(cfg, log=d / "worker.log")
        try:
            wait_for(lambda: len(windows_by_key(read_jsonl(d / "windows.jsonl"))) >= len(ref_windows)
                     and len(read_jsonl(d / "events.jsonl")) >= len(want), timeout=180,
                     what=f"{mode}: all {len(ref_windows)} windows scored ({(d / 'worker.log')})")
        finally:
            assert stop(proc) == 0, (d / "worker.log").read_text()[-2000:]
        jsonl = sorted(event_key(e) for e in read_jsonl(d / "events.jsonl"))
        topic = sorted(event_key(e) for e in _read_events(ep, expect=len(jsonl)))
        assert topic == jsonl, f"{mode}: the events topic differs from the service's own record"
        # an operator reads them back through the same kafka: section, no Kafka tools needed
        r = _monitor("events", "--config", str(cfg), "--json")
        assert r.returncode == 0, r.stderr[-800:]
        import json

        assert sorted(event_key(json.loads(x)) for x in r.stdout.splitlines()) == jsonl
        got[mode] = jsonl
    assert got["plain"] == want
    assert got["tls"] == got["plain"] and got["mtls"] == got["plain"]


def _cases(endpoints, pki, workdir: Path) -> dict:
    """name -> (bootstrap, kafka lines, exit status of a one-shot command, words of the cause)."""
    dead = free_port()
    # TLS is up but nothing behind it: not the same thing as a refused client certificate
    orphan = Stunnel(pki, target=free_port(), mutual=True, workdir=workdir)
    return {
        "wrong-ca": (endpoints["tls"].bootstrap, tls_lines(pki, mutual=False, ca="other-ca.pem"), 2,
                     "certificate is not trusted"),
        "no-client-cert": (endpoints["mtls"].bootstrap, tls_lines(pki, mutual=False), 2,
                           "requires a client certificate"),
        "untrusted-client-cert": (endpoints["mtls"].bootstrap, tls_lines(pki, mutual=True, client="rogue"),
                                  2, "does not trust the client certificate"),
        "unreachable": (f"localhost:{dead}", tls_lines(pki, mutual=True), 69, "connection refused"),
        "nothing-behind-tls": (f"localhost:{orphan.port}", tls_lines(pki, mutual=True), 69,
                               "is the broker behind it down"),
    }, orphan


def _check_case(name: str, bootstrap: str, lines: list[str], status: int, cause: str, model: Path,
                tmp_path: Path) -> None:
    """``monitor produce``, ``check-config --connect`` and ``monitor run`` against one broken setup,
    started together; each must have answered within 30 s of its own start."""
    cfg = _config(tmp_path / f"{name}.yaml", bootstrap, lines, routes=[("*", str(model))],
                  events=tmp_path / f"{name}.events.jsonl")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path / f"{name}.run.log"
    t0 = time.monotonic()
    tools = {
        "produce": subprocess.Popen([sys.executable, "-m", "monitor", "produce", "sensors", "--config", str(cfg),
                                     "--data", str(cfg)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True),
        "check-config": subprocess.Popen([sys.executable, "-m", "monitor", "check-config", str(cfg), "--connect"],
                                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True),
    }
    run = start_worker(cfg, log=log)
    try:
        for tool, p in tools.items():
            _, err = p.communicate(timeout=max(1.0, 30 - (time.monotonic() - t0)))
            lines_out = [x for x in err.splitlines() if x.strip()]
            assert p.returncode == status, f"{name} {tool}: exit {p.returncode}, stderr {err[-1000:]}"
            assert len(lines_out) == 1 and cause in lines_out[0], f"{name} {tool}: {err[-1000:]}"
        if status == 2:
            rc = run.wait(timeout=max(1.0, 30 - (time.monotonic() - t0)))
            last = log.read_text().strip().splitlines()[-1]
            assert rc == 2 and last.startswith("monitor run: error:") and cause in last, log.read_text()[-1500:]
        else:  # the service waits for Kafka, saying why in every retry line
            wait_for(lambda: log.read_text().count("waiting for Kafka") >= 2,
                     timeout=max(1.0, 30 - (time.monotonic() - t0)), what=f"{name}: two retry lines")
            retries = [x for x in log.read_text().splitlines() if "waiting for Kafka" in x]
            assert all(cause in x for x in retries), retries[:3]
            assert run.poll() is None
            assert stop(run) == 0
    finally:
        for p in (*tools.values(), run):
            if p.poll() is None:
                p.kill()


def test_each_failure_names_its_cause_with_the_right_status(endpoints, pki, trained_model, tmp_path):
    cases, orphan = _cases(endpoints, pki, tmp_path)
    try:
        causes = {}
        for name, (bootstrap, lines, status, cause) in cases.items():
            _check_case(name, bootstrap, lines, status, cause, trained_model, tmp_path)
            causes[name] = cause
        assert len(set(causes.values())) == len(causes)  # each cause is its own
    finally:
        orphan.stop()
