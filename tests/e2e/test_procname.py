"""Process titles (auto-procname, procname-*), as `ps` shows them, and unix sockets given to
another owner (chown-socket) without a path the service user could swap."""

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest


def title(pid: int) -> str:
    out = subprocess.run(
        ["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return out.stdout.strip()


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_auto_procname_names_the_master_and_each_worker(dragoman):
    server = dragoman("master_app:application", "--processes", "2", "--auto-procname", workers=2)
    assert title(server.proc.pid) == "dragoman master"
    assert comm(server.proc.pid) == "dragoman master"
    workers = server.worker_pids()
    assert sorted(title(p) for p in workers) == ["dragoman worker 1", "dragoman worker 2"]
    assert {comm(p) for p in workers} == {"dragoman worker"}  # 15 bytes at most
    # A replacement gets the name of its position.
    victim = min(workers)
    name = title(victim)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        fresh = [p for p in server.worker_pids() if p not in workers]
        if fresh and title(fresh[0]) == name:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no replacement named {name!r}: {server.log()}")


def test_procname_prefix_append_and_names(dragoman):
    server = dragoman(
        "master_app:application",
        "--procname-prefix-spaced",
        "mysite",
        "--procname-append",
        "-prod",
        "--procname-master",
        "boss",
        "--procname",
        "wk",
    )
    assert title(server.proc.pid) == "mysite boss-prod"
    assert [title(p) for p in server.worker_pids()] == ["mysite wk-prod"]


def test_without_procname_options_the_command_line_is_kept(dragoman):
    server = dragoman("master_app:application")
    assert "master_app:application" in title(server.proc.pid)


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test checks what dragoman does as root and must run as root (CI does)")


@pytest.fixture
def shared_dir():
    """A directory other users can enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="dragoman-chown-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def connects_as(uid: int, gid: int, sock: Path) -> bool:
    """Whether a process of this user and group (no others) may connect to `sock`."""
    probe = "import socket,sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
    setpriv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    out = subprocess.run(
        [*setpriv, "/usr/bin/python3", "-c", probe, str(sock)],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.returncode == 0


@pytest.mark.parametrize("owner", ["nobody:nogroup", "nobody"])
def test_chown_socket_gives_the_socket_to_another_user(dragoman, shared_dir, owner):
    need_root()
    sock = shared_dir / "site.sock"
    server = dragoman(
        "echo:application",
        "--http",
        str(sock),
        "--chown-socket",
        owner,
        "--chmod-socket",
        "660",
        "--vacuum",
        http=None,
    )
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert st.st_uid == 65534
    assert st.st_gid == (65534 if ":" in owner else 0)
    assert stat.S_IMODE(st.st_mode) == 0o660
    # Made elsewhere and moved in: nothing is left beside it.
    assert [p.name for p in shared_dir.iterdir()] == ["site.sock"]
    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(transport=transport) as client:
        assert client.get("http://localhost/").status_code == 200
    # The owner may connect; a user neither owner nor in the group may not (mode 660).
    assert connects_as(65534, 65534, sock)
    assert not connects_as(4321, 4321, sock)
    if ":" in owner:
        assert connects_as(4321, 65534, sock)
    assert server.stop() == 0
    assert not sock.exists()


def test_chown_socket_names_an_unknown_user(dragoman, tmp_path):
    server = dragoman(
        "echo:application",
        "--http",
        str(tmp_path / "s.sock"),
        "--chown-socket",
        "no-such-user-here",
        http=None,
        wait=False,
    )
    assert server.proc.wait(30) != 0
    text = server.log()
    assert "chown-socket" in text and "no-such-user-here" in text, text
    assert shutil.which("ps")
