"""wsmon as users get it: the sdist and wheel built from this tree, the wheel installed into a
clean virtual environment outside the source tree, and every face of it used from there.

The rest of the suite imports the checkout; these tests import nothing of it. They build with
``python -m build`` (the sdist, then the wheel from the sdist, as a user's ``pip install`` of
the sdist would), and install the wheel with pip, dependencies from the package index.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.realservers import WsmonProcess, web_user
from tests.servers import MS, refused_port

ROOT = Path(__file__).resolve().parent.parent
STATIC = ("dashboard.html", "dashboard.js", "dashboard.css")
LOGIN_PAGE = ("login.html", "login.js", "login.css")
PASSWORD = "installed-canary-password"
CANARY_TOKEN = "installed-canary-token-5f1c9a"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the install test drives Linux venvs")


def _clean_env() -> dict[str, str]:
    """The environment less what would point Python at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(argv: list[str], cwd: Path, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)], cwd=out)
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed, far from the source tree."""
    home = tmp_path_factory.mktemp("installed")
    _run([sys.executable, "-m", "venv", str(home / "venv")], cwd=home)
    wheel = next(dist.glob("wsmon-*.whl"))
    _run([str(home / "venv" / "bin" / "pip"), "install", "--quiet", str(wheel)], cwd=home)
    return home / "venv"


def _names(archive: Path) -> list[str]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return wheel.namelist()
    with tarfile.open(archive) as sdist:
        return sdist.getnames()


def test_the_wheel_carries_the_dashboard_and_no_tests(dist: Path) -> None:
    names = _names(next(dist.glob("wsmon-*.whl")))
    for page in STATIC + LOGIN_PAGE:
        assert f"wsmon/web/static/{page}" in names
    assert [n for n in names if n.startswith(("tests/", "bench/"))] == []
    assert "wsmon/cli.py" in names


def test_the_sdist_carries_the_dashboard(dist: Path) -> None:
    names = _names(next(dist.glob("wsmon-*.tar.gz")))
    for page in STATIC + LOGIN_PAGE:
        assert any(n.endswith(f"/wsmon/web/static/{page}") for n in names), page


def test_the_installed_package_is_not_the_checkout(venv: Path) -> None:
    where = _run([str(venv / "bin" / "python"), "-c", "import wsmon; print(wsmon.__file__)"], cwd=venv.parent)
    path = Path(where.stdout.strip())
    assert path.is_relative_to(venv), path
    assert not path.is_relative_to(ROOT)


@pytest.fixture(scope="module")
def served(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WsmonProcess]:
    """The installed ``wsmon serve``, with a dashboard user and a target watching itself."""
    work = tmp_path_factory.mktemp("serve")
    process = WsmonProcess(work, None)
    config = work / "targets.toml"
    echo = f"ws://127.0.0.1:{process.port}/ws/echo"
    config.write_text(
        f'[[targets]]\nname = "self"\nurl = "{echo}?token={CANARY_TOKEN}"\nmode = "persistent"\n\n'
        + web_user("admin", PASSWORD, "admin")
    )
    process.argv = [str(venv / "bin" / "wsmon"), *process.argv[3:], "--config", str(config)]
    process.env = {"PYTHONPATH": ""}
    with process:
        yield process


def test_installed_serve_answers_probe_metrics_and_dashboard(served: WsmonProcess) -> None:
    with httpx.Client(base_url=served.base, trust_env=False, timeout=10.0) as client:
        probe = client.get("/probe", params={"target": f"ws://127.0.0.1:{served.port}/ws/echo"})
        assert probe.status_code == 200
        assert "probe_success 1.0" in probe.text.splitlines()
        connected = 'wsmon_connection_state{target="self",state="connected"} 1.0'
        deadline = time.monotonic() + 5000 * MS
        metrics = client.get("/metrics").text
        while connected not in metrics and time.monotonic() < deadline:
            time.sleep(100 * MS)
            metrics = client.get("/metrics").text
        assert connected in metrics
        assert client.get("/dashboard").headers["location"] == "login"  # a 303 to the login form
        login = client.get("/login")
        assert login.status_code == 200 and 'id="login-form"' in login.text
        for asset in LOGIN_PAGE[1:]:
            assert len(client.get(f"/login/static/{asset}").content) > 100, asset
        form = client.post("/login", json={"user": "admin", "password": PASSWORD}, headers={"Origin": served.base})
        assert form.status_code == 200 and client.get("/dashboard").status_code == 200  # with the session cookie
        client.cookies.clear()
        page = client.get("/dashboard", auth=("admin", PASSWORD))
        assert page.status_code == 200
        assert "<title>" in page.text
        for asset in STATIC[1:]:
            response = client.get(f"/dashboard/static/{asset}", auth=("admin", PASSWORD))
            assert response.status_code == 200, asset
            assert len(response.content) > 100
        targets = client.get("/api/targets", auth=("admin", PASSWORD))
        assert targets.status_code == 200
        assert [t["name"] for t in targets.json()["targets"]] == ["self"]
        assert CANARY_TOKEN not in targets.text + metrics
    assert CANARY_TOKEN not in served.log()


def test_installed_check_exits_0_up_and_1_down(served: WsmonProcess, venv: Path) -> None:
    def check(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(venv / "bin" / "wsmon"), "check", *args]
        return subprocess.run(argv, env=_clean_env(), capture_output=True, text=True, timeout=30, cwd=venv.parent)

    up = check(f"ws://127.0.0.1:{served.port}/ws/echo")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "UP in" in up.stdout
    down = check("--timeout", f"{500 * MS:.3f}s", f"ws://127.0.0.1:{refused_port()}/ws")
    assert down.returncode == 1, down.stdout + down.stderr
    assert "DOWN (refused)" in down.stdout
