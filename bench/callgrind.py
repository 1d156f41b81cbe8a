"""Instructions per hello-world request, counted by valgrind's callgrind (so regressions show
regardless of the machine's load: instruction counts do not depend on timing).

Each server runs under `valgrind --tool=callgrind`; a plain socket client sends N requests
(`GET / HTTP/1.1`) one after the other over one keep-alive connection, reading each full
response, then the server is stopped and callgrind writes its totals. valgrind follows fork, so
dragoman's master and its worker each write a file (`cg.PID`); the worker's is the one whose pid
is not the master's. The same is done for N1 and N2 requests, and

    instructions per request = (Ir(N2) - Ir(N1)) / (N2 - N1)

so start-up, the first request's one-time costs and shutdown cancel out. bjoern (one process) is
the reference row.

`python bench/callgrind.py --ab OLD/bin/python NEW/bin/python [N1 N2] [-- ARGS...]` counts three
scenarios for two dragoman builds side by side (each venv's `python -m dragoman`): hello world,
the 4 KiB JSON echo of `make bench` (POST /echo), and a 1 KiB static file; it prints a table
with the change in instructions per request. ARGS go to the new build only (`--disable-logging`
compares an old build without an access log to a new one with it off). Not part of
`make bench`.

`python bench/callgrind.py --django [N1 N2]` measures the Django example's template view the
same way (20 and 100 requests by default: one takes about 0.3 s under valgrind), on a database
of its own, with PYTHONHASHSEED=0 for both servers: CPython's per-request instructions vary by
a few percent from one process to the next with its hash seed. Not part of `make bench`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
PYTHON = sys.executable
N1, N2 = 500, 3000
MYSITE = HERE.parent / "examples" / "mysite"
START_TIMEOUT = 300  # Python starts in 10-30 s under valgrind, more on a loaded machine
STOP_TIMEOUT = 300
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection; request() sends its request and reads one full response."""

    def __init__(self, sock: socket.socket, request: bytes = REQUEST):
        self.sock = sock
        self.buf = b""
        self.request_bytes = request

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def _take_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def request(self) -> bytes:
        self.sock.sendall(self.request_bytes)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status, *lines = head.decode("latin-1").split("\r\n")
        if not status.startswith("HTTP/1.1 200"):
            raise RuntimeError(f"unexpected response: {status!r}")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
        if "content-length" in headers:
            return self._take(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self._take_line().split(b";")[0], 16):
                body += self._take(size)
                self._take(2)
            while self._take_line():  # trailers, then the empty line
                pass
            return body
        raise RuntimeError("response with neither Content-Length nor chunked encoding")


def connect(port: int, proc: subprocess.Popen, request: bytes = REQUEST) -> Client:
    """The first connection that answers a request (the probe counts as one request)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before serving")
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            time.sleep(0.5)
            continue
        sock.settimeout(START_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = Client(sock, request)
        client.request()
        sock.settimeout(60)
        return client
    raise RuntimeError(f"did not answer within {START_TIMEOUT} s")


def totals(path: Path) -> int:
    """The Ir total of one callgrind output file ("totals:" line, else "summary:")."""
    text = path.read_text(errors="replace")
    for key in ("totals", "summary"):
        m = re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE)
        if m:
            return int(m.group(1))
    raise RuntimeError(f"no totals in {path}")


def count(
    name: str,
    argv: list[str],
    n: int,
    stop: signal.Signals,
    work: Path,
    app: tuple[Path, bytes, dict[str, str]] | None = None,
) -> int:
    """Ir of the process that served n (+1 probe) requests: the one file that is not the
    master's if the server forked, else the only one. `app` is (working directory, request,
    environment variables); hello.py's by default."""
    cwd, request, env = app or (APPS, REQUEST, {})
    out = work / (re.sub(r"\W+", "-", name) + f"-{n}")
    out.mkdir()
    port = free_port()
    with open(out / "log", "wb") as log:
        proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}/cg.%p",
                *[a.replace("PORT", str(port)) for a in argv],
            ],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = connect(port, proc, request)
        for _ in range(n):
            client.request()
        client.sock.close()
        proc.send_signal(stop)
        proc.wait(STOP_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    # dragoman's master exits after its worker; wait for every process of the session anyway
    deadline = time.monotonic() + STOP_TIMEOUT
    while _session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _session_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError(f"did not stop within {STOP_TIMEOUT} s")
    files = {int(p.name.split(".")[1]): p for p in out.glob("cg.*")}
    workers = [totals(p) for pid, p in files.items() if pid != proc.pid]
    if len(workers) > 1:
        raise RuntimeError(f"expected one worker's file, found {len(workers)}")
    if workers:
        return workers[0]
    if proc.pid not in files:
        raise RuntimeError(f"callgrind wrote no file; see {out / 'log'}")
    return totals(files[proc.pid])  # a single-process server


def _session_alive(sid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[3]) == sid:
                return True
    return False


SERVERS = {
    "dragoman": (
        [PYTHON, "-m", "dragoman", "--http", "127.0.0.1:PORT", "--processes", "1"]
        + ["hello:application"],
        signal.SIGTERM,
    ),
    "bjoern (reference)": (
        [PYTHON, "bjoern_run.py", "hello:application", "PORT"],
        signal.SIGINT,
    ),
}


def measure() -> list[str]:
    lines = [
        "## Instructions per request (callgrind)",
        "",
        (
            f"Hello world under `valgrind --tool=callgrind`: {N1} and then {N2} requests over one "
            "keep-alive connection from a plain socket client (one request at a time); "
            f"instructions per request = (Ir({N2}) - Ir({N1})) / ({N2} - {N1}) of the worker "
            "process, so start-up and shutdown cancel out. Instruction counts do not depend on "
            "the machine's load; they show regressions that timings hide."
        ),
        "",
        f"| server | Ir, {N1} requests | Ir, {N2} requests | instructions / request |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (argv, stop) in SERVERS.items():
            try:
                ir1 = count(name, argv, N1, stop, Path(tmp))
                ir2 = count(name, argv, N2, stop, Path(tmp))
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"callgrind: {name}: {exc}", flush=True)
                lines.append(f"| {name} | failed: {exc} | | |")
                continue
            per = (ir2 - ir1) / (N2 - N1)
            print(f"callgrind: {name:20} {per:12,.0f} instructions/request", flush=True)
            lines.append(f"| {name} | {ir1:,} | {ir2:,} | {per:,.0f} |")
    return lines


def measure_django(n1: int, n2: int) -> list[str]:
    """Instructions per request of the Django example's template view, dragoman and bjoern."""
    sys.path.insert(0, str(HERE))
    from run import django_db  # migrates and seeds a database of the benchmark's own

    lines = [f"| server | Ir, {n1} requests | Ir, {n2} requests | instructions / request |"]
    lines.append("|---|---|---|---|")
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # in the example's ALLOWED_HOSTS
    bjoern_run = str(APPS / "bjoern_run.py")
    with tempfile.TemporaryDirectory() as tmp:
        db = django_db(Path(tmp))
        env = {"DJANGO_DEBUG": "0", "DJANGO_DB_PATH": str(db), "PYTHONHASHSEED": "0"}
        app = (MYSITE, request, env)
        target = "mysite.wsgi:application"
        servers = {
            "dragoman": (SERVERS["dragoman"][0][:-1] + [target], signal.SIGTERM),
            "bjoern (reference)": ([PYTHON, bjoern_run, target, "PORT"], signal.SIGINT),
        }
        for name, (argv, stop) in servers.items():
            ir1 = count(name, argv, n1, stop, Path(tmp), app)
            ir2 = count(name, argv, n2, stop, Path(tmp), app)
            per = (ir2 - ir1) / (n2 - n1)
            print(f"callgrind: {name:20} {per:12,.0f} instructions/request", flush=True)
            lines.append(f"| {name} | {ir1:,} | {ir2:,} | {per:,.0f} |")
    return lines


def echo_request() -> bytes:
    """The echo scenario's request: bench/post_json.lua's 4 KiB JSON document."""
    prefix, suffix = b'{"data": "', b'"}'
    body = prefix + b"x" * (4096 - len(prefix) - len(suffix)) + suffix
    return (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


def measure_ab(old: str, new: str, n1: int, n2: int, new_args: list[str]) -> list[str]:
    """Instructions per request of two builds (their venvs' Pythons) on three scenarios."""
    lines = [
        f"| scenario | {old} | {new} | change |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        static = Path(tmp) / "static"
        static.mkdir()
        (static / "one.css").write_bytes(b"a{color:red}\n" * 78 + b"b{}\n")  # 1 KiB
        scenarios = {
            "hello world": (["hello:application"], REQUEST),
            "4 KiB JSON echo": (["hello:application"], echo_request()),
            "1 KiB static file": (
                ["hello:application", "--static-map", f"/static={static}"],
                b"GET /static/one.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n",
            ),
        }
        for scenario, (args, request) in scenarios.items():
            per = []
            for python in (old, new):
                argv = [python, "-m", "dragoman", "--http", "127.0.0.1:PORT", "--processes", "1"]
                argv += args + (new_args if python is new else [])
                app = (APPS, request, {"PYTHONHASHSEED": "0"})
                name = f"{scenario}-{len(per)}"
                ir1 = count(name, argv, n1, signal.SIGTERM, Path(tmp), app)
                ir2 = count(name, argv, n2, signal.SIGTERM, Path(tmp), app)
                per.append((ir2 - ir1) / (n2 - n1))
            change = (per[1] - per[0]) / per[0] * 100
            print(f"callgrind: {scenario:20} {per[0]:10,.0f} -> {per[1]:10,.0f} ({change:+.2f}%)")
            lines.append(f"| {scenario} | {per[0]:,.0f} | {per[1]:,.0f} | {change:+.2f}% |")
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["--ab"]:
        argv, new_args = sys.argv, []
        if "--" in argv:
            argv, new_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
        old, new = argv[2:4]
        n1, n2 = (int(x) for x in argv[4:6]) if len(argv) >= 6 else (N1, N2)
        print("\n".join(measure_ab(old, new, n1, n2, new_args)))
        sys.exit(0)
    if sys.argv[1:2] == ["--django"]:
        n1, n2 = (int(x) for x in sys.argv[2:4]) if len(sys.argv) >= 4 else (20, 100)
        print("\n".join(measure_django(n1, n2)))
    else:
        print("\n".join(measure()))
