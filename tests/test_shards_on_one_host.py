"""Several shards of one targets.toml on one host: ``--shard I-of-N --web.shard-ports`` (what
``systemd/wsmon@.service`` runs), each on its own port, each with the open-files limit raised."""

from __future__ import annotations

import resource
import socket
from pathlib import Path

import httpx

from tests.realservers import WsmonProcess
from tests.servers import HOST


def _two_free_ports() -> int:
    """A port P with P + 1 free too (bound together, then released)."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind((HOST, 0))
            port: int = first.getsockname()[1]
            try:
                second.bind((HOST, port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two adjacent free ports")


def _open_files_limit(pid: int) -> tuple[int, int]:
    line = next(li for li in Path(f"/proc/{pid}/limits").read_text().splitlines() if li.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_shard_i_listens_on_the_base_port_plus_i(tmp_path: Path) -> None:
    base = _two_free_ports()
    config = tmp_path / "targets.toml"
    config.write_text("".join(f'[[targets]]\nname = "t{i}"\nurl = "ws://{HOST}:9/"\n' for i in range(20)))
    process = WsmonProcess(tmp_path, config, "--shard", "1-of-2", "--web.shard-ports", port=base + 1)
    process.argv[process.argv.index("--web.listen-address") + 1] = f"{HOST}:{base}"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    process.argv = ["prlimit", f"--nofile=256:{hard}", *process.argv]  # start with a low soft limit
    with process, httpx.Client(base_url=f"http://{HOST}:{base + 1}", trust_env=False) as client:
        metrics = client.get("/metrics").text
        assert 'wsmon_shard_info{shard="1",shards="2"} 1.0' in metrics
        assert process.process is not None
        assert _open_files_limit(process.process.pid) == (hard, hard)
    with socket.socket() as probe:  # nothing listened on the base port itself
        assert probe.connect_ex((HOST, base)) != 0
