"""`dragoman --check` reports every problem of a configuration and its application (three
errors in a file are three lines) and exits 0 or 1 without serving; `--print-config` shows
every option in effect with where it comes from; the seed post's `http =`, written with no
address, serves on the default address and says so."""

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import APPS, DRAGOMAN, _env, run_dragoman


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dragoman: error: ")]


def test_three_errors_in_one_file_are_three_lines(tmp_path):
    ini = write(
        tmp_path / "site.ini",
        """\
        [uwsgi]
        module = ops_app
        threads = many
        harakiri = soon
        static-map = static
        """,
    )
    for args in (["--check", "--ini", str(ini)], ["--ini", str(ini)]):
        r = run_dragoman(*args)
        lines = errors(r.stderr)
        assert len(lines) == 3, r.stderr
        assert lines[0].startswith(f"dragoman: error: {ini} line 3: option 'threads' expects")
        assert lines[1].startswith(f"dragoman: error: {ini} line 4: option 'harakiri' expects")
        assert lines[2].startswith(f"dragoman: error: {ini} line 5: option 'static-map' expects")
        assert r.returncode == (1 if "--check" in args else 2)
    r = run_dragoman("--check", "--ini", str(ini))
    assert "dragoman: 3 problems found" in r.stderr
    assert "the application was not imported: the configuration has errors" in r.stderr


def test_problems_of_every_source_together(tmp_path):
    ini = write(
        tmp_path / "site.ini",
        """\
        [uwsgi]
        module = ops_app
        gevent = 100
        processes = 0
        """,
    )
    r = run_dragoman(
        "--check",
        "--ini",
        str(ini),
        "--listen",
        "x",
        env={"DRAGOMAN_THRADS": "2"},
    )
    lines = errors(r.stderr)
    assert r.returncode == 1
    assert len(lines) == 4, r.stderr
    text = "\n".join(lines)
    assert f"{ini} line 3: uWSGI option 'gevent' is refused" in text
    assert f"{ini} line 4: option 'processes' expects" in text
    assert "environment variable DRAGOMAN_THRADS: unknown option 'thrads'" in text
    assert "command line option --listen: option 'listen' expects" in text


def test_a_valid_configuration_imports_the_app_and_serves_nothing(tmp_path):
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    port = held.getsockname()[1]
    (tmp_path / "static").mkdir()
    ini = write(
        tmp_path / "site.ini",
        f"""\
        [uwsgi]
        module = ops_app
        chdir = {APPS}
        http = 127.0.0.1:{port}
        static-map = /static={tmp_path}/static
        static-map = /media={tmp_path}/media
        """,
    )
    t0 = time.monotonic()
    r = run_dragoman("--check", "--ini", str(ini), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "the configuration is valid and the application ops_app:application loads" in r.stdout
    # A mount whose directory is missing is a warning, not a problem.
    assert f"{tmp_path}/media does not exist" in r.stderr
    # The port is in use by the test: --check binds nothing, serves nothing, and returns.
    assert "listening on" not in r.stderr and time.monotonic() - t0 < 30
    held.close()


def test_an_application_that_does_not_load_is_a_problem(tmp_path):
    for target, words in [
        ("broken_import:application", "No module named 'this_module_does_not_exist'"),
        ("not_callable:application", "not a callable WSGI application"),
        ("ops_app:nothing_here", "nothing_here"),
    ]:
        r = run_dragoman("--check", target)
        assert r.returncode == 1, (target, r.stderr)
        assert words in r.stderr, (target, r.stderr)
        assert f"the application {target} does not load" in r.stderr
        assert "dragoman: 1 problem found" in r.stderr


def test_users_that_do_not_exist(tmp_path):
    r = run_dragoman("--check", "ops_app", "--uid", "no-such-user-here", "--gid", "no-such-group")
    assert r.returncode == 1
    lines = errors(r.stderr)
    assert any("option 'uid' names \"no-such-user-here\", which is no user" in x for x in lines)
    assert any("option 'gid' names \"no-such-group\", which is no group" in x for x in lines)


def test_print_config_names_each_source(tmp_path):
    ini = write(
        tmp_path / "site.ini",
        """\
        [uwsgi]
        module = ops_app
        http =
        threads = 2
        processes = 3
        """,
    )
    r = run_dragoman(
        "--print-config",
        "--ini",
        str(ini),
        "--processes",
        "4",
        env={"DRAGOMAN_THREADS": "8"},
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()

    def line(start: str, source: str) -> None:
        assert any(x.startswith(start) and x.endswith(source) for x in lines), (start, r.stdout)

    line("module = ops_app", f"; {ini} line 2")
    line("http = 127.0.0.1:8000", f"; {ini} line 3 (empty: the default address)")
    line("threads = 8", "; environment variable DRAGOMAN_THREADS")
    line(";   overridden: threads = 2", f"({ini} line 4)")
    line("processes = 4", "; command line option --processes")
    line(";   overridden: processes = 3", f"({ini} line 5)")
    line("listen = 1024", "; default")
    line("forwarded-allow-ips = 127.0.0.0/8, ::1, unix", "; default")
    # The output is an ini file dragoman reads back to the same options.
    again = run_dragoman("--print-config", "--ini", str(write(tmp_path / "p.ini", r.stdout)))
    assert again.returncode == 0, again.stderr
    assert "threads = 8" in again.stdout and "processes = 4" in again.stdout


SEED = """\
[uwsgi]
http       =
chdir      = {chdir}
module     = ops_app
master     = true
processes  = 2
vacuum     = true
"""


def test_the_seed_posts_empty_http_serves_on_the_default_address(tmp_path):
    """The post's ini as written, `http =` included, in a network namespace of its own (so
    127.0.0.1:8000, the default, is free whatever else runs on this machine)."""
    ini = write(tmp_path / "seed.ini", SEED.format(chdir=APPS))
    log = tmp_path / "seed.log"
    script = textwrap.dedent(
        f"""\
        import subprocess, sys, time, urllib.request
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        with open({str(log)!r}, "wb") as out:
            proc = subprocess.Popen({DRAGOMAN!r} + ["--ini", {str(ini)!r}], stdout=out,
                                    stderr=subprocess.STDOUT)
        body = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not body:
            try:
                body = urllib.request.urlopen("http://127.0.0.1:8000/hello", timeout=2).read()
            except OSError:
                time.sleep(0.1)
        proc.terminate()
        proc.wait(30)
        print(body.decode())
        """
    )
    r = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=90,
        env=_env(None),
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hello, world", (r.stdout, log.read_text())
    text = log.read_text()
    assert (
        f"{ini} line 2: `http =` names no address, so dragoman listens on the default, "
        "127.0.0.1:8000"
    ) in text
    assert "listening on http://127.0.0.1:8000" in text
