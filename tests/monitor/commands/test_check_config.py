"""``check-config`` says what is wrong, once, in one line naming the key, with exit status 2.

Why: ``security_protocol: SASL_SSL`` with a missing CA file and no mechanism passed
check-config, and ``monitor run`` then waited for Kafka forever."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _check(tmp_path, capsys, text: str, *extra: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    rc = main(["check-config", str(p), *extra])
    out = capsys.readouterr()
    return rc, out.out, [x for x in out.err.splitlines() if x.strip()]


ROUTE = "models:\n  - streams: '*'\n    model: /models/pump\n"


@pytest.mark.parametrize("text, needle", [
    ("", "the file is empty"),
    ("# only a comment\n", "the file is empty"),
    ("kafka:\n  bootstrap: a:1\n", "models: no routes"),
    ("kafka:\n  security_protocol: SASL_SSL\n  sasl_username: u\n  sasl_password: Secr3t-pw\n"
     "  ssl_cafile: /nonexistent/ca.pem\n" + ROUTE, "kafka.sasl_mechanism"),
    ("kafka:\n  security_protocol: SSL\n  ssl_cafile: /nonexistent/ca.pem\n" + ROUTE,
     "kafka.ssl_cafile: /nonexistent/ca.pem: no such file"),
    ("sinks:\n  jsonl: /nonexistent-dir/events.jsonl\n" + ROUTE, "sinks.jsonl"),
    ("service:\n  windows_log: /nonexistent-dir/w.jsonl\n" + ROUTE, "service.windows_log"),
    ("sinks:\n  event_audio: /nonexistent-dir/sub/audio\n" + ROUTE, "sinks.event_audio"),
    (ROUTE + "    threshold: -1\n", "threshold must be a finite number above 0"),
    (ROUTE + "    threshold: 0\n", "threshold must be a finite number above 0"),
    (ROUTE + "    threshold: .nan\n", "threshold must be a finite number above 0"),
    (ROUTE + "    threshold: .inf\n", "threshold must be a finite number above 0"),
    ("kafka:\n  ssl_cafile: /a.pem\n  ssl_cafile: /b.pem\n" + ROUTE, "line 3: duplicate key 'ssl_cafile'"),
])
def test_each_problem_is_one_line_naming_its_key(tmp_path, capsys, text, needle):
    rc, out, err = _check(tmp_path, capsys, text)
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert err[0].startswith("monitor check-config: error:") and "Secr3t-pw" not in err[0]
    assert out == ""  # nothing printed as if it were fine


def test_sasl_problems_are_all_said_at_once(tmp_path, capsys):
    rc, _, err = _check(tmp_path, capsys, "kafka:\n  security_protocol: SASL_SSL\n"
                        "  ssl_cafile: /nonexistent/ca.pem\n" + ROUTE)
    assert rc == 2 and len(err) == 1
    for key in ("kafka.sasl_mechanism", "kafka.sasl_username", "kafka.sasl_password", "kafka.ssl_cafile"):
        assert key in err[0]


def test_a_sink_folder_that_is_not_writable_is_named(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    text = f"sinks:\n  jsonl: {locked}/events.jsonl\n" + ROUTE
    if os.geteuid() != 0:
        rc, _, err = _check(tmp_path, capsys, text)
    else:  # root writes anywhere: run the check as root without the capabilities that bypass file modes
        if not shutil.which("setpriv"):
            pytest.skip("as root this needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text)
        r = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                            "monitor", "check-config", str(cfg)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
        rc, err = r.returncode, [x for x in r.stderr.splitlines() if x.strip()]
    assert rc == 2 and len(err) == 1, err
    assert f"{locked}" in err[0] and "not writable" in err[0]


def test_a_good_config_prints_the_effective_values_secrets_masked(tmp_path, capsys):
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    rc, out, err = _check(tmp_path, capsys, f"kafka:\n  security_protocol: SASL_SSL\n  sasl_mechanism: PLAIN\n"
                          f"  sasl_username: u\n  sasl_password: Secr3t-pw\n  ssl_cafile: {ca}\n"
                          f"sinks:\n  jsonl: {tmp_path}/events.jsonl\n" + ROUTE)
    assert rc == 0 and err == [] and "Secr3t-pw" not in out and "sasl_password: '***'" in out and "OK" in out


def test_connect_names_an_unreachable_broker(tmp_path, capsys):
    from monitor.kafka.broker import free_port

    rc, _, err = _check(tmp_path, capsys, f"kafka:\n  bootstrap: 127.0.0.1:{free_port()}\n" + ROUTE, "--connect")
    assert rc == 69 and len(err) == 1 and "connection refused" in err[0]
