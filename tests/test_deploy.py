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
TEMPLATE = ROOT / "systemd" / "wsmon@.service"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and os.geteuid() != 0,
    reason="systemd-analyze is not installed (make test installs it when run as root)",
)


def _local(unit: Path, name: str, tmp_path: Path) -> Path:
    """``unit`` with ExecStart pointing at this checkout's wsmon (verify wants it to exist)."""
    wsmon = Path(sys.executable).with_name("wsmon")
    copy = tmp_path / name
    copy.write_text(unit.read_text().replace("/usr/local/bin/wsmon", str(wsmon)))
    return copy


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    return _local(UNIT, "wsmon.service", tmp_path)


@pytest.fixture
def shard_unit(tmp_path: Path) -> Path:
    """An instance of the template, as ``systemctl start wsmon@1-of-4`` would make it."""
    _local(TEMPLATE, "wsmon@.service", tmp_path)
    return tmp_path / "wsmon@1-of-4.service"


@needs_systemd
@pytest.mark.parametrize("which", ["unit", "shard_unit"])
def test_units_pass_systemd_analyze_verify(which: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(which)
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, cwd=path.parent)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_systemd
def test_shard_template_is_as_sandboxed_as_the_unit(shard_unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(shard_unit)], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for wsmon@1-of-4.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_shard_template_runs_shard_i_on_its_own_port_and_state() -> None:
    text = TEMPLATE.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert "--shard %i" in exec_start and "--web.shard-ports" in exec_start
    assert "--state.file %S/wsmon/%i/" in exec_start
    assert "StateDirectory=wsmon/%i" in text
    # The same hardening as the single unit: every sandboxing line of one is in the other.
    hardening = {line for line in UNIT.read_text().splitlines() if line.startswith(("Protect", "Restrict", "Private"))}
    assert hardening <= set(text.splitlines())
    for unit_text in (text, UNIT.read_text()):
        assert "LimitNOFILE=65536" in unit_text


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
