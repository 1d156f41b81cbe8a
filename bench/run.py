"""Side-by-side throughput of dragoman and its peers, measured in one run (`make bench`).

Each server runs one worker process pinned to one core (taskset), wrk is pinned to the other;
within each round the servers alternate, each scenario is repeated over the rounds, and the
median is reported with the min and max. Writes bench/results.md.

Scenarios: hello world (bench/apps/hello.py) against Granian and gunicorn; static files of
1 KiB, 100 KiB and 1 MiB against nginx, uWSGI's --static-map, Granian's static mount and
whitenoise under gunicorn; then the process-management figures (bench/master.py).
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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
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
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self, probe: str) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *self.argv],
            cwd=APPS,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(
                        f"GET {probe} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                    )
                    if s.recv(12).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def hello_servers() -> list[Server]:
    servers = []
    port = free_port()
    servers.append(
        Server(
            "dragoman",
            [str(BIN / "dragoman"), "--http", f"127.0.0.1:{port}", "hello:application"],
            port,
        )
    )
    port = free_port()
    servers.append(Server("granian", granian(port), port))
    port = free_port()
    servers.append(
        Server(
            "gunicorn (sync)",
            [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "hello:application"],
            port,
        )
    )
    return servers


def granian(port: int, *extra: str) -> list[str]:
    return [
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
        *extra,
        "hello:application",
    ]


def static_servers(root: Path, work: Path) -> list[Server]:
    servers = []
    port = free_port()
    servers.append(
        Server(
            "dragoman",
            [
                str(BIN / "dragoman"),
                "--http",
                f"127.0.0.1:{port}",
                "--static-map",
                f"/static={root}",
                "hello:application",
            ],
            port,
        )
    )
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(
        f"""user root;
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ alias {root}/; }}
    }}
}}
"""
    )
    servers.append(Server("nginx", ["nginx", "-p", str(work), "-c", str(conf)], port))
    port = free_port()
    servers.append(
        Server(
            "uWSGI --static-map",
            [
                str(BIN / "uwsgi"),
                # As uWSGI sites run it behind nginx: one request per connection (wrk counts each
                # close as a read error). --http11-socket keeps connections open but stalls 40 ms
                # per response on Nagle/delayed-ACK here (23 requests/s).
                "--http-socket",
                f"127.0.0.1:{port}",
                "--wsgi-file",
                "hello.py",
                "--static-map",
                f"/static={root}",
                "--master",
                "--processes",
                "1",
                "--disable-logging",
            ],
            port,
        )
    )
    port = free_port()
    servers.append(
        Server(
            "granian static",
            granian(port, "--static-path-route", "/static", "--static-path-mount", str(root)),
            port,
        )
    )
    port = free_port()
    servers.append(
        Server(
            "whitenoise + gunicorn",
            [
                str(BIN / "gunicorn"),
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{port}",
                "whitenoise_app:application",
            ],
            port,
            env={"STATIC_ROOT": str(root)},
        )
    )
    return servers


@dataclass
class Sample:
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0


def wrk(port: int, path: str, connections: int, seconds: int) -> tuple[float, float, float, int]:
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
            f"http://127.0.0.1:{port}{path}",
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

    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return rps, pct("50"), pct("99"), errors


def run_group(
    servers: list[Server], paths: list[tuple[str, str]], args
) -> dict[str, dict[str, Sample]]:
    """results[scenario][server]."""
    results = {label: {s.name: Sample() for s in servers} for label, _ in paths}
    for round_ in range(args.rounds):
        for server in servers:
            server.start(paths[0][1])
            try:
                for label, path in paths:
                    wrk(server.port, path, args.connections, 1)  # warm-up
                    rps, p50, p99, errors = wrk(server.port, path, args.connections, args.seconds)
                    sample = results[label][server.name]
                    sample.rps.append(rps)
                    sample.p50_ms.append(p50)
                    sample.p99_ms.append(p99)
                    sample.errors += errors
                    print(
                        f"round {round_ + 1}: {label:10} {server.name:22} {rps:10.0f} rps  "
                        f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  errors {errors}",
                        flush=True,
                    )
            finally:
                server.stop()
    return results


def table(results: dict[str, Sample]) -> list[str]:
    base = statistics.median(results["dragoman"].rps)
    lines = [
        "| server | requests/s | p50 ms | p99 ms | errors | dragoman / server |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        med = statistics.median(r.rps)
        lines.append(
            f"| {name} | {med:,.0f} ({min(r.rps):,.0f}-{max(r.rps):,.0f}) | "
            f"{statistics.median(r.p50_ms):.2f} | {statistics.median(r.p99_ms):.2f} | {r.errors} | "
            f"{base / med:.2f}x |"
        )
    return lines


def make_files(root: Path) -> list[tuple[str, str]]:
    sizes = [("1 KiB", 1024), ("100 KiB", 100 * 1024), ("1 MiB", 1024 * 1024)]
    paths = []
    for label, size in sizes:
        name = f"{size}.bin"
        (root / name).write_bytes(os.urandom(size))
        paths.append((label, f"/static/{name}"))
    return paths


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("dragoman", "granian", "gunicorn", "uwsgi", "whitenoise"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    nginx = subprocess.run(
        ["nginx", "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    out.append(nginx.replace("nginx version: ", ""))
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    out.append(wrk_version.split("\n")[0].split(" Copyright")[0].strip())
    return ", ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", choices=["hello", "static", "master"], action="append")
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (make bench installs it)")
    only = set(args.only or ["hello", "static", "master"])

    lines = [
        "# Benchmark results",
        "",
        (
            f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds alternating servers; "
            f"one worker process pinned to CPU {SERVER_CPU}, wrk pinned to CPU {LOAD_CPU}. "
            "Median (min-max) of the rounds."
        ),
        "",
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
            f"Python {platform.python_version()}; {versions()}"
        ),
    ]
    if "hello" in only:
        results = run_group(hello_servers(), [("hello", "/")], args)
        lines += ["", "## Hello world", "", *table(results["hello"])]
    if "static" in only:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "static"
            root.mkdir()
            work = Path(tmp) / "work"
            work.mkdir()
            paths = make_files(root)
            results = run_group(static_servers(root, work), paths, args)
        for label, _ in paths:
            lines += ["", f"## Static file, {label}", "", *table(results[label])]
    if "master" in only:
        sys.path.insert(0, str(HERE))
        import master  # the process-management figures

        lines += ["", *master.measure()]
    text = "\n".join(lines) + "\n"
    (HERE / "results.md").write_text(text)
    print()
    print(text)


if __name__ == "__main__":
    main()
