"""Process-management figures, measured on the release build:

- failed requests while dragoman reloads (SIGHUP every 2 s) under wrk's keep-alive load;
- the time from `kill -9` of a worker to its replacement accepting connections;
- requests per second with 1 and 2 worker processes (on a 2-core machine wrk shares the cores,
  so this is reported, not targeted).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DRAGOMAN = str(Path(sys.executable).parent / "dragoman")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dragoman:
    def __init__(self, *args: str):
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(suffix=".log")[1])
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [DRAGOMAN, "--http", f"127.0.0.1:{self.port}", *args, "hello:application"],
                cwd=HERE / "apps",
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_for(lambda text: "worker(s) ready" in text)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, test, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if test(text):
                return text
            time.sleep(0.005)
        raise RuntimeError(f"timed out; log:\n{self.text()}")

    def workers(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)
        self.log.unlink(missing_ok=True)


def wrk(port: int, seconds: int, connections: int = 64) -> str:
    return subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def wrk_errors(out: str) -> int:
    """Failed requests in wrk's output: non-2xx/3xx responses plus socket errors."""
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return errors


def parse(out: str) -> tuple[int, int, float]:
    """(requests, errors, rps) from wrk's output."""
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return requests, wrk_errors(out), rps


def reload_under_load() -> str:
    server = Dragoman("--processes", "2")
    try:
        load = subprocess.Popen(
            ["wrk", "-t1", "-c64", "-d12s", f"http://127.0.0.1:{server.port}/"],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        reloads = 0
        for _ in range(5):
            server.proc.send_signal(signal.SIGHUP)
            reloads += 1
            server.wait_for(lambda text, n=reloads: text.count("reload finished") >= n)
            time.sleep(1)
        out, _ = load.communicate(60)
        requests, errors, _ = parse(out)
        return (
            f"| reloads under wrk load (2 workers, 64 connections, 12 s) | {reloads} reloads, "
            f"{requests:,} requests, {errors} failed |"
        )
    finally:
        server.stop()


def respawn_after_kill() -> str:
    """Kills a worker that has been up for a while (a worker younger than 5 s that dies counts
    toward a crash loop and is respawned after a back-off)."""
    server = Dragoman("--processes", "2")
    times = []
    try:
        for _ in range(3):
            time.sleep(5.5)
            ready_before = server.text().count(") ready")
            victim = server.workers()[0]
            start = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            server.wait_for(lambda text, n=ready_before: text.count(") ready") > n)
            times.append((time.monotonic() - start) * 1000)
    finally:
        server.stop()
    return (
        f"| kill -9 of a worker to its replacement accepting | median {statistics.median(times):.0f} ms "
        f"(min {min(times):.0f}, max {max(times):.0f}, {len(times)} kills) |"
    )


def scaling() -> list[str]:
    rows = []
    for processes in (1, 2):
        server = Dragoman("--processes", str(processes))
        try:
            wrk(server.port, 1)
            results = [parse(wrk(server.port, 5))[2] for _ in range(3)]
        finally:
            server.stop()
        rows.append(
            f"| hello world, {processes} process(es), unpinned, wrk on the same 2 cores | "
            f"{statistics.median(results):,.0f} requests/s (min {min(results):,.0f}, max {max(results):,.0f}) |"
        )
    return rows


def measure() -> list[str]:
    return [
        "## Process management",
        "",
        "| measurement | result |",
        "|---|---|",
        reload_under_load(),
        respawn_after_kill(),
        *scaling(),
    ]


if __name__ == "__main__":
    print("\n".join(measure()))
