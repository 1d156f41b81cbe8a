"""The master as a process manager: respawn, graceful stop and reload under load, harakiri,
recycling (max-requests, max-worker-lifetime, reload-on-rss), crash loops, scaling, systemd
(notify and socket activation), privileges, pidfile/vacuum and the stats server. Real
processes, real signals, load from a bounded client loop."""

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import APPS, DRAGOMAN, Load, _env

PY = sys.executable


@pytest.fixture
def app_dir(tmp_path) -> Path:
    """A copy of the master test app whose code (appversion.py) a test may rewrite."""
    for name in ("master_app.py", "appversion.py"):
        shutil.copy(APPS / name, tmp_path / name)
    return tmp_path


def set_version(app_dir: Path, version: str) -> None:
    (app_dir / "appversion.py").write_text(f'VERSION = "{version}"\n')


def wait_until(predicate, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def ready_lines(server) -> int:
    return len(re.findall(r"worker \d+ \(pid \d+\) ready", server.log()))


def test_kill_9_of_a_worker_under_load(dragoman, app_dir):
    server = dragoman("master_app:application", "--processes", "2", cwd=app_dir, workers=2)
    before = set(server.worker_pids())
    load = Load(server.url, clients=4, seconds=30)
    time.sleep(1)
    victim = min(before)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: ready_lines(server) >= 3, message="a replacement worker")
    respawn = time.monotonic() - killed_at
    time.sleep(1)
    load.stop()
    after = set(server.worker_pids())
    assert victim not in after and len(after) == 2
    assert f"(pid {victim}) was killed by SIGKILL; starting a new one" in server.log()
    # Only requests in flight on the killed worker may fail: at most one per client.
    assert len(load.failed) <= 4, load.failed
    assert load.ok > 100
    print(
        f"\nkill -9 to replacement ready: {respawn * 1000:.0f} ms; failed {len(load.failed)} of {load.ok + len(load.failed)}"
    )


def test_kill_9_of_the_master_stops_its_workers_and_each_says_why(dragoman, app_dir):
    """No worker outlives its master; each says why it stops, not only that it does."""
    server = dragoman("master_app:application", "--processes", "2", cwd=app_dir, workers=2)
    workers = server.worker_pids()
    master = server.proc.pid
    assert len(workers) == 2
    os.kill(master, signal.SIGKILL)
    server.proc.wait(10)

    def alive(pid: int) -> bool:
        """Running: neither gone nor a zombie waiting for init to reap it."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    wait_until(lambda: not any(alive(p) for p in workers), message="the workers to exit")
    log = server.log()
    assert log.count(f"the master (pid {master}) is gone; stopping") == 2, log


def test_sighup_under_load_reloads_with_zero_failed_requests(dragoman, app_dir):
    server = dragoman("master_app:application", "--processes", "2", cwd=app_dir, workers=2)
    first = set(server.worker_pids())
    load = Load(server.url, clients=4, seconds=60)
    started = time.monotonic()
    for n in (2, 3, 4):
        time.sleep(1.5)
        set_version(app_dir, f"v{n}")
        server.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda n=n: server.log().count("reload finished") >= n - 1, message=f"reload {n}"
        )
    while time.monotonic() - started < 10:
        time.sleep(0.2)
    load.stop()
    assert load.failed == [], load.failed[:10]
    versions = {body.split()[0] for body in load.bodies}
    assert versions == {"v1", "v2", "v3", "v4"}, versions
    assert httpx.get(server.url).text.startswith("v4 ")
    assert first.isdisjoint(server.worker_pids())
    print(f"\nreloads under load: 3, requests {load.ok}, failed {len(load.failed)}")


def test_reload_with_broken_code_keeps_the_old_workers(dragoman, app_dir):
    server = dragoman("master_app:application", "--processes", "2", cwd=app_dir, workers=2)
    pids = set(server.worker_pids())
    load = Load(server.url, clients=2, seconds=30)
    (app_dir / "appversion.py").write_text("VERSION = (\n")  # a syntax error
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("reload failed: worker \\d could not load the application")
    time.sleep(1)
    load.stop()
    assert load.failed == [], load.failed[:5]
    assert set(server.worker_pids()) == pids
    assert httpx.get(server.url).text.startswith("v1 ")
    assert server.proc.poll() is None


def test_sigterm_lets_a_slow_request_finish_and_vacuum_cleans_up(dragoman, app_dir):
    sock = app_dir / "site.sock"
    pidfile = app_dir / "site.pid"
    server = dragoman(
        "master_app:application",
        "--http",
        str(sock),
        "--pidfile",
        str(pidfile),
        "--vacuum",
        cwd=app_dir,
        http=None,
    )
    assert int(pidfile.read_text()) == server.proc.pid
    assert sock.exists()
    result = {}

    def slow():
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=transport, timeout=30) as c:
            r = c.get("http://localhost/sleep?t=3")
            result["status"], result["body"] = r.status_code, r.text
            # The single-threaded worker runs the app on its event loop, so it reads the
            # signal only after this response is sent. Holding the kept connection open a
            # moment keeps it live when the worker counts what it must finish; closing it
            # at once would race that count.
            time.sleep(1)

    t = threading.Thread(target=slow)
    t.start()
    server.wait_for_log(r"app: /sleep started")
    server.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert result.get("status") == 200 and result["body"].startswith("v1 ")
    assert server.proc.wait(30) == 0
    assert not pidfile.exists()
    assert not sock.exists()
    assert "finishing 1 connection(s) before exiting" in server.log()


def test_harakiri_logs_the_stuck_traceback_and_replaces_the_worker(dragoman, app_dir):
    server = dragoman(
        "master_app:application", "--processes", "2", "--harakiri", "2", cwd=app_dir, workers=2
    )
    pids = set(server.worker_pids())
    outcome = {}

    def stuck():
        try:
            outcome["status"] = httpx.get(f"{server.url}/stuck", timeout=30).status_code
        except httpx.HTTPError as exc:
            outcome["error"] = type(exc).__name__

    t = threading.Thread(target=stuck)
    t.start()
    server.wait_for_log(r"app: /stuck started")
    # The other worker keeps serving while one is stuck.
    with httpx.Client() as c:
        for _ in range(5):
            assert c.get(server.url, headers={"Connection": "close"}).status_code == 200
    t.join(30)
    assert "error" in outcome, outcome  # the connection was cut, no response
    log = server.wait_for_log(
        r'(?s)HARAKIRI: worker \d \(pid (\d+)\) has been serving "GET /stuck" for \d+s'
    )
    stuck_pid = int(log.group(1))
    server.wait_for_log(r'(?s)HARAKIRI.*File ".*master_app\.py", line \d+ in stuck_in_a_long_call')
    server.wait_for_log(rf"worker \d \(pid {stuck_pid}\) killed by harakiri; starting a new one")
    wait_until(lambda: len(server.worker_pids()) == 2 and stuck_pid not in server.worker_pids())
    assert stuck_pid in pids


def test_max_requests_recycles_gracefully(dragoman, app_dir):
    server = dragoman("master_app:application", "--max-requests", "5", cwd=app_dir)
    pids = []
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=10) as c:
        # Until two recycles are seen: each replacement must start up first, which takes
        # longer on a loaded machine.
        while len(set(pids)) < 3 and time.monotonic() < deadline:
            r = c.get(server.url)
            assert r.status_code == 200
            pids.append(int(r.text.split()[1]))
            time.sleep(0.05)
    distinct = list(dict.fromkeys(pids))
    assert len(distinct) >= 3, distinct
    assert "recycled after 5 requests (max-requests)" in server.log() or re.search(
        r"recycled after \d+ requests \(max-requests\)", server.log()
    )


def test_max_worker_lifetime_recycles_without_failures(dragoman, app_dir):
    server = dragoman("master_app:application", "--max-worker-lifetime", "2", cwd=app_dir)
    load = Load(server.url, clients=2, seconds=6)
    time.sleep(5.5)
    load.stop()
    assert load.failed == [], load.failed[:5]
    assert len({b.split()[1] for b in load.bodies}) >= 2
    server.wait_for_log(r"recycled after 2s \(max-worker-lifetime\)")


def test_reload_on_rss_recycles_a_leaking_worker(dragoman, app_dir):
    server = dragoman("master_app:application", "--reload-on-rss", "150", cwd=app_dir)
    first = server.worker_pids()[0]
    with httpx.Client(timeout=30) as c:
        for _ in range(4):
            assert c.get(f"{server.url}/leak?mb=50").status_code == 200
    server.wait_for_log(
        rf"worker 1 \(pid {first}\) recycled at \d+ MiB resident memory \(reload-on-rss\)"
    )
    wait_until(lambda: server.worker_pids() and first not in server.worker_pids())
    assert httpx.get(server.url).status_code == 200


def test_a_crash_looping_app_makes_the_master_give_up(tmp_path):
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*DRAGOMAN, "--http", "127.0.0.1:0", "crash_app:application"],
            cwd=APPS,
            env=_env(None),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        code = proc.wait(90)
    text = log.read_text()
    assert code == 1, text
    assert "workers keep dying right after they start (8 times in a row" in text, text
    # Bounded: no fork storm.
    assert text.count("starting a new one") <= 8
    assert text.count("ready") <= 9


def test_sigttin_and_sigttou_change_the_number_of_workers(dragoman):
    server = dragoman("echo:application", "--processes", "2", workers=2)
    server.proc.send_signal(signal.SIGTTIN)
    wait_until(lambda: len(server.worker_pids()) == 3, message="3 workers")
    # One at a time: two identical signals sent before the first is delivered are one signal
    # (that is Unix; test_signals_received_while_the_master_is_busy covers the master's part).
    server.proc.send_signal(signal.SIGTTOU)
    wait_until(lambda: len(server.worker_pids()) == 2, message="2 workers")
    server.proc.send_signal(signal.SIGTTOU)
    wait_until(lambda: len(server.worker_pids()) == 1, message="1 worker")
    assert "stopped: fewer workers wanted" in server.log()
    assert httpx.get(server.url).status_code == 200


def signal_delivered(pid: int, sig: int, timeout: float = 5.0) -> None:
    """Waits until `sig` is no longer pending for process `pid`: its handler has run, so a
    second one sent now is not merged with it by the kernel."""
    bit = 1 << (sig - 1)

    def clear():
        status = Path(f"/proc/{pid}/status").read_text()
        pending = re.findall(r"^(?:SigPnd|ShdPnd):\s+([0-9a-f]+)", status, re.MULTILINE)
        return all(not int(mask, 16) & bit for mask in pending)

    wait_until(clear, timeout, f"{signal.Signals(sig).name} delivered to {pid}")


# An application that makes the master busy while it forks: `os.register_at_fork` hooks run in
# the master (the app is preloaded there), the `before` one sleeps once when the test asks.
SLOW_FORK_APP = """
import os, sys, time

FLAG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow-fork")


def slow_fork():
    if os.path.exists(FLAG):
        os.unlink(FLAG)
        print("before-fork hook: the master is busy", file=sys.stderr, flush=True)
        time.sleep(1.5)


os.register_at_fork(before=slow_fork)


def application(environ, start_response):
    start_response("200 OK", [])
    return [str(os.getpid()).encode()]
"""


def test_signals_received_while_the_master_is_busy_are_each_handled(dragoman, tmp_path):
    (tmp_path / "slow_fork_app.py").write_text(SLOW_FORK_APP)
    server = dragoman("slow_fork_app:application", "--preload", cwd=tmp_path)
    (tmp_path / "slow-fork").write_text("")
    server.proc.send_signal(signal.SIGTTIN)
    server.wait_for_log("before-fork hook: the master is busy")
    # Two more while the master forks the second worker. Each is delivered (its handler ran)
    # before the next is sent, so the kernel does not merge them: the master must not either.
    for _ in range(2):
        server.proc.send_signal(signal.SIGTTIN)
        signal_delivered(server.proc.pid, signal.SIGTTIN)
    wait_until(lambda: len(server.worker_pids()) == 4, timeout=15, message="4 workers")
    time.sleep(1)
    assert len(server.worker_pids()) == 4
    assert [int(n) for n in re.findall(r"SIGTTIN: now (\d+) worker", server.log())] == [2, 3, 4]


# An application whose `after_in_child` fork hook holds a new worker before it has set up its
# signal handling, once, when the test asks: the window in which a SIGTERM used to vanish.
SLOW_CHILD_APP = """
import os, sys, time

FLAG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow-child")


def slow_child():
    if os.path.exists(FLAG):
        os.unlink(FLAG)
        print(f"after-fork hook: worker {os.getpid()} not set up yet", file=sys.stderr, flush=True)
        time.sleep(1.5)


os.register_at_fork(after_in_child=slow_child)


def application(environ, start_response):
    start_response("200 OK", [])
    return [str(os.getpid()).encode()]
"""


def test_a_sigterm_right_after_fork_is_not_lost(dragoman, tmp_path):
    (tmp_path / "slow_child_app.py").write_text(SLOW_CHILD_APP)
    server = dragoman("slow_child_app:application", "--preload", cwd=tmp_path)
    (tmp_path / "slow-child").write_text("")
    server.proc.send_signal(signal.SIGTTIN)
    pid = int(server.wait_for_log(r"after-fork hook: worker (\d+) not set up yet").group(1))
    os.kill(pid, signal.SIGTERM)
    # Once out of the hook, the worker acts on the signal (it has nothing in flight yet)
    # rather than going on to serve.
    server.wait_for_log(rf"worker 2 \(pid {pid}\) was killed by SIGTERM", timeout=10)
    assert not re.search(rf"worker 2 \(pid {pid}\) ready", server.log())


def leaked(fds: dict[str, str]) -> dict[str, str]:
    """The pipes and sockets a subprocess inherited besides its standard streams."""
    return {
        fd: target
        for fd, target in fds.items()
        if fd not in ("0", "1", "2") and target.startswith(("pipe:", "socket:"))
    }


def test_app_subprocesses_inherit_no_descriptor_of_dragoman(dragoman):
    server = dragoman("fd_app:application", "--processes", "2", workers=2)
    fds = httpx.get(server.url, timeout=30).json()
    assert "0" in fds and leaked(fds) == {}, fds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def socket_activated(
    tmp_path: Path, app: str, host: str = "127.0.0.1", args: tuple[str, ...] = ()
) -> Iterator[tuple[int, Path]]:
    """dragoman started by systemd-socket-activate on a TCP port, as systemd would: yields the
    port and the log; dragoman starts at the first connection. `host` empty: the port alone,
    as `ListenStream=8000` names it ([::], both IPv6 and IPv4)."""
    if not shutil.which("systemd-socket-activate"):
        pytest.fail("systemd-socket-activate is missing; make test installs the systemd package")
    # systemd-socket-activate cannot take port 0, so free_port() picks one, and another process
    # may bind it first: then it exits at once, and a new port is tried.
    for attempt in range(5):
        port = free_port()
        log = tmp_path / f"log-{attempt}"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    "systemd-socket-activate",
                    "-l",
                    f"{host}:{port}" if host else str(port),
                    *(PY, "-m", "dragoman", app),
                    *(a.replace("PORT", str(port)) for a in args),
                ],
                cwd=APPS,
                env=_env(None),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        listening = f"Listening on {host}:{port}" if host else f"Listening on [::]:{port}"
        while listening not in log.read_text():
            assert time.monotonic() < deadline, f"systemd-socket-activate: {log.read_text()}"
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is None:
            break
        assert "Address already in use" in log.read_text(), log.read_text()
    else:
        pytest.fail("systemd-socket-activate found its port taken 5 times")
    try:
        yield port, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_socket_activation(tmp_path):
    with socket_activated(tmp_path, "echo:application") as (port, log):
        # The first connection makes systemd-socket-activate start dragoman with the socket.
        r = httpx.get(f"http://127.0.0.1:{port}/activated", timeout=30)
        assert r.status_code == 200 and r.json()["PATH_INFO"] == "/activated"
        text = log.read_text()
        assert f"listening on http://127.0.0.1:{port}" in text
        # dragoman did not bind: the socket came from systemd (a second bind would fail).
        assert "cannot listen" not in text
        env = r.json()
        assert "LISTEN_FDS" not in env and "LISTEN_PID" not in env


def test_a_socket_systemd_passed_that_no_listener_names_is_reported(tmp_path):
    # `ListenStream=8000` is [::]:8000; `http = :8000` is 0.0.0.0:8000: not the same socket.
    # dragoman binds its own and says which socket it left, and how to make them agree.
    with socket_activated(tmp_path, "echo:application", "", ("--http", ":PORT")) as (port, log):
        # The connection that starts dragoman is on the socket it does not use.
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"http://[::1]:{port}/", timeout=30)
        deadline = time.monotonic() + 20
        while "listening on http://" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert (
            f"systemd passed a socket on [::]:{port} that no listener of the configuration "
            f"names (0.0.0.0:{port}); it is closed, not used: give the socket unit the "
            f"configuration's address (ListenStream=0.0.0.0:{port}), or the configuration "
            "the socket's, or leave http out to take every socket systemd passes"
        ) in log.read_text()


def test_the_socket_systemd_passed_is_not_inherited_by_app_subprocesses(tmp_path):
    with socket_activated(tmp_path, "fd_app:application") as (port, log):
        fds = httpx.get(f"http://127.0.0.1:{port}/", timeout=30).json()
        assert f"listening on http://127.0.0.1:{port}" in log.read_text()
        assert "0" in fds and leaked(fds) == {}, fds


def test_sd_notify_ready_reloading_stopping(dragoman, tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    server = dragoman(
        "rules:application", "--processes", "2", workers=2, env={"NOTIFY_SOCKET": str(path)}
    )
    ready = sock.recv(4096).decode()
    assert "READY=1" in ready and f"MAINPID={server.proc.pid}" in ready, ready
    assert "STATUS=serving, 2 worker(s)" in ready
    # The application does not see NOTIFY_SOCKET (only the master talks to systemd).
    assert httpx.get(f"{server.url}/osenv?key=NOTIFY_SOCKET").text == "<unset>"
    server.proc.send_signal(signal.SIGHUP)
    assert sock.recv(4096).decode().startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert "READY=1" in sock.recv(4096).decode()
    server.proc.send_signal(signal.SIGTERM)
    assert "STOPPING=1" in sock.recv(4096).decode()
    assert server.proc.wait(30) == 0
    sock.close()


def privileged_port() -> int:
    for port in range(700, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below 1024")


def test_uid_and_gid_are_dropped_after_binding_a_privileged_port(dragoman):
    if os.geteuid() != 0:
        pytest.fail("this test binds a port below 1024 and must run as root (CI does)")
    port = privileged_port()
    # uid_app imports nothing new: after the drop, `nobody` cannot read a stdlib under /root.
    server = dragoman(
        "uid_app:application", "--uid", "nobody", "--gid", "nogroup", http=f"127.0.0.1:{port}"
    )
    assert "running as uid 65534, gid 65534" in server.log()
    r = httpx.get(f"http://127.0.0.1:{port}/")
    assert r.text == "uid 65534 gid 65534"
    for pid in [server.proc.pid, *server.worker_pids()]:
        status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(r"^Uid:\s+65534\s", status, re.MULTILINE), status
        assert re.search(r"^Gid:\s+65534\s", status, re.MULTILINE), status


def stats_json(address: str) -> dict:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data)


def test_stats_in_the_uwsgi_layout_read_by_uwsgitop(dragoman):
    server = dragoman(
        "rules:application",
        "--processes",
        "2",
        "--threads",
        "2",
        "--stats",
        "127.0.0.1:0",
        workers=2,
    )
    # Port 0: the master logs the port it bound (no window for another process to take it).
    port = int(server.wait_for_log(r"stats on 127\.0\.0\.1:(\d+)").group(1))
    with httpx.Client() as c:
        for _ in range(10):
            assert c.get(f"{server.url}/pid").status_code == 200

    # A threaded worker counts a request when its app thread is done with it, which may be
    # a moment after the client has the response.
    def counted():
        doc = stats_json(f"127.0.0.1:{port}")
        return doc if sum(w["requests"] for w in doc["workers"]) >= 10 else None

    doc = wait_until(counted, timeout=10, message="10 requests in the stats")
    assert doc["pid"] == server.proc.pid
    assert {w["pid"] for w in doc["workers"]} == set(server.worker_pids())
    assert sum(w["requests"] for w in doc["workers"]) == 10
    worker = doc["workers"][0]
    for key in (
        "id",
        "accepting",
        "exceptions",
        "status",
        "rss",
        "vsz",
        "avg_rt",
        "tx",
        "running_time",
        "last_spawn",
        "respawn_count",
        "harakiri_count",
        "cores",
    ):
        assert key in worker, key
    assert len(worker["cores"]) == 2 and worker["rss"] > 1_000_000
    assert doc["sockets"][0]["name"] == server.addresses[0]

    # uwsgitop itself, in a pseudo-terminal: its screen lists both workers' PIDs.
    uwsgitop = Path(sys.executable).parent / "uwsgitop"
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [str(uwsgitop), f"127.0.0.1:{port}"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "TERM": "xterm", "LINES": "40", "COLUMNS": "160"},
        start_new_session=True,
    )
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            if select.select([primary], [], [], 0.5)[0]:
                try:
                    screen += os.read(primary, 65536)
                except OSError:
                    break
            text = screen.decode(errors="replace")
            if all(str(p) in text for p in server.worker_pids()) and "req: 10" in text:
                break
    finally:
        proc.kill()
        proc.wait(10)
        os.close(primary)
    text = screen.decode(errors="replace")
    assert "req: 10" in text, text[-2000:]
    for p in server.worker_pids():
        assert str(p) in text


def test_touch_reload_and_touch_chain_reload(dragoman, app_dir):
    trigger = app_dir / "reload.trigger"
    chain = app_dir / "chain.trigger"
    trigger.write_text("")
    chain.write_text("")
    server = dragoman(
        "master_app:application",
        "--processes",
        "3",
        "--touch-reload",
        str(trigger),
        "--touch-chain-reload",
        str(chain),
        cwd=app_dir,
        workers=3,
    )
    first = set(server.worker_pids())
    time.sleep(1.1)
    set_version(app_dir, "v2")
    trigger.write_text("touched")
    server.wait_for_log("touch-reload: .*reload.trigger was touched")
    wait_until(lambda: "reload finished" in server.log(), message="the reload")
    second = set(server.worker_pids())
    assert first.isdisjoint(second) and len(second) == 3
    assert httpx.get(server.url).text.startswith("v2 ")

    mark = len(server.log())
    time.sleep(1.1)
    chain.write_text("touched")
    wait_until(lambda: server.log().count("reload finished") >= 2, message="the chain reload")
    events = re.findall(
        r"worker (\d) \(pid \d+\) (ready|replaced by a chain reload)", server.log()[mark:]
    )
    # One at a time: each new worker is ready before the next old one stops, never two new
    # workers starting before an old one stopped.
    assert [kind for _, kind in events] == ["ready", "replaced by a chain reload"] * 3, events
    assert second.isdisjoint(server.worker_pids())


def test_py_autoreload_picks_up_a_changed_module(dragoman, app_dir):
    server = dragoman("master_app:application", "--py-autoreload", "1", cwd=app_dir)
    assert httpx.get(server.url).text.startswith("v1 ")
    time.sleep(1.1)
    set_version(app_dir, "v9")
    server.wait_for_log(r"py-autoreload: .*appversion\.py changed; reloading")
    wait_until(lambda: httpx.get(server.url).text.startswith("v9 "), message="the new code")


def test_preload_imports_the_app_once_in_the_master(dragoman, tmp_path):
    (tmp_path / "loud_app.py").write_text(
        "import os, sys\nprint('imported in', os.getpid(), file=sys.stderr, flush=True)\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [str(os.getpid()).encode()]\n"
    )
    server = dragoman(
        "loud_app:application", "--preload", "--processes", "3", cwd=tmp_path, workers=3
    )
    imports = re.findall(r"imported in (\d+)", server.log())
    assert imports == [str(server.proc.pid)]
    assert int(httpx.get(server.url).text) in server.worker_pids()


def stats_json_unix(path: Path) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data)


def test_stats_clients_that_never_read_do_not_stall_supervision(dragoman, tmp_path):
    # 6 workers x 256 application threads make a stats document (about 260 KB) larger than a
    # unix socket takes while its reader does not read (about 180 KB): a blocking write
    # would wait on each such client.
    sock = tmp_path / "stats.sock"
    server = dragoman(
        "echo:application",
        "--processes",
        "6",
        "--threads",
        "256",
        "--stats",
        str(sock),
        workers=6,
    )
    assert len(json.dumps(stats_json_unix(sock))) > 200_000
    hogs = []
    try:
        for n in range(10):
            hog = socket.socket(socket.AF_UNIX)
            hog.connect(str(sock))
            if n % 2:
                hog.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    hog.send(b"x" * 1_000_000)  # and some send without end
            hogs.append(hog)
        victim = server.worker_pids()[0]
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: ready_lines(server) >= 7, timeout=5, message="the replacement worker")
        respawn = time.monotonic() - killed
        # A well-behaved client is still answered meanwhile.
        doc_len = len(json.dumps(stats_json_unix(sock)))
        assert doc_len > 200_000
        # A client that does not take its document is cut at its deadline (a few seconds):
        # what it reads afterwards ends short of the document.
        hogs[0].settimeout(10)
        got, started = 0, time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            while chunk := hogs[0].recv(65536):
                got += len(chunk)
        assert time.monotonic() - started < 8
        assert 0 < got < doc_len * 0.9, (got, doc_len)
    finally:
        for hog in hogs:
            hog.close()
    assert f"(pid {victim}) was killed by SIGKILL; starting a new one" in server.log()
    print(f"\nkill -9 to replacement ready, 10 stats clients not reading: {respawn * 1000:.0f} ms")


def test_stats_http_answers_an_http_client(dragoman):
    server = dragoman("echo:application", "--stats", "127.0.0.1:0", "--stats-http")
    port = int(server.wait_for_log(r"stats on 127\.0\.0\.1:(\d+)").group(1))
    r = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["pid"] == server.proc.pid
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["workers"][0]["pid"] in server.worker_pids()
    assert "can be reached from other machines" not in server.log()
