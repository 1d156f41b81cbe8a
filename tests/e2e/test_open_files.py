"""The open-files limit (RLIMIT_NOFILE): dragoman raises the soft limit to the hard one at start,
and keeps each worker's connections within what the limit leaves, so idle connections can never
take the descriptors a static file or a request body needs. Started with low limits, as a
systemd service gets them (soft 1024 by default)."""

import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import APPS, DRAGOMAN, Server, _env


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts dragoman with the given soft and hard open-files limits."""
    servers: list[Server] = []

    def start(soft: int, hard: int, *args: str, workers: int = 1) -> Server:
        log_path = tmp_path / f"dragoman-{len(servers)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                # prlimit sets the limits, then runs dragoman in its own process.
                ["prlimit", f"--nofile={soft}:{hard}", *DRAGOMAN, "--http", "127.0.0.1:0", *args],
                cwd=APPS,
                env=_env(None),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(proc, log_path)
        servers.append(server)
        server.wait_ready(workers)
        return server

    yield start
    for server in servers:
        server.stop(signal.SIGKILL)


def test_the_soft_limit_is_raised_to_the_hard_limit(limited):
    server = limited(256, 4096, "--processes", "2", "echo:application", workers=2)
    server.wait_for_log(r"open files: raised the soft limit from 256 to the hard limit, 4096")
    for pid in [server.proc.pid, *server.worker_pids()]:
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert re.search(r"^Max open files\s+4096\s+4096\s", limits, re.MULTILINE), limits
    assert "max-connections" not in server.log()


def test_idle_connections_past_the_limit_leave_room_for_a_static_file(limited, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "site.css").write_text("body { color: teal }\n")
    server = limited(1024, 1024, "--static-map", f"/static={static}", "echo:application")
    cap = int(
        server.wait_for_log(
            r"max-connections = 1024 does not fit .*open-files limit of 1024.*; using (\d+)"
        ).group(1)
    )
    assert 512 < cap < 1024
    assert "LimitNOFILE" in server.log()
    idle = []
    try:
        # More idle connections than the worker has descriptors for.
        for _ in range(1100):
            idle.append(socket.create_connection((server.host, server.port), timeout=5))
        # Idle long enough that the worker may close the oldest ones to make room.
        time.sleep(1.5)
        r = httpx.get(f"{server.url}/static/site.css", timeout=10)
        assert r.status_code == 200 and r.text == "body { color: teal }\n"
        assert httpx.get(f"{server.url}/app", timeout=10).json()["PATH_INFO"] == "/app"
    finally:
        for conn in idle:
            conn.close()
    assert "accept failed" not in server.log()
