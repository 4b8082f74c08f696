"""The systemd unit (issue 19, item 6): its exposure as systemd rates it, and the settings the
product relies on (exit status 2 is not restarted, SIGHUP reopens files, a restrictive umask)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "monitor.service"


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _exposure() -> float:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed here (Debian: apt-get install systemd)")
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for monitor\.service: (\d+\.\d)", r.stdout + r.stderr)
    if r.returncode != 0 and m is None:
        pytest.skip(f"systemd-analyze security --offline=true failed here: {(r.stderr or r.stdout)[-300:]}")
    assert m, r.stdout[-2000:]
    return float(m.group(1))


def test_unit_exposure_is_4_or_better():
    """Why: the unit scored 8.5 EXPOSED in `systemd-analyze security --offline=true`."""
    assert _exposure() <= 4.0


def test_the_readme_and_the_unit_state_the_measured_figure():
    figure = f"{_exposure():.1f}"
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"systemd-analyze security --offline=true deploy/monitor\.service`[^.]*rates it {figure}",
                     readme.replace("\n", " ")), f"README should state {figure}"
    assert f"rates it {figure}" in UNIT.read_text()


def test_config_errors_are_not_restarted_and_reload_reopens_files():
    """Why: a config error restarted forever; no UMask, so recorded sound was world-readable."""
    s = _settings()
    assert s["RestartPreventExitStatus"] == ["2"]  # the CLI's exit status for config/TLS/auth errors
    assert s["UMask"] == ["0027"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["CapabilityBoundingSet"] == [""]
    assert "@system-service" in s["SystemCallFilter"]
    assert s["MemoryMax"]


def test_a_monitor_error_exits_with_the_status_the_unit_does_not_restart(tmp_path, capsys):
    from monitor.cli import main

    missing = tmp_path / "nope.yaml"
    assert main(["run", "--config", str(missing)]) == int(_settings()["RestartPreventExitStatus"][0])
    assert str(missing) in capsys.readouterr().err

