"""What the master does as root before it drops privileges: no file operation that a path the
service user can change could redirect (the pidfile, the unix socket's permissions), and nothing
from the application's virtualenv runs as root. These tests run as root (CI does), with the
service user `nobody`."""

import os
import shutil
import signal
import stat
import subprocess
import time

import httpx
import pytest
from conftest import APPS, DRAGOMAN, Server, _env


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test checks what dragoman does as root and must run as root (CI does)")


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_the_pidfile_never_writes_through_a_link(dragoman, tmp_path, link):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pidfile = tmp_path / "site.pid"
    if link == "symlink":
        pidfile.symlink_to(victim)
    else:
        os.link(victim, pidfile)
    server = dragoman("echo:application", "--pidfile", str(pidfile), wait=False)
    try:
        code = server.proc.wait(30)
    finally:
        # Whatever happened, the file the link leads to is untouched.
        assert victim.read_text() == "precious\n"
    text = server.log()
    assert code == 1, text
    assert f"cannot write the pidfile {pidfile}" in text, text
    kind = "symbolic link" if link == "symlink" else "other name"
    assert kind in text, text


def test_a_stale_pidfile_is_replaced(dragoman, tmp_path):
    pidfile = tmp_path / "site.pid"
    pidfile.write_text("999999\nand a longer tail than a pid\n")
    server = dragoman("echo:application", "--pidfile", str(pidfile))
    assert pidfile.read_text() == f"{server.proc.pid}\n"


def test_chmod_socket_sets_the_mode_without_a_path_race(tmp_path):
    """The socket file is swapped for a symlink to another file while bind(2) is held (strace
    delays its return): setting the mode by path afterwards would chmod that file."""
    need_root()
    if not shutil.which("strace"):
        pytest.fail("strace is missing; make test installs it")
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    victim.chmod(0o600)
    sock = tmp_path / "site.sock"
    log_path = tmp_path / "log"
    argv = [
        "strace",
        "-f",
        "-o",
        "/dev/null",
        "-e",
        "trace=bind",
        "-e",
        "inject=bind:delay_exit=1500000",
        *DRAGOMAN,
        "--http",
        str(sock),
        "--chmod-socket",
        "666",
        "echo:application",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=APPS,
            env=_env(None),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, log_path)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline and proc.poll() is None, server.log()
            time.sleep(0.01)
        # bind(2) made the file and has not returned yet: swap it.
        sock.unlink()
        sock.symlink_to(victim)
        server.wait_ready()
        assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_chmod_socket_mode_is_exact_whatever_the_umask(dragoman, tmp_path):
    sock = tmp_path / "site.sock"
    stats = tmp_path / "stats.sock"
    dragoman(
        "echo:application",
        "--umask",
        "077",
        "--chmod-socket",
        "666",
        "--stats",
        str(stats),
        http=str(sock),
    )
    for path in (sock, stats):
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert stat.S_IMODE(path.lstat().st_mode) == 0o666, path
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as client:
        assert client.get("http://localhost/").status_code == 200
