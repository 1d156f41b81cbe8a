"""`daemonize` and `daemonize2`: dragoman detaches from the terminal (the command returns), its
output goes to the given file, the pidfile names the detached master and vacuum still cleans
up. Errors found before detaching (an address in use) still reach the terminal."""

import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from conftest import run_dragoman


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float = 30.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def shared_dir():
    """A directory the service user `nobody` may write (for daemonize2 after the drop)."""
    path = Path(tempfile.mkdtemp(prefix="dragoman-daemonize-", dir="/tmp"))
    path.chmod(0o777)
    pids: list[int] = []
    try:
        yield path, pids
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("option", ["daemonize", "daemonize2"])
def test_daemonize_detaches_logs_to_the_file_and_vacuums(shared_dir, option):
    path, pids = shared_dir
    log, pidfile, sock = path / "site.log", path / "site.pid", path / "site.sock"
    started = time.monotonic()
    done = run_dragoman(
        "master_app:application",
        f"--{option}",
        str(log),
        "--pidfile",
        str(pidfile),
        "--vacuum",
        "--http",
        str(sock),
        timeout=30,
    )
    # The command returned (so nothing of the daemon holds its stdout or stderr open) ...
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20
    pid = wait_until(lambda: pidfile.exists() and int(pidfile.read_text() or 0), message="pid")
    pids.append(pid)
    assert alive(pid)
    # ... and the master left its session.
    assert os.getsid(pid) != os.getsid(0)
    wait_until(lambda: log.exists() and "worker 1 (pid" in log.read_text(), message="ready")
    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(transport=transport) as client:
        assert client.get("http://localhost/sleep?t=0").status_code == 200
    # The application's own output goes to the file too.
    assert "app: /sleep started" in log.read_text()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), message="the master to exit")
    wait_until(lambda: not pidfile.exists() and not sock.exists(), message="vacuum")
    assert f"master {pid} exiting" in log.read_text()


@pytest.mark.parametrize("option,owner", [("daemonize", 0), ("daemonize2", 65534)])
def test_daemonize2_opens_its_file_as_the_service_user(shared_dir, option, owner):
    if os.geteuid() != 0:
        pytest.fail("this test checks what dragoman does as root and must run as root (CI does)")
    path, pids = shared_dir
    log, pidfile = path / f"{option}.log", path / f"{option}.pid"
    # uid_app imports nothing new: after the drop, `nobody` cannot read a stdlib under /root.
    done = run_dragoman(
        "uid_app:application",
        f"--{option}",
        str(log),
        "--pidfile",
        str(pidfile),
        "--uid",
        "nobody",
        "--http",
        "127.0.0.1:0",
    )
    assert done.returncode == 0, done.stderr
    pid = wait_until(lambda: pidfile.exists() and int(pidfile.read_text() or 0), message="pid")
    pids.append(pid)
    wait_until(lambda: "worker 1 (pid" in log.read_text(), message=f"{option} ready")
    # daemonize opens it as root, before the drop; daemonize2 as the service user, after.
    assert log.stat().st_uid == owner
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), message="exit")


def test_an_error_before_detaching_reaches_the_terminal(shared_dir):
    path, _ = shared_dir
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_dragoman(
            "master_app:application",
            "--daemonize",
            str(path / "site.log"),
            "--http",
            f"127.0.0.1:{port}",
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_failure_after_detaching_is_the_commands_exit_code(shared_dir):
    path, _ = shared_dir
    log = path / "site.log"
    # With preload, the application is imported after dragoman detached: it fails there.
    done = run_dragoman(
        "broken_import:application",
        "--preload",
        "--daemonize",
        str(log),
        "--http",
        "127.0.0.1:0",
    )
    assert done.returncode == 1
    assert f"the server exited while starting, after it detached; its log is {log}" in done.stderr
    assert "could not preload the application" in log.read_text()
