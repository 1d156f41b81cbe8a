"""What the master does as root before it drops privileges: no file operation that a path the
service user can change could redirect (the pidfile, the unix socket's permissions), and nothing
from the application's virtualenv runs as root. These tests run as root (CI does), with the
service user `nobody`."""

import os

import pytest


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
