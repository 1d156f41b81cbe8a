"""The fleet: three dragoman hosts, HAProxy and a client, each in a network namespace of its own.

    client ns (10.77.100.2) --veth--> lb ns: HAProxy on 10.77.100.1:80
                                        |-- veth --> host ns h1: dragoman on 10.77.1.2:8000
                                        |-- veth --> host ns h2: dragoman on 10.77.2.2:8000
                                        `-- veth --> host ns h3: dragoman on 10.77.3.2:8000
                                                         (HTTP/2 from HAProxy: h2c)

Every namespace and veth is made by this run and named after its pid (`dgf<pid>-...`), so runs
never collide and the addresses, private to the namespaces, can be fixed. Nothing is added to
the machine's own namespace but the names of the veths while they are made. `Fleet.close()`
kills every process started here and deletes the namespaces (a veth goes with its namespace);
`sweep_stale()` removes what a run that was killed itself left.

Each host is a copy of examples/mysite (its own sqlite database, its own collected static
files, a REVISION file saying the release), served with the example's own dragoman.ini; only
the listener and the fleet's options (health check, shutdown-delay, PROXY protocol) are given
on the command line, as a deployment would.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "examples" / "mysite"
PY = sys.executable
LOADGEN = Path(__file__).with_name("loadgen.py")

PREFIX = "dgf"
HOSTS = 3
LB_CLIENT_SIDE = "10.77.100.1"
CLIENT_ADDR = "10.77.100.2"
PORT = 8000
FRONT_PORT = 80

# HAProxy's health checks: every INTER_MS, FALL failures in a row mark a host down, RISE
# successes up again. shutdown-delay must cover INTER_MS * FALL (docs/operations.md).
INTER_MS = 500
FALL = 2
RISE = 2
CHECK_TIMEOUT_MS = 1000
SHUTDOWN_DELAY = 2
# Hosts HAProxy speaks HTTP/2 to (`proto h2`; dragoman's `http2-cleartext`), the others
# HTTP/1.1: both of dragoman's ways with a balancer, in one fleet.
H2C_HOSTS = {3}


def host_addr(i: int) -> str:
    return f"10.77.{i}.2"


def lb_addr(i: int) -> str:
    """The balancer's address on host i's link: the peer dragoman sees, and trusts."""
    return f"10.77.{i}.1"


def run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, capture_output=True, text=True, check=check, timeout=timeout, stdin=subprocess.DEVNULL
    )


def netns_list() -> list[str]:
    out = run("ip", "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    out = run("ip", "netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_namespace(ns: str) -> None:
    # Whatever still runs in a namespace of ours was started by us (or by the run that made
    # it): nothing else is ever put there. The namespace outlives `ip netns del` while a
    # process is in it, so they go first.
    for _ in range(50):
        pids = netns_pids(ns)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    run("ip", "netns", "del", ns, check=False)


def sweep_stale() -> list[str]:
    """Removes the namespaces and veths of earlier runs whose process is gone."""
    removed = []
    for ns in netns_list():
        m = re.fullmatch(rf"{PREFIX}(\d+)-\w+", ns)
        if m and not _pid_alive(int(m.group(1))):
            _remove_namespace(ns)
            removed.append(ns)
    for name in _root_links():
        m = re.fullmatch(rf"{PREFIX}(\d+)\w+", name)
        if m and not _pid_alive(int(m.group(1))):
            run("ip", "link", "del", name, check=False)
            removed.append(name)
    return removed


def _root_links() -> list[str]:
    out = run("ip", "-o", "link", "show").stdout
    return [m.group(1) for m in re.finditer(r"^\d+: ([^:@\s]+)", out, re.MULTILINE)]


@dataclass
class Host:
    """One dragoman host: its namespace, its copy of the site, its master process."""

    index: int
    ns: str
    site: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def addr(self) -> str:
        return host_addr(self.index)

    @property
    def h2c(self) -> bool:
        return self.index in H2C_HOSTS

    def argv(self) -> list[str]:
        return [
            "ip", "netns", "exec", self.ns,
            PY, "-m", "dragoman",
            "--ini", str(self.site / "dragoman.ini"),
            "--http", f"{self.addr}:{PORT}",
            "--health-check", "/healthz",
            "--shutdown-delay", str(SHUTDOWN_DELAY),
            "--proxy-protocol",
            "--proxy-allow-from", lb_addr(self.index),
            *(["--http2-cleartext"] if self.h2c else []),
        ]  # fmt: skip

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                cwd=self.site,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts.append(time.monotonic())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready_count(self) -> int:
        return len(re.findall(r"worker \d+ \(pid \d+\) ready", self.log()))

    def wait_log(self, pattern: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.log())) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} x{count} not in {self.name}'s log:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = run("pgrep", "-P", str(self.proc.pid), check=False).stdout
        return [int(p) for p in out.split()]

    def release(self, name: str) -> None:
        """Deploys release `name`: the REVISION file the site reads when it loads."""
        tmp = self.site / "REVISION.new"
        tmp.write_text(name + "\n")
        tmp.replace(self.site / "REVISION")

    def signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill_all(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


HAPROXY_CFG = """\
global
    stats socket {sock} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check {check_timeout}ms
    retries 3
    option redispatch

frontend web
    bind {front}:{front_port}
    default_backend mysite
    # Which host answered (HAProxy's own errors included), for the load generator's books.
    http-after-response set-header X-Fleet-Server %[srv_name]

backend mysite
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    default-server check inter {inter}ms fall {fall} rise {rise} send-proxy check-send-proxy
{servers}
"""


class HAProxy:
    def __init__(self, ns: str, run_dir: Path):
        self.ns = ns
        self.sock = run_dir / "haproxy.sock"
        self.cfg = run_dir / "haproxy.cfg"
        self.log_path = run_dir / "haproxy.log"
        self.proc: subprocess.Popen | None = None
        self.cfg.write_text(
            HAPROXY_CFG.format(
                sock=self.sock,
                check_timeout=CHECK_TIMEOUT_MS,
                front=LB_CLIENT_SIDE,
                front_port=FRONT_PORT,
                inter=INTER_MS,
                fall=FALL,
                rise=RISE,
                servers="\n".join(
                    f"    server h{i} {host_addr(i)}:{PORT}"
                    + (" proto h2" if i in H2C_HOSTS else "")
                    for i in range(1, HOSTS + 1)
                ),
            )
        )

    def start(self) -> None:
        run("haproxy", "-c", "-q", "-f", str(self.cfg))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "haproxy", "-db", "-f", str(self.cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "HAProxy made no stats socket in 10s"
            time.sleep(0.05)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(self.sock))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's `show stat`, for each server of the backend: column name -> value."""
        lines = self.command("show stat").splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "mysite" and row.get("svname", "").startswith("h"):
                out[row["svname"]] = row
        return out

    def states(self) -> dict[str, str]:
        """Each server's status as HAProxy has it: UP, DOWN, `UP 1/2` (going down), ..."""
        return {name: row["status"] for name, row in self.stats().items()}

    def counters(self) -> dict[str, dict[str, int]]:
        """Each server's error counters: `econ` connections that failed, `eresp` responses
        that failed (the server closed or reset without one), `wredis` requests sent elsewhere
        after a failed connection, `wretr` connections retried."""
        return {
            name: {k: int(row[k] or 0) for k in ("econ", "eresp", "wredis", "wretr")}
            for name, row in self.stats().items()
        }

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


class Watcher:
    """Polls HAProxy's view of the servers every 20 ms in a thread: when each went DOWN or UP."""

    def __init__(self, haproxy: HAProxy):
        self.haproxy = haproxy
        self.samples: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                states = self.haproxy.states()
                self.samples.append((time.monotonic(), states))
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def first(self, server: str, status: str, after: float) -> float | None:
        """When `server` was first seen with `status` (exactly) after `after`."""
        for t, states in list(self.samples):
            if t >= after and states.get(server) == status:
                return t
        return None

    def wait(self, server: str, status: str, after: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.first(server, status, after)
            if t is not None:
                return t
            time.sleep(0.02)
        last = self.samples[-1][1] if self.samples else {}
        raise AssertionError(f"{server} not {status} within {timeout}s; HAProxy says {last}")


class Fleet:
    """Makes the namespaces, the hosts and HAProxy; `close()` takes all of it down."""

    def __init__(self, run_dir: Path):
        self.pid = os.getpid()
        self.run_dir = run_dir
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.hosts: list[Host] = []
        self.haproxy: HAProxy | None = None
        self.watcher: Watcher | None = None

    def ns_name(self, role: str) -> str:
        return f"{PREFIX}{self.pid}-{role}"

    # -- the network ---------------------------------------------------------------------

    def _add_ns(self, role: str) -> str:
        ns = self.ns_name(role)
        self.namespaces.append(ns)
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def _link(self, tag: str, ns_a: str, addr_a: str, ns_b: str, addr_b: str) -> None:
        # Made in our own namespace under unique names, then each end moved into its place.
        a, b = f"{PREFIX}{self.pid}{tag}a", f"{PREFIX}{self.pid}{tag}b"
        assert len(a) <= 15, a
        self.links += [a, b]
        run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        for end, ns, addr in ((a, ns_a, addr_a), (b, ns_b, addr_b)):
            run("ip", "link", "set", end, "netns", ns)
            run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", end)
            run("ip", "-n", ns, "link", "set", end, "up")

    def make_network(self) -> None:
        lb = self._add_ns("lb")
        client = self._add_ns("cl")
        self._link("c", lb, LB_CLIENT_SIDE, client, CLIENT_ADDR)
        for i in range(1, HOSTS + 1):
            ns = self._add_ns(f"h{i}")
            self._link(f"h{i}", lb, lb_addr(i), ns, host_addr(i))

    # -- the sites -----------------------------------------------------------------------

    def make_sites(self, release: str) -> None:
        ignore = shutil.ignore_patterns(
            "db.sqlite3", "staticfiles", "media", "__pycache__", "REVISION"
        )
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        for k in ("DJANGO_DB_PATH", "DJANGO_STATIC_ROOT", "DJANGO_MEDIA_ROOT"):
            env.pop(k, None)
        first = None
        for i in range(1, HOSTS + 1):
            site = self.run_dir / f"h{i}" / "mysite"
            shutil.copytree(SITE, site, ignore=ignore)
            if first is None:
                # Prepared once, the way `make example` prepares the checkout; the other hosts
                # get copies (a database and static files each, as separate machines have).
                for args in (("migrate", "--noinput", "-v", "0"), ("collectstatic", "--noinput", "-v", "0")):  # fmt: skip
                    subprocess.run(
                        [PY, "manage.py", *args], cwd=site, env=env, check=True,
                        capture_output=True, timeout=180,
                    )  # fmt: skip
                assert (site / "staticfiles" / "admin" / "css" / "base.css").is_file()
                first = site
            else:
                shutil.copy2(first / "db.sqlite3", site / "db.sqlite3")
                shutil.copytree(first / "staticfiles", site / "staticfiles")
            (site / "media").mkdir(exist_ok=True)
            host = Host(i, self.ns_name(f"h{i}"), site, self.run_dir / f"h{i}.log")
            host.release(release)
            self.hosts.append(host)

    # -- bringing it up ------------------------------------------------------------------

    def start(self, release: str) -> None:
        self.make_network()
        self.make_sites(release)
        for host in self.hosts:
            host.start()
        for host in self.hosts:
            host.wait_log(r"worker \d+ \(pid \d+\) ready", count=2, timeout=90)
        self.haproxy = HAProxy(self.ns_name("lb"), self.run_dir)
        self.haproxy.start()
        self.watcher = Watcher(self.haproxy)
        for host in self.hosts:
            self.watcher.wait(host.name, "UP", after=0, timeout=20)

    def loadgen(self, out: Path, seconds: float, concurrency: int, rate: float) -> subprocess.Popen:
        """Starts the load generator in the client namespace (stop it with `stop_load`)."""
        argv = [
            "ip", "netns", "exec", self.ns_name("cl"),
            PY, str(LOADGEN),
            "--url", f"http://{LB_CLIENT_SIDE}:{FRONT_PORT}",
            "--seconds", str(seconds),
            "--concurrency", str(concurrency),
            "--rate", str(rate),
            "--out", str(out),
        ]  # fmt: skip
        with open(out.with_suffix(".log"), "ab") as log:
            return subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

    def haproxy_log_count(self, pattern: str) -> int:
        assert self.haproxy is not None
        return len(re.findall(pattern, self.haproxy.log_path.read_text(errors="replace")))

    def haproxy_log_wait(self, pattern: str, count: int, timeout: float = 5) -> None:
        """Waits until HAProxy has logged `pattern` `count` times (its log is line-buffered)."""
        deadline = time.monotonic() + timeout
        while self.haproxy_log_count(pattern) < count:
            assert time.monotonic() < deadline, f"{pattern!r} x{count} not in HAProxy's log"
            time.sleep(0.02)

    # -- taking it down ------------------------------------------------------------------

    def close(self) -> list[str]:
        """Kills every process, deletes every namespace and veth; returns what was left over
        (an empty list when everything is gone)."""
        if self.watcher is not None:
            self.watcher.stop()
        for host in self.hosts:
            host.kill_all()
        if self.haproxy is not None:
            self.haproxy.kill()
        for ns in self.namespaces:
            _remove_namespace(ns)
        left = [ns for ns in netns_list() if ns in self.namespaces]
        links = _root_links()
        for name in self.links:
            if name in links:
                run("ip", "link", "del", name, check=False)
        links = _root_links()
        left += [name for name in self.links if name in links]
        return left
