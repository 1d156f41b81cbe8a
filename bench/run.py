"""Side-by-side throughput of dragoman and its peers, measured in one run.

Each server runs one worker process pinned to one core (taskset), wrk is pinned to the other;
servers alternate within each round, each scenario is repeated, and the median is reported
with the min and max. Writes bench/results.md. Run it with `make bench` (release build).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SERVER_CPU = "0"
LOAD_CPU = "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *self.argv],
            cwd=HERE / "apps",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def servers() -> list[Server]:
    out = []
    port = free_port()
    out.append(
        Server(
            "dragoman",
            [str(BIN / "dragoman"), "--http", f"127.0.0.1:{port}", "hello:application"],
            port,
        )
    )
    port = free_port()
    out.append(
        Server(
            "granian",
            [
                str(BIN / "granian"),
                "--interface",
                "wsgi",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-ws",
                "hello:application",
            ],
            port,
        )
    )
    port = free_port()
    out.append(
        Server(
            "gunicorn (sync)",
            [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "hello:application"],
            port,
        )
    )
    return out


@dataclass
class Result:
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


def wrk(port: int, connections: int, seconds: int) -> tuple[float, float, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        raise RuntimeError(f"wrk reported errors:\n{out}")
    return rps, pct("50"), pct("99")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (make bench installs it)")

    all_servers = servers()
    results = {s.name: Result() for s in all_servers}
    for round_ in range(args.rounds):
        for server in all_servers:
            server.start()
            try:
                wrk(server.port, args.connections, 1)  # warm-up
                rps, p50, p99 = wrk(server.port, args.connections, args.seconds)
            finally:
                server.stop()
            r = results[server.name]
            r.rps.append(rps)
            r.p50_ms.append(p50)
            r.p99_ms.append(p99)
            print(
                f"round {round_ + 1}: {server.name:16} {rps:10.0f} rps  p50 {p50:.2f} ms  p99 {p99:.2f} ms",
                flush=True,
            )

    base = statistics.median(results["dragoman"].rps)
    lines = [
        "# Benchmark results",
        "",
        (
            f"Hello world (`bench/apps/hello.py`), wrk -t1 -c{args.connections} -d{args.seconds}s, "
            f"{args.rounds} rounds alternating servers; one worker process pinned to CPU "
            f"{SERVER_CPU}, wrk pinned to CPU {LOAD_CPU}. Median (min-max)."
        ),
        "",
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
            f"Python {platform.python_version()}; {versions()}"
        ),
        "",
        "| server | requests/s | p50 ms | p99 ms | dragoman / server |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        med = statistics.median(r.rps)
        lines.append(
            f"| {name} | {med:,.0f} ({min(r.rps):,.0f}-{max(r.rps):,.0f}) | "
            f"{statistics.median(r.p50_ms):.2f} | {statistics.median(r.p99_ms):.2f} | {base / med:.2f}x |"
        )
    sys.path.insert(0, str(HERE))
    import master  # the process-management figures, measured after the table

    lines += ["", *master.measure()]
    text = "\n".join(lines) + "\n"
    (HERE / "results.md").write_text(text)
    print()
    print(text)


def versions() -> str:
    out = []
    for pkg in ("dragoman", "granian", "gunicorn"):
        try:
            from importlib.metadata import version

            out.append(f"{pkg} {version(pkg)}")
        except Exception:  # noqa: BLE001 - a missing peer is reported as such
            out.append(f"{pkg} (not installed)")
    wrk_version = subprocess.run(
        ["wrk", "-v"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    out.append(wrk_version.split(" Copyright")[0].strip())
    return ", ".join(out)


if __name__ == "__main__":
    main()
