"""What the master does as root before it drops privileges: no file operation that a path the
service user can change could redirect (the pidfile, the unix socket's permissions), and nothing
from the application's virtualenv runs as root. These tests run as root (CI does), with the
service user `nobody`."""

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import APPS, DRAGOMAN, Server, _env


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test checks what dragoman does as root and must run as root (CI does)")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory `nobody` can read (pytest's tmp_path is root's alone), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="dragoman-privileges-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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


def test_the_virtualenv_runs_nothing_as_root(dragoman, shared_dir):
    """A .pth line in the `home` virtualenv records the user it runs as: never root."""
    need_root()
    marks = shared_dir / "marks"
    marks.mkdir()
    marks.chmod(0o777)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    venv = shared_dir / "venv"
    site = venv / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}.0\n")
    (site / "marker.pth").write_text(
        f"import os; open({str(marks / 'euid')!r}, 'a').write(f'{{os.geteuid()}}\\n')\n"
    )
    for path in (venv, venv / "lib", site.parent, site, site / "marker.pth"):
        path.chmod(0o755)
    server = dragoman(
        "uid_app:application", "--uid", "nobody", "--gid", "nogroup", "--home", str(venv)
    )
    assert httpx.get(server.url).text == "uid 65534 gid 65534"
    ran_as = (marks / "euid").read_text().split()
    # It ran (the virtualenv is in use), and only as the service user.
    assert ran_as and set(ran_as) == {"65534"}, ran_as


def test_a_virtualenv_the_service_user_cannot_read_is_named(dragoman, tmp_path):
    need_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    venv = tmp_path / "venv"  # under pytest's tmp_path, which only root may enter
    (venv / "lib" / f"python{version}" / "site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}.0\n")
    server = dragoman("uid_app:application", "--uid", "nobody", "--home", str(venv), wait=False)
    assert server.proc.wait(30) == 2
    text = server.log()
    assert "option 'home'" in text and "cannot be read by this user (uid 65534" in text, text
