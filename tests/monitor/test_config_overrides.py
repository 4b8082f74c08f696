"""Env and ``--set`` overrides: string keys verbatim, secrets never printed, never on a command line.

Why: ``MONITOR__KAFKA__SASL_PASSWORD=0123`` became ``83`` and ``0x1F`` became ``31`` (parsed as
YAML); ``=[Secr3t]`` printed the password in the type error; ``--workers N`` copied ``--set``
values, secrets included, into the children's command lines; ``--log-level`` only worked before
the subcommand."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.cli import build_parser
from monitor.config import dump, load_config
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("typed", ["0123", "0x1F", "[Secr3t]", "true", "1e3", "null", " spaced ", "a: b"])
def test_string_keys_take_env_and_set_values_verbatim(typed):
    cfg = load_config(None, env={"MONITOR__KAFKA__SASL_PASSWORD": typed, "MONITOR__KAFKA__CLIENT_ID": typed})
    assert cfg.kafka.sasl_password == typed and cfg.kafka.client_id == typed
    cfg = load_config(None, env={}, overrides=[f"kafka.sasl_username={typed}"])
    assert cfg.kafka.sasl_username == typed


def test_other_keys_still_read_numbers_booleans_and_null():
    cfg = load_config(None, env={"MONITOR__SERVICE__MAX_BATCH": "64"},
                      overrides=["sinks.stdout=true", "service.gap_tolerance_ms=2.5",
                                 "models=[{model: m, threshold: null}]"])
    assert cfg.service.max_batch == 64 and cfg.sinks.stdout is True and cfg.service.gap_tolerance_ms == 2.5
    assert cfg.models[0].threshold is None


def test_a_secret_in_a_bad_place_is_not_printed(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("kafka:\n  sasl_password: [Secr3t]\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert "kafka.sasl_password" in str(e.value) and "Secr3t" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(None, env={}, overrides=["Secr3t-without-equals"])
    assert "Secr3t" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(None, env={}, overrides=["kafka.nope=Secr3t"])
    assert "Secr3t" not in str(e.value) and "kafka.nope" in str(e.value)
    assert "Secr3t" not in dump(load_config(None, env={"MONITOR__KAFKA__SASL_PASSWORD": "Secr3t"}))


def test_global_options_work_after_the_subcommand():
    p = build_parser()
    assert p.parse_args(["check-config", "c.yaml", "--log-level", "debug"]).log_level == "debug"
    assert p.parse_args(["--log-level", "error", "check-config", "c.yaml"]).log_level == "error"
    assert p.parse_args(["produce", "audio", "--data", "x", "--log-format", "json"]).log_format == "json"
    assert p.parse_args(["run", "--config", "c.yaml"]).log_level == "info"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_workers_get_overrides_without_them_on_their_command_lines(tmp_path):
    from monitor.kafka.broker import free_port

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"kafka:\n  bootstrap: 127.0.0.1:{free_port()}\nhealth:\n  port: 0\n")
    log = tmp_path / "run.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(cfg), "--workers", "2", "--log-format", "json",
         "--set", "kafka.sasl_password=Secr3t-0123", "--set", "kafka.group_id=from-set"],
        cwd=ROOT, stderr=open(log, "wb"), env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and log.read_text().count('"msg": "effective config"') < 2:
            time.sleep(0.5)
        kids = _children(proc.pid)
        assert len(kids) == 2
        for kid in kids:
            cmdline = Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            assert "Secr3t" not in cmdline and "--set" not in cmdline, cmdline
        configs = [json.loads(x)["config"] for x in log.read_text().splitlines() if '"effective config"' in x]
        assert len(configs) == 2 and all(c["kafka"]["group_id"] == "from-set" for c in configs)
        assert all(c["kafka"]["sasl_password"] == "***" for c in configs)
        assert "Secr3t" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)
