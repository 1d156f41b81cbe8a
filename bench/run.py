"""Side-by-side measurements of dragoman and its peers, all taken in one run (`make bench`).

What is measured, and how:

- Throughput and latency with wrk: requests per second, and the 50th and 99th percentile
  of the latencies wrk recorded (bench/latency.lua, appended to every wrk script, undoes the
  coordinated-omission correction wrk 4 applies before it reports: at full load that
  correction turns a few stalls of the machine into samples whose number grows with the
  server's own throughput); wrk's own corrected 99th percentile is a column too. Each server
  runs one worker process pinned to CPU 0 (taskset), wrk (one thread) is pinned to CPU 1.
  Every round starts each server in turn (the order rotates from round to round); for each
  scenario it serves, one request checks the response (status, body, Content-Type), then come a
  1 s warm-up, a wait until the server is idle, and the measured run (3x longer for the Django
  view); then the server is stopped. The tables give the median over
  the rounds with the min and max.
- Scenarios: hello world over 64 keep-alive connections and over 1 connection (latency);
  a 4 KiB JSON POST echoed back (bench/post_json.lua); a 1 MiB response streamed as 16 chunks of
  64 KiB with no Content-Length (all from bench/apps/hello.py); the template view "/" of the
  Django example (examples/mysite, DEBUG off, on a database of its own that this script migrates
  and seeds); static files of 1 KiB, 100 KiB and 1 MiB; hello world with 2 worker processes,
  unpinned.
- Servers: dragoman, Granian, bjoern, gunicorn (sync and gthread) and uWSGI for the Python
  scenarios (ASGI: dragoman, Granian, uvicorn and gunicorn's ASGI worker, bench/asgi_bench.py); nginx (`return 200`) and a minimal hyper server with no Python
  (bench/hyper-hello) as the ceiling for hello world; nginx, uWSGI's --static-map, Granian's
  static mount and WhiteNoise for static files.
- Memory: the resident set size (VmRSS, shared pages included) of the largest process in the
  server's session (every server starts in a session of its own), at rest (after start-up and
  one probe request, before any load) and after each scenario's measured run.
- CPU per request: the user + system CPU time of every process in the server's session during
  the measured run, divided by the requests wrk completed. Where the load generator is the
  limit (large static files), it shows what requests/s cannot: how much of its core each server
  spent per request.
- A second load generator for the static files: after wrk, `h2load --h1` (nghttp2's, HTTP/1.1,
  one thread, the same connections and seconds, pinned likewise) measures the same server.
  wrk reads responses in 8 KiB pieces and, from 100 KiB up, its core is the limit before the
  servers'; h2load reads in larger ones. Its requests/s are a column of their own (it reports
  no percentiles), and the goal against nginx is checked with both. h2load does not reconnect,
  so servers that close every connection (uWSGI, gunicorn's sync worker) get no h2load figure.
- Instructions per hello-world request under callgrind (bench/callgrind.py), which do not depend
  on the machine's load; and the process-management figures (bench/master.py).
- Goals: ratios computed from this run's numbers, each marked met or not met.

Nothing in the output is written by hand: every number comes from the run. Writes
bench/results.md (or --output). `--only GROUP` (repeatable) runs part of it, e.g.
`bench/run.py --only hello --rounds 1 --seconds 1 --output /tmp/smoke.md`.
"""

from __future__ import annotations

import argparse
import http.client
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

from master import wrk_errors  # bench/ is the script's directory, so first on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = HERE / "apps"
MYSITE = ROOT / "examples" / "mysite"
HYPER_HELLO = HERE / "hyper-hello"
POST_JSON = HERE / "post_json.lua"
PACED = HERE / "paced.lua"
LATENCY_LUA = HERE / "latency.lua"
BIN = Path(sys.executable).parent
SERVER_CPU = "0"
LOAD_CPU = "1"
WARM_UP_SECONDS = 1
REST_SECONDS = 0.5  # after the probe request, before RSS at rest is read
DJANGO_SECONDS_FACTOR = 3  # the Django view's runs are 3x --seconds (see NOTES["django"])
SETTLE_QUIET = 0.1  # Server.settle: this long with at most one tick of CPU is idle
SETTLE_SECONDS = 5  # ... and it waits no longer than this
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

HELLO = {"expect": b"Hello, world!", "content_type": "text/plain"}
# The body bench/post_json.lua sends: a 4 KiB JSON document.
ECHO_BODY = b'{"data": "' + b"x" * (4096 - 12) + b'"}'

# The --only choices, in the order they run.
GROUPS = [
    "hello",
    "echo",
    "stream",
    "django",
    "static",
    "two-process",
    "https",
    "asgi",
    "callgrind",
    "master",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Scenario:
    label: str  # the key of the results
    group: str  # the --only choice that selects it
    title: str
    path: str
    connections: int
    script: Path | None = None  # a wrk script (the POST)
    body: bytes | None = None  # what the script sends, for the response check
    expect: bytes | int | None = None  # the response body, or its length
    content_type: str | None = None
    second_opinion: bool = False  # also measured with h2load --h1
    # Measured runs this many times --seconds long: a server answering in bursts (bjoern on the
    # Django view) needs a longer window for its count not to depend on where the window falls.
    seconds_factor: int = 1

    def check(self, port: int) -> str | None:
        """One request before the load: None if the response is the expected one."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            if self.body is None:
                conn.request("GET", self.path)
            else:
                headers = {"Content-Type": "application/json"}
                conn.request("POST", self.path, body=self.body, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return f"check request failed: {exc}"
        finally:
            conn.close()
        if response.status != 200:
            return f"check: status {response.status}"
        if isinstance(self.expect, bytes) and body != self.expect:
            return f"check: unexpected body of {len(body)} bytes"
        if isinstance(self.expect, int) and len(body) != self.expect:
            return f"check: {len(body)} bytes instead of {self.expect}"
        content_type = response.getheader("Content-Type", "")
        if self.content_type and not content_type.startswith(self.content_type):
            return f"check: Content-Type {content_type!r}"
        return None


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = APPS
    serves: frozenset[str] | None = None  # the scenario labels it serves; None: all of them
    pinned: bool = True
    # Closes every connection after its response (uWSGI's --http-socket, gunicorn's sync
    # worker): wrk reconnects, h2load does not, so h2load is not run against it.
    one_request_per_connection: bool = False
    log: Path | None = None
    proc: subprocess.Popen | None = None

    def serves_scenario(self, scenario: Scenario) -> bool:
        return self.serves is None or scenario.label in self.serves

    def start(self, probe: str) -> None:
        with open(self.log or os.devnull, "wb") as out:
            self.proc = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *self.argv] if self.pinned else self.argv,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(
                        f"GET {probe} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
                    )
                    if s.recv(12).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        tail = ""
        if self.log and self.log.exists():
            tail = " ".join(self.log.read_text(errors="replace").strip().splitlines()[-1:])
        raise RuntimeError(f"did not start{': ' + tail if tail else ''}")

    def session(self) -> list[tuple[str, list[str]]]:
        """(pid, /proc/pid/stat fields after the command name) of the server's processes."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[3]) == self.proc.pid:
                    found.append((entry, fields))
            except (OSError, ValueError, IndexError):
                continue
        return found

    def rss(self) -> int:
        """Bytes resident in the largest process of the server's session (its worker)."""
        best = 0
        for pid, _ in self.session():
            try:
                resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            except (OSError, ValueError, IndexError):
                continue
            best = max(best, resident)
        return best

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes so far."""
        ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in self.session())
        return ticks / CLOCK_TICKS

    def settle(self) -> None:
        """Waits (up to SETTLE_SECONDS) until the server's processes have used at most one clock
        tick of CPU in SETTLE_QUIET seconds: the requests the warm-up left queued when wrk
        closed its connections (each server still answers them; one per connection, 210 ms of
        CPU on the Django view) are done before the measured run starts, not inside it."""
        deadline = time.monotonic() + SETTLE_SECONDS
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(SETTLE_QUIET)
            now = self.cpu_seconds()
            if now - before <= 1 / CLOCK_TICKS:
                return
            before = now

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc:  # workers left behind by a master that exited first
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# dragoman with --disable-logging, beside its default (the access log on) in the hello group.
ACCESS_LOG_OFF = "dragoman (access log off)"


# --- the servers ------------------------------------------------------------------------------


def python_servers(
    app: str, cwd: Path, env: dict[str, str], serves: set[str], processes: int = 1
) -> list[Server]:
    """The WSGI servers, each serving `app` (module:callable) from `cwd` with `processes`
    worker processes (bjoern only with 1: it has no multi-process mode)."""
    pinned = processes == 1
    labels = frozenset(serves)
    n = str(processes)
    servers = []

    def add(name: str, argv: list[str], port: int) -> None:
        servers.append(Server(name, argv, port, env=env, cwd=cwd, serves=labels, pinned=pinned))

    port = free_port()
    chdir = [] if cwd == APPS else ["--chdir", str(cwd)]
    procs = [] if processes == 1 else ["--processes", n]
    add(
        "dragoman",
        [str(BIN / "dragoman"), "--http", f"127.0.0.1:{port}", *chdir, *procs, app],
        port,
    )
    port = free_port()
    add("granian", granian(port, app, processes), port)
    if processes == 1:
        port = free_port()
        add("bjoern", [sys.executable, str(APPS / "bjoern_run.py"), app, str(port)], port)
    port = free_port()
    add(
        "gunicorn (sync)",
        [str(BIN / "gunicorn"), "-w", n, "-b", f"127.0.0.1:{port}", app],
        port,
    )
    port = free_port()
    add(
        "gunicorn (gthread, 4 threads)",
        [str(BIN / "gunicorn"), "-w", n, "-k", "gthread", "--threads", "4"]
        + ["-b", f"127.0.0.1:{port}", app],
        port,
    )
    port = free_port()
    add(
        "uWSGI",
        [str(BIN / "uwsgi"), *uwsgi_http(port), "--chdir", str(cwd), "--module", app]
        + ["--master", "--processes", n, "--disable-logging", "--die-on-term"],
        port,
    )
    return servers


def uwsgi_http(port: int) -> list[str]:
    # As uWSGI sites run it behind nginx: one request per connection (wrk counts each close as a
    # read error). --http11-socket keeps connections open but stalls 40 ms per response on
    # Nagle/delayed-ACK here (23 requests/s).
    return ["--http-socket", f"127.0.0.1:{port}"]


def granian(port: int, app: str = "hello:application", processes: int = 1, *extra: str):
    return [
        str(BIN / "granian"),
        "--interface",
        "wsgi",
        "--workers",
        str(processes),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ws",
        *extra,
        app,
    ]


def nginx(
    work: Path, directory: str, server_block: str, workers: int = 1, name: str = "nginx"
) -> Server:
    """nginx with `workers` worker processes and one server block, configured in work/directory."""
    port = free_port()
    prefix = work / directory
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""user root;
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
{server_block.rstrip()}
    }}
}}
"""
    )
    return Server(name, ["nginx", "-p", str(prefix), "-c", str(conf)], port)


NGINX_HELLO = """        location / { default_type text/plain; return 200 "Hello, world!"; }"""
NGINX_CEILING = "nginx return 200 (ceiling)"
HYPER_CEILING = "hyper, no Python (ceiling)"


def hyper_hello_binary() -> Path | None:
    """bench/hyper-hello's release binary (`make bench` builds it; built here if missing)."""
    binary = HYPER_HELLO / "target" / "release" / "hyper-hello"
    if not binary.exists() and shutil.which("cargo"):
        subprocess.run(
            ["cargo", "build", "--release", "--manifest-path", str(HYPER_HELLO / "Cargo.toml")],
            check=False,
        )
    return binary if binary.exists() else None


def app_servers(work: Path, scenarios: list[Scenario]) -> tuple[list[Server], list[str]]:
    """The servers of bench/apps/hello.py's scenarios, and notes on those left out."""
    labels = {s.label for s in scenarios}
    servers = python_servers("hello:application", APPS, {}, labels)
    notes = []
    if "hello" in labels:
        # The access log is on by default: the same build with it off shows what it costs
        # (issue 26: at least 95% of the requests/s kept).
        port = free_port()
        argv = [str(BIN / "dragoman"), "--http", f"127.0.0.1:{port}", "--disable-logging"]
        servers.append(
            Server(ACCESS_LOG_OFF, [*argv, "hello:application"], port, serves=frozenset({"hello"}))
        )
    ceiling = frozenset(labels & {"hello", "hello-1"})
    if ceiling:
        server = nginx(work, "nginx-hello", NGINX_HELLO, name=NGINX_CEILING)
        server.serves = ceiling
        servers.append(server)
        binary = hyper_hello_binary()
        if binary:
            port = free_port()
            servers.append(Server(HYPER_CEILING, [str(binary), str(port)], port, serves=ceiling))
        else:
            notes.append("bench/hyper-hello could not be built (is cargo installed?): left out.")
    return servers, notes


def django_servers(work: Path) -> list[Server]:
    env = {"DJANGO_DEBUG": "0", "DJANGO_DB_PATH": str(django_db(work))}
    return python_servers("mysite.wsgi:application", MYSITE, env, {"django"})


def django_db(work: Path) -> Path:
    """A database of the benchmark's own for the example (its DJANGO_DB_PATH): migrated, with
    20 guestbook messages (the most the index page lists), so every server renders the same
    page and examples/mysite/db.sqlite3 is left as it is."""
    db = work / "db.sqlite3"
    env = {**os.environ, "DJANGO_DB_PATH": str(db), "DJANGO_DEBUG": "0"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=MYSITE, env=env, check=True)
    seed = (
        "from demo.models import Message; Message.objects.bulk_create("
        "Message(name=f'Guest {i}', text=f'Message {i} of the benchmark.\\nSecond line.') "
        "for i in range(20))"
    )
    subprocess.run(
        [*manage, "shell", "-c", seed], cwd=MYSITE, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return db


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
    servers.append(nginx(work, "nginx-static", f"        location /static/ {{ alias {root}/; }}"))
    port = free_port()
    servers.append(
        Server(
            "uWSGI --static-map",
            [
                str(BIN / "uwsgi"),
                *uwsgi_http(port),
                "--wsgi-file",
                "hello.py",
                "--static-map",
                f"/static={root}",
                "--master",
                "--processes",
                "1",
                "--disable-logging",
                "--die-on-term",
            ],
            port,
            one_request_per_connection=True,
        )
    )
    port = free_port()
    servers.append(
        Server(
            "granian static",
            granian(
                port,
                "hello:application",
                1,
                "--static-path-route",
                "/static",
                "--static-path-mount",
                str(root),
            ),
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
            one_request_per_connection=True,  # gunicorn's sync worker has no keep-alive
        )
    )
    return servers


def two_process_servers(work: Path) -> list[Server]:
    servers = python_servers("hello:application", APPS, {}, {"hello-2p"}, processes=2)
    server = nginx(work, "nginx-hello-2p", NGINX_HELLO, workers=2, name=NGINX_CEILING)
    server.pinned = False
    servers.append(server)
    return servers


def make_files(root: Path, connections: int) -> list[Scenario]:
    sizes = [("1 KiB", 1024), ("100 KiB", 100 * 1024), ("1 MiB", 1024 * 1024)]
    scenarios = []
    for label, size in sizes:
        name = f"{size}.bin"
        data = os.urandom(size)
        (root / name).write_bytes(data)
        scenarios.append(
            Scenario(
                f"static {label}",
                "static",
                f"Static file, {label}",
                f"/static/{name}",
                connections,
                expect=data,
                second_opinion=True,
            )
        )
    return scenarios


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Sample:
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    p99_wrk_ms: list[float] = field(default_factory=list)  # with wrk's correction
    rss_rest: list[int] = field(default_factory=list)
    rss_after: list[int] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per request
    h2load_rps: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)  # the round of each rps
    errors: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class Group:
    """results[scenario label][server name]; failed[server name] = why it did not start."""

    results: dict[str, dict[str, Sample]]
    failed: dict[str, str] = field(default_factory=dict)


def wrk_script(scenario: Scenario, work: Path) -> Path:
    """The scenario's wrk script with bench/latency.lua appended, written into `work`."""
    name = re.sub(r"\W+", "-", scenario.label)
    path = work / f"wrk-{name}.lua"
    if not path.exists():
        own = scenario.script.read_text() + "\n" if scenario.script else ""
        path.write_text(own + LATENCY_LUA.read_text())
    return path


def wrk_argv(scenario: Scenario, port: int, seconds: int, pinned: bool, work: Path):
    c = scenario.connections
    argv = ["wrk", "-t1", f"-c{c}", f"-d{seconds}s", "-s", str(wrk_script(scenario, work))]
    argv.append(f"http://127.0.0.1:{port}{scenario.path}")
    # bench/latency.lua needs the connections to undo wrk's correction.
    env = ["env", f"WRK_CONNECTIONS={c}"]
    return [*env, "taskset", "-c", LOAD_CPU, *argv] if pinned else [*env, *argv]


@dataclass
class WrkRun:
    rps: float
    p50_ms: float  # recorded
    p99_ms: float  # recorded
    p99_wrk_ms: float  # with wrk's coordinated-omission correction
    errors: int
    requests: int


def wrk(argv: list[str]) -> WrkRun:
    """One wrk run; raises ValueError if bench/latency.lua's recorded latencies do not add up
    to the requests wrk completed (its correction was not undone exactly). A response slower
    than wrk's timeout (2 s) is counted as a timeout instead of recorded, and a request still
    waiting at one of its timeout checks adds one too, so with timeouts the recorded count may
    fall short of the requests by at most that many."""
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(
        r"LATENCY interval=\d+ corrected=\d+ p50=\d+ p99=(\d+) recorded=(\d+) p50=(\d+) p99=(\d+)",
        out,
    )
    if not m:
        raise ValueError("no LATENCY line from bench/latency.lua")
    wrk_p99, recorded, p50, p99 = (int(g) for g in m.groups())
    t = re.search(r"Socket errors: .*timeout (\d+)", out)
    timeouts = int(t.group(1)) if t else 0
    if not requests - timeouts <= recorded <= requests:
        raise ValueError(
            f"{recorded} recorded latencies for {requests} requests ({timeouts} timeouts)"
        )
    return WrkRun(rps, p50 / 1000, p99 / 1000, wrk_p99 / 1000, wrk_errors(out), requests)


def h2load(scenario: Scenario, port: int, connections: int, seconds: int, pinned: bool) -> float:
    """requests/s from h2load over HTTP/1.1; raises if any request failed."""
    argv = ["h2load", "--h1", "-t1", f"-c{connections}", f"-D{seconds}"]
    argv.append(f"http://127.0.0.1:{port}{scenario.path}")
    if pinned:
        argv = ["taskset", "-c", LOAD_CPU, *argv]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not m or int(m.group(3)) != int(m.group(2)) or int(m.group(2)) == 0:
        raise ValueError(f"h2load: failed requests: {m.group(0) if m else out[-300:]}")
    return float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))


def run_group(servers: list[Server], scenarios: list[Scenario], args, work: Path) -> Group:
    group = Group(
        {sc.label: {s.name: Sample() for s in servers if s.serves_scenario(sc)} for sc in scenarios}
    )
    for server in servers:
        server.log = work / (re.sub(r"\W+", "-", server.name).strip("-") + ".log")
    for round_ in range(args.rounds):
        shift = round_ % len(servers)
        for server in servers[shift:] + servers[:shift]:
            mine = [sc for sc in scenarios if server.serves_scenario(sc)]
            if server.name in group.failed or not mine:
                continue
            try:
                server.start(mine[0].path)
            except RuntimeError as exc:
                group.failed[server.name] = str(exc)
                print(f"round {round_ + 1}: {server.name} {exc}", flush=True)
                continue
            try:
                time.sleep(REST_SECONDS)
                rest = server.rss()
                for sc in mine:
                    conns = sc.connections
                    sample = group.results[sc.label][server.name]
                    problem = sc.check(server.port)
                    if problem:
                        sample.failures.append(problem)
                        print(f"round {round_ + 1}: {sc.label:12} {server.name}: {problem}")
                        continue
                    try:
                        wrk(wrk_argv(sc, server.port, WARM_UP_SECONDS, server.pinned, work))
                        server.settle()
                        cpu_before = server.cpu_seconds()
                        seconds = args.seconds * sc.seconds_factor
                        run = wrk(wrk_argv(sc, server.port, seconds, server.pinned, work))
                        cpu = server.cpu_seconds() - cpu_before
                    except (subprocess.CalledProcessError, AttributeError, ValueError) as exc:
                        why = exc if isinstance(exc, ValueError) else exc.__class__.__name__
                        sample.failures.append(f"wrk failed ({why})")
                        print(
                            f"round {round_ + 1}: {sc.label:12} {server.name}: wrk failed ({why})"
                        )
                        continue
                    sample.rps.append(run.rps)
                    sample.rounds.append(round_)
                    sample.p50_ms.append(run.p50_ms)
                    sample.p99_ms.append(run.p99_ms)
                    sample.p99_wrk_ms.append(run.p99_wrk_ms)
                    sample.errors += run.errors
                    sample.rss_rest.append(rest)
                    sample.rss_after.append(server.rss())
                    sample.cpu_us.append(cpu * 1e6 / max(run.requests, 1))
                    if sc.second_opinion and not server.one_request_per_connection:
                        try:
                            sample.h2load_rps.append(
                                h2load(sc, server.port, conns, args.seconds, server.pinned)
                            )
                        except (
                            subprocess.CalledProcessError,
                            subprocess.TimeoutExpired,
                            ValueError,
                        ) as exc:
                            sample.failures.append(f"h2load: {exc.__class__.__name__}")
                    print(
                        f"round {round_ + 1}: {sc.label:12} {server.name:30} {run.rps:10.0f} rps  "
                        f"p50 {run.p50_ms:.3f} ms  p99 {run.p99_ms:.3f} ms "
                        f"(wrk {run.p99_wrk_ms:.3f})  errors {run.errors:6}  "
                        f"RSS {rest / MIB:.1f} -> {sample.rss_after[-1] / MIB:.1f} MiB  "
                        f"CPU {sample.cpu_us[-1]:.1f} us/request"
                        + (
                            f"  h2load {sample.h2load_rps[-1]:.0f} rps" if sample.h2load_rps else ""
                        ),
                        flush=True,
                    )
            finally:
                server.stop()
    return group


# --- HTTPS and HTTP/2 (issue 23): their own servers, scenarios and table ----------------------
#
# dragoman with `https` against Granian (its TLS options) and nginx (`ssl` + `http2`, `return 200`
# and its static location: the ceiling), one worker each, pinned as above. Scenarios: hello world
# over HTTP/1.1 (wrk) and over HTTP/2 (h2load, 64 connections x 10 streams); full TLS handshakes
# per second (wrk with `Connection: close`: a new connection, so a full handshake, per request);
# 1 KiB and 100 KiB static files over HTTPS (wrk). The certificate is an ECDSA P-256 one made here
# with openssl, so every server signs the same way.

HTTPS_GROUP = "https"


def https_certificate(work: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 and its key, made with openssl."""
    cert, key = work / "bench.crt", work / "bench.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class HttpsServer(Server):
    """A server probed over TLS (the plain probe of `Server.start` cannot reach it)."""

    def start(self, probe: str) -> None:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with open(self.log or os.devnull, "wb") as out:
            self.proc = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *self.argv] if self.pinned else self.argv,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw,
                    context.wrap_socket(raw) as s,
                ):
                    s.sendall(
                        f"GET {probe} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
                    )
                    if s.recv(12).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("did not start over TLS")


def https_servers(work: Path, cert: Path, key: Path, root: Path) -> list[HttpsServer]:
    servers = []
    port = free_port()
    servers.append(
        HttpsServer(
            "dragoman",
            [
                str(BIN / "dragoman"),
                "--https",
                f"127.0.0.1:{port},{cert},{key}",
                "--static-map",
                f"/static={root}",
                "hello:application",
            ],
            port,
        )
    )
    if (BIN / "granian").exists():
        granian_help = subprocess.run(
            [str(BIN / "granian"), "--help"], capture_output=True, text=True, check=False
        ).stdout
        cert_flag = "--ssl-certfile" if "--ssl-certfile" in granian_help else "--ssl-certificate"
        port = free_port()
        servers.append(
            HttpsServer(
                "granian",
                granian(
                    port,
                    "hello:application",
                    1,
                    cert_flag,
                    str(cert),
                    "--ssl-keyfile",
                    str(key),
                    "--static-path-route",
                    "/static",
                    "--static-path-mount",
                    str(root),
                ),
                port,
            )
        )
    # `listen ... ssl http2` (not `http2 on;`, which needs nginx 1.25.1): Debian 12 has 1.22.
    # `ssl_protocols`: nginx's default since 1.23.4. 1.22's default stops at TLS 1.2, where wrk
    # resumes each new connection by session ID (no key exchange at all) while the others do
    # TLS 1.3: the handshake rows compared different protocols.
    block = f"""        listen 127.0.0.1:{{port}} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ default_type text/plain; return 200 "Hello, world!"; }}
        location /static/ {{ alias {root}/; }}"""
    port = free_port()
    prefix = work / "nginx-https"
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""user root;
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    types {{ application/octet-stream bin; }}
    server {{
{block.replace("{port}", str(port))}
    }}
}}
"""
    )
    servers.append(
        HttpsServer("nginx (ceiling)", ["nginx", "-p", str(prefix), "-c", str(conf)], port)
    )
    return servers


def run_load(argv: list[str], seconds: int) -> str:
    """The output of a load generator run on the load generator's CPU for `seconds`."""
    return subprocess.run(
        ["taskset", "-c", LOAD_CPU, *argv],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout


def https_load(kind: str, port: int, path: str, connections: int, seconds: int) -> float:
    """requests/s of one run: wrk over HTTP/1.1 (`h1`, `handshakes` with a new connection per
    request) or h2load over HTTP/2 (`h2`, 10 streams per connection); raises if it failed.
    With a new connection per request wrk resumes the session a ticket offers (nginx logs each
    one reused): a TLS 1.3 handshake with a key exchange (X25519) and no certificate signature;
    `full` (openssl s_time -new) never resumes."""
    url = f"https://127.0.0.1:{port}{path}"
    if kind == "full":
        # One connection at a time, each a full handshake (`-new`: never resumed) and a GET:
        # the rate is one over the client's and the server's handshake in turn.
        argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new"]
        argv += ["-time", str(seconds), "-www", path]
        out = run_load(argv, seconds)
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if not m or int(m.group(1)) == 0:
            raise ValueError(f"openssl s_time: {out[-300:]}")
        return int(m.group(1)) / int(m.group(2))
    if kind == "h2":
        argv = ["h2load", "-t1", f"-c{connections}", "-m10", f"-D{seconds}", url]
        out = run_load(argv, seconds)
        m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
        if not m or m.group(1) != m.group(2) or int(m.group(1)) == 0:
            raise ValueError(f"h2load: {m.group(0) if m else out[-300:]}")
        if "Application protocol: h2" not in out:
            raise ValueError("h2load did not get HTTP/2")
        return float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    if kind == "handshakes":
        argv += ["-H", "Connection: close"]
    out = run_load([*argv, url], seconds)
    if kind != "handshakes" and wrk_errors(out):
        raise ValueError(f"wrk: {wrk_errors(out)} errors")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def https_section(args, work: Path) -> tuple[list[str], dict[str, dict[str, list[float]]]]:
    """Runs the HTTPS scenarios; the report's lines and the results (label -> server -> rps,
    and `rss` -> server -> worker RSS in bytes after the runs)."""
    cert, key = https_certificate(work)
    root = work / "https-static"
    root.mkdir()
    (root / "1k.bin").write_bytes(os.urandom(1024))
    (root / "100k.bin").write_bytes(os.urandom(100 * 1024))
    c = args.connections
    scenarios = [
        ("https-h1", "h1", "/", "Hello world over HTTPS, HTTP/1.1 (wrk)"),
        ("https-h2", "h2", "/", "Hello world over HTTPS, HTTP/2 (h2load, 10 streams each)"),
        (
            "https-handshakes",
            "handshakes",
            "/",
            "New TLS connections: a handshake per request (wrk, Connection: close)",
        ),
        (
            "https-full-handshakes",
            "full",
            "/",
            "Full TLS handshakes, one connection at a time (openssl s_time -new)",
        ),
        ("https-static-1k", "h1", "/static/1k.bin", "1 KiB static file over HTTPS (wrk)"),
        ("https-static-100k", "h1", "/static/100k.bin", "100 KiB static file over HTTPS (wrk)"),
    ]
    servers = https_servers(work, cert, key, root)
    results: dict[str, dict[str, list[float]]] = {label: {} for label, *_ in scenarios}
    results["rss"] = {}
    failed: dict[str, str] = {}
    for server in servers:
        server.log = work / (re.sub(r"\W+", "-", server.name).strip("-") + "-https.log")
    for round_ in range(args.rounds):
        shift = round_ % len(servers)
        for server in servers[shift:] + servers[:shift]:
            if server.name in failed:
                continue
            try:
                server.start("/")
            except RuntimeError as exc:
                failed[server.name] = str(exc)
                continue
            try:
                for label, kind, path, _ in scenarios:
                    try:
                        https_load(kind, server.port, path, c, WARM_UP_SECONDS)
                        server.settle()
                        cpu = server.cpu_seconds()
                        rps = https_load(kind, server.port, path, c, args.seconds)
                        cpu = server.cpu_seconds() - cpu
                    except (subprocess.SubprocessError, ValueError, AttributeError) as exc:
                        print(f"round {round_ + 1}: {label:18} {server.name}: failed ({exc})")
                        continue
                    results[label].setdefault(server.name, []).append(rps)
                    # The server's CPU time per request (requests: the rate times the run):
                    # where the load generator is the limit (the handshakes: wrk's own
                    # handshakes cost about what the server's do), what each server spends.
                    per = cpu * 1e6 / max(rps * args.seconds, 1)
                    results.setdefault(f"{label} cpu", {}).setdefault(server.name, []).append(per)
                    print(
                        f"round {round_ + 1}: {label:18} {server.name:20} {rps:10.0f} rps  "
                        f"CPU {per:.1f} us/request"
                    )
                results["rss"].setdefault(server.name, []).append(server.rss())
            finally:
                server.stop()
    lines = ["", "## HTTPS and HTTP/2", ""]
    lines.append(
        "One worker each, pinned to CPU 0, the load generator to CPU 1; an ECDSA P-256 "
        f"certificate; {c} connections; requests/s, median (min-max) of {args.rounds} round(s)."
    )
    for label, _, _, title in scenarios:
        lines += ["", f"### {title}", "", "| server | requests/s | server CPU us/request |"]
        lines.append("|---|---|---|")
        for server in servers:
            got = results[label].get(server.name)
            if got:
                cpu = statistics.median(results[f"{label} cpu"][server.name])
                lines.append(
                    f"| {server.name} | {statistics.median(got):.0f} "
                    f"({min(got):.0f}-{max(got):.0f}) | {cpu:.1f} |"
                )
            else:
                lines.append(f"| {server.name} | {failed.get(server.name, 'failed')} |")
    lines += ["", "### Worker RSS after the HTTPS runs", "", "| server | MiB |", "|---|---|"]
    for server in servers:
        got = results["rss"].get(server.name)
        if got:
            lines.append(f"| {server.name} | {statistics.median(got) / MIB:.1f} |")
    lines += ["", *https_goals(results)]
    return lines, results


def https_goals(results: dict[str, dict[str, list[float]]]) -> list[str]:
    """Issue 23's goals, each checked against this run's medians."""

    def median(label: str, server: str) -> float | None:
        got = results.get(label, {}).get(server)
        return statistics.median(got) if got else None

    lines = ["### HTTPS goals", ""]

    def check(what: str, ours: float | None, theirs: float | None, at_least: float) -> None:
        if ours is None or theirs is None or theirs == 0:
            lines.append(f"- {what}: not measured")
            return
        ratio = ours / theirs
        verdict = "met" if ratio >= at_least else "not met"
        lines.append(f"- {what}: {ratio:.2f}x (goal {at_least}x): {verdict}")

    for label, name in (("https-h1", "HTTP/1.1"), ("https-h2", "HTTP/2")):
        ours = median(label, "dragoman")
        check(f"hello over {name}, dragoman/Granian", ours, median(label, "granian"), 1.3)
        check(f"hello over {name}, dragoman/nginx", ours, median(label, "nginx (ceiling)"), 0.9)
    for label, what in (
        ("https-handshakes", "new TLS connections/s"),
        ("https-full-handshakes", "full handshakes/s (one at a time)"),
        ("https-static-1k", "1 KiB static"),
        ("https-static-100k", "100 KiB static"),
    ):
        check(
            f"{what}, dragoman/nginx",
            median(label, "dragoman"),
            median(label, "nginx (ceiling)"),
            1.0,
        )
    ours, theirs = (
        median("https-handshakes cpu", "dragoman"),
        median("https-handshakes cpu", "nginx (ceiling)"),
    )
    if ours is not None and theirs is not None:
        lines.append(
            f"- server CPU per new TLS connection: dragoman {ours:.0f} us, nginx {theirs:.0f} us "
            "(reported: wrk, resuming each session, is the limit when its handshakes cost "
            "about what the server's do)"
        )
    ours, theirs = median("rss", "dragoman"), median("rss", "granian")
    if ours is None or theirs is None:
        lines.append("- worker RSS with TLS, dragoman <= Granian: not measured")
    else:
        verdict = "met" if ours <= theirs else "not met"
        lines.append(
            f"- worker RSS with TLS: dragoman {ours / MIB:.1f} MiB, Granian {theirs / MIB:.1f} "
            f"MiB (goal: no more): {verdict}"
        )
    return lines


# --- the report -------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def table(group: Group, label: str) -> list[str]:
    results = group.results[label]
    base = results.get("dragoman")
    base = statistics.median(base.rps) if base and base.rps else None
    second = any(r.h2load_rps for r in results.values())
    extra_head, extra_rule = (
        (" h2load --h1 requests/s median (min-max) |", "---|") if second else ("", "")
    )
    lines = [
        (
            "| server | requests/s median (min-max) | p50 ms | p99 ms | p99 ms, wrk's correction "
            "| errors | RSS at rest MiB | RSS after MiB | server CPU us/request "
            f"| dragoman / server |{extra_head}"
        ),
        f"|---|---|---|---|---|---|---|---|---|---|{extra_rule}",
    ]
    for name, r in results.items():
        if not r.rps:
            why = group.failed.get(name) or "; ".join(dict.fromkeys(r.failures)) or "not run"
            lines.append(f"| {name} | {why} | | | | | | | | |" + (" |" if second else ""))
            continue
        med = statistics.median(r.rps)
        ratio = f"{base / med:.2f}x" if base else "n/a"
        errors = str(r.errors)
        if r.failures:  # some rounds only
            errors += f"; {len(r.failures)} round(s) failed: {'; '.join(dict.fromkeys(r.failures))}"
        h2 = ""
        if second:
            h = r.h2load_rps
            h2 = f" {statistics.median(h):,.0f} ({min(h):,.0f}-{max(h):,.0f}) |" if h else " |"
        lines.append(
            f"| {name} | {med:,.0f} ({min(r.rps):,.0f}-{max(r.rps):,.0f}) | "
            f"{ms(statistics.median(r.p50_ms))} | {ms(statistics.median(r.p99_ms))} | "
            f"{ms(statistics.median(r.p99_wrk_ms))} | {errors} | "
            f"{statistics.median(r.rss_rest) / MIB:.1f} | "
            f"{statistics.median(r.rss_after) / MIB:.1f} | {statistics.median(r.cpu_us):.1f} | "
            f"{ratio} |{h2}"
        )
    return lines


CEILING_NOTE = (
    "Ceilings, no WSGI: nginx `location / { default_type text/plain; "
    'return 200 "Hello, world!"; }` (1 worker process) and bench/hyper-hello, hyper\'s HTTP/1 '
    "server on a single-threaded tokio runtime; both send the same status, Content-Type and "
    "body as the WSGI app. bjoern runs bench/apps/bjoern_run.py (TCP_NODELAY on its listening "
    "socket, see there)."
)
NOTES = {
    "hello": [CEILING_NOTE],
    "hello-1": [CEILING_NOTE],
    "hello-paced": [
        (
            "Each connection pauses 1 ms after a response before its next request "
            "(bench/paced.lua), so the load stays below what the fast servers answer and wrk's "
            "core has time to spare: the latency columns are the servers' own, where at full "
            "load (the first table) wrk's queue is part of them. The requests/s column is what "
            "the pace allowed, not a capacity."
        )
    ],
    "stream": [
        (
            "The app yields 16 chunks of 64 KiB and sets no Content-Length, so each server "
            "frames the body itself (chunked encoding over HTTP/1.1)."
        )
    ],
    "django": [
        (
            "Every server loads `mysite.wsgi:application` with examples/mysite as its working "
            "directory. The page is the guestbook: a form with a CSRF token and the 20 latest "
            "messages from SQLite (a database of the benchmark's own, which it migrates and seeds "
            "with 20 messages, so every server renders the same page)."
        ),
        (
            "The runs are 3x --seconds long (15 s by default). bjoern answers this view in "
            "bursts: it runs the app for every connection that was readable (64 requests, about "
            "200 ms) and only then writes the 64 responses, where dragoman writes each response "
            "as soon as the app returns it. A 5 s window holds 23 or 24 of bjoern's bursts, so its count moved by "
            "4% with where the window fell; at 15 s that is 1.4%. The servers' own code is a "
            "sliver of this view's CPU: in a perf profile of the worker, dragoman's native module "
            "takes 0.3% (about 12 us a request) and bjoern's 0.1% (4 us); CPython, SQLite and "
            "the kernel's share for the app take the rest."
        ),
    ],
    "hello-2p": [
        (
            "Unpinned: the server's 2 worker processes and wrk share both cores, so this shows "
            "scaling, not a per-core figure. bjoern has no multi-process mode and "
            "bench/hyper-hello is single-threaded by design: both are left out. nginx runs 2 "
            "worker processes."
        )
    ],
}
UWSGI_NOTE = (
    "uWSGI serves `--http-socket` as sites run it behind nginx: one request per connection. "
    "It closes each connection after the response; wrk counts every close as a read error and "
    "reconnects, so uWSGI's errors column counts closed connections, not failed requests."
)


H2LOAD_NOTE = (
    "The h2load column: the same server measured with `h2load --h1` right after wrk, the "
    "second load generator (wrk's 8 KiB reads make its core the limit from 100 KiB up). "
    "h2load does not reconnect when a server closes the connection, so it is not run "
    "against uWSGI or gunicorn's sync worker, which close every connection (n/a)."
)


def section(group: Group, scenario: Scenario, notes: list[str]) -> list[str]:
    lines = ["", f"## {scenario.title}", "", *table(group, scenario.label)]
    if any(name.startswith("uWSGI") for name in group.results[scenario.label]):
        notes = [*notes, UWSGI_NOTE]
    if scenario.second_opinion:
        notes = [*notes, H2LOAD_NOTE]
    for note in notes:
        lines += ["", note]
    return lines


def median_of(results: dict, label: str, server: str, attr: str) -> float | None:
    sample = results.get(label, {}).get(server)
    values = getattr(sample, attr, None) if sample else None
    return statistics.median(values) if values else None


def goals(results: dict[str, dict[str, Sample]], connections: int) -> list[str]:
    """Issues 6's and 3's goals, each checked against this run's medians (nothing here is a
    result)."""
    rows = []

    def value(label: str, server: str, attr: str = "rps") -> float | None:
        return median_of(results, label, server, attr)

    def row(goal: str, shown: str | None, met: bool | None) -> None:
        if shown is None:
            rows.append(f"| {goal} | not measured | |")
        else:
            verdict = "reported (no goal)" if met is None else "met" if met else "not met"
            rows.append(f"| {goal} | {shown} | {verdict} |")

    def rps_ratio(
        goal: str, label: str, peer: str, at_least: float | None, fmt="{:.2f}x", attr="rps"
    ):
        mine, theirs = value(label, "dragoman", attr), value(label, peer, attr)
        if not (mine and theirs):
            return row(goal, None, None)
        ratio = mine / theirs
        shown = fmt.format(ratio)
        if attr == "rps" and at_least is not None:
            shown += paired(label, peer, fmt, at_least)
        row(goal, shown, None if at_least is None else ratio >= at_least)

    def paired(label: str, peer: str, fmt: str, at_least: float) -> str:
        """The ratio within each round (the two servers measured minutes apart, not a whole
        run apart), and in how many rounds it reached the goal: a tie shows as one."""
        a, b = results[label]["dragoman"], results[label][peer]
        theirs = dict(zip(b.rounds, b.rps))
        ratios = [rps / theirs[r] for r, rps in zip(a.rounds, a.rps) if r in theirs]
        if len(ratios) < 2:
            return ""
        reached = sum(x >= at_least for x in ratios)
        spread = f"{fmt.format(min(ratios))}-{fmt.format(max(ratios))}"
        return f" (round by round {spread}, the goal reached in {reached} of {len(ratios)})"

    def no_more(goal: str, label: str, attr: str, peer: str, show, judged: bool = True) -> None:
        """dragoman's figure against the peer's; `judged=False` reports them with no verdict."""
        mine, theirs = value(label, "dragoman", attr), value(label, peer, attr)
        if mine is None or theirs is None:
            return row(goal, None, None)
        row(goal, f"{show(mine)} vs {show(theirs)}", mine <= theirs if judged else None)

    hello = f"hello world ({connections} connections)"
    rps_ratio(f"{hello} requests/s, dragoman / bjoern >= 1.0", "hello", "bjoern", 1.0)
    # The figures (bjoern ~143k, Granian ~90k) make "at least bjoern" about 1.5x Granian.
    rps_ratio(f"{hello} requests/s, dragoman / granian >= 1.5", "hello", "granian", 1.5)
    for peer in ("uWSGI", "gunicorn (sync)"):
        rps_ratio(f"{hello} requests/s, dragoman / {peer} >= 5", "hello", peer, 5.0)
    rps_ratio(
        f"{hello} requests/s, access log on (dragoman's default) / off >= 0.95",
        "hello",
        ACCESS_LOG_OFF,
        0.95,
    )
    for label, title in (("hello", hello), ("hello-1", "hello world (1 connection)")):
        for peer in ("bjoern", "granian"):
            no_more(
                f"{title} p99 latency (recorded), dragoman no worse than {peer}",
                label,
                "p99_ms",
                peer,
                lambda v: f"{ms(v)} ms",
            )
        # Not judged: wrk's corrected figure, whose added samples grow with each server's own
        # throughput (bench/latency.lua).
        for peer in ("bjoern", "granian"):
            no_more(
                f"{title} p99 latency with wrk's coordinated-omission correction, dragoman vs "
                f"{peer}",
                label,
                "p99_wrk_ms",
                peer,
                lambda v: f"{ms(v)} ms",
                judged=False,
            )
    # Not an issue goal: the same comparison where wrk is not the limit (bench/paced.lua).
    for peer in ("bjoern", "granian"):
        no_more(
            f"hello world ({connections} connections, paced) p99 latency (recorded), dragoman vs "
            f"{peer}",
            "hello-paced",
            "p99_ms",
            peer,
            lambda v: f"{ms(v)} ms",
            judged=False,
        )
    rps_ratio("Django view requests/s, dragoman / bjoern >= 1.0", "django", "bjoern", 1.0)
    for attr, when in (("rss_rest", "at rest"), ("rss_after", f"after the {hello} run")):
        no_more(
            f"worker RSS {when}, dragoman <= granian",
            "hello",
            attr,
            "granian",
            lambda v: f"{v / MIB:.1f} MiB",
        )
    # Issue 3's static-file goals.
    for size, at_least in (("1 KiB", 1.0), ("100 KiB", 1.0), ("1 MiB", 0.9)):
        label = f"static {size}"
        rps_ratio(
            f"static {size} requests/s, dragoman / nginx >= {at_least}", label, "nginx", at_least
        )
        rps_ratio(
            f"static {size} requests/s, dragoman / whitenoise + gunicorn >= 10",
            label,
            "whitenoise + gunicorn",
            10.0,
        )
        # The nginx goal measured with the second load generator (whitenoise under gunicorn's
        # sync worker closes every connection, which h2load cannot measure).
        rps_ratio(
            f"static {size} requests/s with h2load --h1, dragoman / nginx >= {at_least}",
            label,
            "nginx",
            at_least,
            attr="h2load_rps",
        )
        # Not an issue goal: where wrk is the limit, it shows which server works less.
        mine, theirs = value(label, "dragoman", "cpu_us"), value(label, "nginx", "cpu_us")
        row(
            f"static {size} server CPU per request, dragoman vs nginx",
            None if mine is None or theirs is None else f"{mine:.1f} us vs {theirs:.1f} us",
            None,
        )
    for ceiling in (NGINX_CEILING, HYPER_CEILING):
        name = ceiling.removesuffix(" (ceiling)")
        rps_ratio(
            f"ceiling: dragoman {hello} requests/s as a fraction of {name}",
            "hello",
            ceiling,
            None,
            "{:.0%}",
        )
    if all(" | not measured | " in r for r in rows):
        return []  # none of the goals' scenarios ran
    return [
        "## Goals",
        "",
        (
            "Each line compares this run's medians; a line whose servers were not part of the "
            'run reads "not measured". A requests/s goal also gives the ratio within each round '
            "(the two servers measured minutes apart) and in how many rounds it reached the goal: "
            "where the machine's speed drifts from round to round, that shows a tie as a tie."
        ),
        "",
        "| goal | this run | result |",
        "|---|---|---|",
        *rows,
    ]


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("dragoman", "granian", "bjoern", "gunicorn", "uwsgi", "whitenoise", "django"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    lock = HYPER_HELLO / "Cargo.lock"
    if lock.exists():
        m = re.search(r'name = "hyper"\nversion = "([^"]+)"', lock.read_text())
        if m:
            out.append(f"hyper {m.group(1)} (bench/hyper-hello)")
    nginx_version = subprocess.run(
        ["nginx", "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    out.append(nginx_version.replace("nginx version: ", ""))
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    out.append(wrk_version.split("\n")[0].split(" Copyright")[0].strip())
    if shutil.which("h2load"):
        h2 = subprocess.run(["h2load", "--version"], capture_output=True, text=True, check=False)
        out.append(h2.stdout.split("\n")[0].strip())
    if shutil.which("valgrind"):
        valgrind = subprocess.run(
            ["valgrind", "--version"], capture_output=True, text=True, check=False
        )
        out.append(valgrind.stdout.strip())
    return ", ".join(out)


def drop_page_cache() -> str:
    """Drops the kernel's clean page cache (root only), so that every server's files come
    back into it the same way, by readahead; says what was done, for the report."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as e:
        return f"not done ({e.strerror}: not root?), so RSS may count pip's large folios"
    return "done"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="of each measured wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", choices=GROUPS, action="append", help="repeatable")
    parser.add_argument("--output", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    only = set(args.only or GROUPS)
    started = time.monotonic()
    tools = ["wrk", "nginx", "taskset"] + (["valgrind"] if "callgrind" in only else [])
    tools += ["h2load"] if "static" in only or "https" in only else []
    tools += ["openssl"] if "https" in only else []
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (make bench installs it)")

    c = args.connections
    app_scenarios = [
        Scenario("hello", "hello", f"Hello world, {c} connections", "/", c, **HELLO),
        Scenario("hello-1", "hello", "Hello world, 1 connection (latency)", "/", 1, **HELLO),
        Scenario(
            "hello-paced",
            "hello",
            f"Hello world, {c} connections paced (latency below saturation)",
            "/",
            c,
            script=PACED,
            **HELLO,
        ),
        Scenario(
            "echo",
            "echo",
            "4 KiB JSON POST, echoed back",
            "/echo",
            c,
            script=POST_JSON,
            body=ECHO_BODY,
            expect=ECHO_BODY,
            content_type="application/json",
        ),
        Scenario(
            "stream",
            "stream",
            "1 MiB streamed response (16 x 64 KiB, no Content-Length)",
            "/stream",
            c,
            expect=1024 * 1024,
        ),
    ]
    app_scenarios = [s for s in app_scenarios if s.group in only]
    page_cache = drop_page_cache()
    load = os.getloadavg()
    header = [
        "# Benchmark results",
        "",
        (
            f"Measured runs: `wrk -t1 -c{c} -d{args.seconds}s -s bench/latency.lua URL` (`-c1` "
            "for the latency scenario; bench/post_json.lua for the JSON POST and "
            "bench/paced.lua for the paced one, each with bench/latency.lua appended), each "
            f"after a {WARM_UP_SECONDS} s warm-up run with the same flags and a wait until the "
            "server's processes are idle (the warm-up leaves a request queued on each connection "
            "it closes; every server still answers those); the Django view's runs are "
            f"{args.seconds * DJANGO_SECONDS_FACTOR} s. {args.rounds} round(s), the "
            "servers alternating within each round. One worker process pinned to CPU "
            f"{SERVER_CPU}, wrk pinned to CPU {LOAD_CPU}, except in the 2-process table. "
            "Median (min-max) of the rounds; p50 and p99 are the medians of the rounds' "
            "percentiles; errors are summed over the rounds. The static files are also "
            f"measured with `h2load --h1 -t1 -c{c} -D{args.seconds} URL` right after wrk (pinned "
            "to the same CPU): wrk reads responses in 8 KiB pieces and its core is the limit "
            "from 100 KiB up."
        ),
        "",
        (
            "Latency: p50 and p99 are percentiles of the latencies wrk recorded. Before it "
            "reports, wrk 4 corrects for coordinated omission: each latency of two or more "
            "intervals (interval = run time / requests per connection) adds samples at one "
            "interval less, two less, and so on, modelling a client that sends at the server's "
            "own throughput. bench/latency.lua undoes that exactly (the recorded count must equal "
            "the requests completed, less wrk's timeouts, or the run fails). wrk's corrected p99 "
            "is the column after: at full load, a stall of a few milliseconds (the VM's or "
            "wrk's own) adds samples in proportion to the server's throughput, so that column "
            "ranks the faster servers lower for the same stalls."
        ),
        "",
        (
            "RSS: the resident set size (VmRSS, shared pages included) of the largest process in "
            "the server's session (its worker), at rest after start-up and one probe request, "
            "and after the scenario's measured run; median of the rounds. The shared pages "
            "include the mapped pages of the server's own files (its extension modules), and "
            "how many of those a process maps depends on how the file came into the page "
            "cache: a file pip has just written sits in large folios that map whole, a few MiB "
            "more than the same file read back by readahead. So the page cache is dropped once "
            f"before the run: {page_cache}."
        ),
        "",
        ("HTTPS and HTTP/2: their own section (the `https` group), with its setup there."),
        "",
        (
            "dragoman is the release wheel `make bench` builds with profile-guided optimisation "
            "(pgo/build.py: trained on pgo/train.py's traffic)."
        ),
        "",
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
            f"load average at the start {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}; "
            f"Python {platform.python_version()}; {versions()}"
        ),
    ]
    body: list[str] = []
    all_results: dict[str, dict[str, Sample]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if app_scenarios:
            servers, notes = app_servers(work, app_scenarios)
            group = run_group(servers, app_scenarios, args, work)
            all_results.update(group.results)
            for sc in app_scenarios:
                extra = notes if sc.label in ("hello", "hello-1") else []
                body += section(group, sc, [*extra, *NOTES.get(sc.label, [])])
        if "django" in only:
            django = Scenario(
                "django",
                "django",
                'Django template view ("/" of examples/mysite, DEBUG off)',
                "/",
                c,
                content_type="text/html",
                seconds_factor=DJANGO_SECONDS_FACTOR,
            )
            group = run_group(django_servers(work), [django], args, work)
            all_results.update(group.results)
            body += section(group, django, NOTES["django"])
        if "static" in only:
            root = work / "static"
            root.mkdir()
            scenarios = make_files(root, c)
            group = run_group(static_servers(root, work), scenarios, args, work)
            all_results.update(group.results)
            for sc in scenarios:
                body += section(group, sc, [])
        if "two-process" in only:
            two = Scenario(
                "hello-2p",
                "two-process",
                f"Hello world, 2 worker processes, {c} connections",
                "/",
                c,
                **HELLO,
            )
            group = run_group(two_process_servers(work), [two], args, work)
            all_results.update(group.results)
            body += section(group, two, NOTES["hello-2p"])
        if HTTPS_GROUP in only:
            lines, _ = https_section(args, work)
            body += lines
        if "asgi" in only:
            import asgi_bench  # the ASGI scenarios (issue 25): their servers and goals

            body += asgi_bench.measure(args, work)
    sys.path.insert(0, str(HERE))
    if "callgrind" in only:
        import callgrind

        body += ["", *callgrind.measure()]
    if "master" in only:
        import master  # the process-management figures

        body += ["", *master.measure()]
    minutes = (time.monotonic() - started) / 60
    header += [
        "",
        f"Groups run: {', '.join(g for g in GROUPS if g in only)}; {minutes:.1f} minutes.",
    ]
    summary = goals(all_results, c)
    text = "\n".join([*header, *([""] + summary if summary else []), *body]) + "\n"
    args.output.write_text(text)
    print()
    print(text)


if __name__ == "__main__":
    main()
