"""Fixtures for the end-to-end suite: real dragoman processes, real sockets, real clients.

Servers listen on port 0 and the test reads the bound port from the log, so tests never race
for ports. Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"
REPO = Path(__file__).resolve().parents[2]
DRAGOMAN = [sys.executable, "-m", "dragoman"]
LISTENING = re.compile(r"listening on http://(\S+)")
UWSGI_LISTENING = re.compile(r"listening on uwsgi://(\S+)")


class Server:
    """A running dragoman: its process, log, and the addresses it listens on."""

    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc = proc
        self.log_path = log_path
        self.addresses: list[str] = []
        self.uwsgi_addresses: list[str] = []

    @property
    def url(self) -> str:
        return f"http://{self.addresses[0]}"

    @property
    def port(self) -> int:
        return int(self.addresses[0].rsplit(":", 1)[1])

    @property
    def host(self) -> str:
        return self.addresses[0].rsplit(":", 1)[0].strip("[]")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, workers: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            ready = len(re.findall(r"worker \d+ \(pid \d+\) ready", text))
            if ready >= workers:
                self.addresses = LISTENING.findall(text)
                self.uwsgi_addresses = UWSGI_LISTENING.findall(text)
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"dragoman exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise AssertionError(f"dragoman not ready after {timeout}s:\n{self.log()}")

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in the log after {timeout}s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """PIDs of the live workers (children of the master)."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"dragoman did not stop within {timeout}s:\n{self.log()}")
        return self.proc.returncode


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


@pytest.fixture
def dragoman(tmp_path: Path) -> Iterator:
    """Starts dragoman servers; all are stopped (and reaped) when the test ends."""
    servers: list[Server] = []
    counter = iter(range(1000))

    def start(
        *args: str,
        cwd: Path | str = APPS,
        env: dict[str, str] | None = None,
        workers: int = 1,
        http: str | None = "127.0.0.1:0",
        wait: bool = True,
    ) -> Server:
        log_path = tmp_path / f"dragoman-{next(counter)}.log"
        argv = [*DRAGOMAN, *args]
        if http:
            argv += ["--http", http]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=_env(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(proc, log_path)
        servers.append(server)
        if wait:
            server.wait_ready(workers)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGKILL)
            try:
                os.killpg(server.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.proc.wait(10)


def run_dragoman(
    *args: str, cwd: Path | str = APPS, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Runs dragoman to completion (for --help, --version and startup errors)."""
    return subprocess.run(
        [*DRAGOMAN, *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def raw_exchange(
    host: str, port: int, data: bytes, idle: float = 1.0, total: float = 10.0
) -> bytes:
    """Writes raw bytes and reads until the server closes or stays idle for `idle` seconds."""
    return raw_exchange_closed(host, port, data, idle, total)[0]


def raw_exchange_closed(
    host: str, port: int, data: bytes, idle: float = 1.0, total: float = 10.0
) -> tuple[bytes, bool]:
    """raw_exchange, and whether the server closed (or reset) the connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    closed = False
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(idle)
        s.connect((host, port))
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + total
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks), closed


class RawResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self) -> str:
        return f"<RawResponse {self.status} {self.headers} {self.body[:80]!r}>"


def parse_responses(data: bytes, methods: list[str] | None = None) -> list[RawResponse]:
    """Splits raw bytes into HTTP/1.1 responses (Content-Length, chunked or up to the end).

    `methods` lists the request methods in order: responses to HEAD carry no body.
    """
    out = []
    final = 0
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"incomplete response head: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        _, status, *reason = lines[0].split(" ", 2)
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        resp = RawResponse(int(status), reason[0] if reason else "", headers, b"")
        if 100 <= resp.status < 200:
            data = rest
            out.append(resp)
            continue
        is_head = methods is not None and final < len(methods) and methods[final] == "HEAD"
        final += 1
        if is_head or resp.status in (204, 304):
            body, data = b"", rest
        elif resp.header("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2 :]
            data = rest
        elif resp.header("content-length") is not None:
            n = int(resp.header("content-length"))
            body, data = rest[:n], rest[n:]
        else:
            body, data = rest, b""
        resp.body = body
        out.append(resp)
    return out


class Load:
    """A bounded client loop: `clients` threads, each with its own keep-alive connection pool,
    send GET requests until stopped, `seconds` pass, or `limit` requests are sent. Records
    every outcome; a failure is a non-200 status or a transport error."""

    def __init__(self, url: str, clients: int = 4, seconds: float = 60, limit: int = 200_000):
        import threading

        self.url = url
        self.ok = 0
        self.failed: list[str] = []
        self.bodies: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._limit = limit
        self._sent = 0
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                with self._lock:
                    if self._sent >= self._limit:
                        return
                    self._sent += 1
                try:
                    r = client.get(self.url)
                    outcome = None if r.status_code == 200 else f"status {r.status_code}"
                    body = r.text
                except Exception as exc:  # noqa: BLE001 - every failure is recorded
                    outcome, body = f"{type(exc).__name__}: {exc}", ""
                with self._lock:
                    if outcome is None:
                        self.ok += 1
                        self.bodies.add(body)
                    else:
                        self.failed.append(outcome)

    def stop(self) -> Load:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        return self
