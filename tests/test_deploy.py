"""Deployment artefacts, checked by the real tools where they exist here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "wsmon.service"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and os.geteuid() != 0,
    reason="systemd-analyze is not installed (make test installs it when run as root)",
)


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's wsmon (verify wants it to exist)."""
    wsmon = Path(sys.executable).with_name("wsmon")
    copy = tmp_path / "wsmon.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/wsmon", str(wsmon)))
    return copy


@needs_systemd
def test_unit_passes_systemd_analyze_verify(unit: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, cwd=unit.parent)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_systemd
def test_unit_is_well_sandboxed(unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for wsmon.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0  # systemd calls up to 2.0 "OK"


def test_unit_settings_the_service_relies_on() -> None:
    settings = {line.split("=", 1)[0] for line in UNIT.read_text().splitlines() if "=" in line and line[0] != "#"}
    text = UNIT.read_text()
    assert "Type=notify" in text  # wsmon sends READY=1 once listening
    assert "WatchdogSec=" in text  # and WATCHDOG=1 from its event loop
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    for key in (
        "DynamicUser",
        "NoNewPrivileges",
        "ProtectSystem",
        "PrivateTmp",
        "CapabilityBoundingSet",
        "EnvironmentFile",
    ):
        assert key in settings


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user and user.group(1) not in ("root", "0")
    assert "EXPOSE 9095" in text
    assert "HEALTHCHECK" in text and "/-/healthy" in text
