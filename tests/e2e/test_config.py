"""Configuration as users write it: the CLI, ini files in the uWSGI style, DRAGOMAN_* variables,
their precedence, and every error message a bad config gets."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import APPS, DRAGOMAN, run_dragoman

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_version_and_help():
    out = run_dragoman("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("dragoman 0.")
    assert f"Python {PY}" in out.stdout
    out = run_dragoman("--help")
    assert out.returncode == 0
    for group in (
        "Configuration files:",
        "Application:",
        "Listeners and HTTP:",
        "Processes and workers:",
    ):
        assert group in out.stdout
    assert "--http ADDR" in out.stdout and "(default: 127.0.0.1:8000)" in out.stdout
    assert "--threads N" in out.stdout and "(default: 1)" in out.stdout


def test_console_script_and_module_entry_points():
    script = Path(sys.executable).parent / "dragoman"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("dragoman ")
    out = subprocess.run([*DRAGOMAN, "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("dragoman ")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_venv(path: Path) -> Path:
    """A real virtualenv for this Python, with one module only it provides."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = path / "lib" / f"python{PY}" / "site-packages"
    write(site / "venvonly.py", "WHERE = 'from the virtualenv'\n")
    return path


def test_design_md_ini_runs_as_written(dragoman, tmp_path):
    """The ini from DESIGN.md, with its paths moved under a temporary directory."""
    proj = tmp_path / "myproj"
    write(proj / "myproj" / "__init__.py", "")
    write(
        proj / "myproj" / "wsgi.py",
        "import os, venvonly\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [f'{venvonly.WHERE} in {os.getcwd()}'.encode()]\n",
    )
    (proj / "static").mkdir()
    (proj / "media").mkdir()
    (proj / "static" / "site.css").write_text("h1 { color: teal }")
    (proj / "media" / "upload.txt").write_text("uploaded")
    make_venv(proj / "venv")
    ini = write(
        tmp_path / "site.ini",
        f"""[uwsgi]
http       = 127.0.0.1:0
static-map = /static={proj}/static
static-map = /media={proj}/media
chdir      = {proj}
module     = myproj.wsgi
home       = {proj}/venv  # this is the virtualenv path
master     = true
processes  = 10
vacuum     = true
""",
    )
    server = dragoman("--ini", str(ini), http=None, workers=10, cwd=tmp_path)
    assert len(server.worker_pids()) == 10
    r = httpx.get(server.url)
    assert r.text == f"from the virtualenv in {proj}"
    log = server.log()
    assert "not yet in effect" not in log  # every option of that file works now
    assert httpx.get(f"{server.url}/static/site.css").text == "h1 { color: teal }"
    assert httpx.get(f"{server.url}/media/upload.txt").text == "uploaded"
    assert "option 'master'" in log  # accepted: dragoman always has a master
    assert server.stop() == 0


def test_ini_section_placeholders_env_and_bare_flags(dragoman, tmp_path):
    ini = write(
        tmp_path / "site.ini",
        f"""# a comment
; another comment
[other]
module = nothing.here

[staging]
appdir = {APPS}
chdir = %(appdir)
module = $(APP_MODULE)
master
env = GREETING=hello from the ini
env = SECOND=two
""",
    )
    server = dragoman("--ini", f"{ini}:staging", env={"APP_MODULE": "rules"}, cwd=tmp_path)
    assert httpx.get(f"{server.url}/osenv?key=GREETING").text == "hello from the ini"
    assert httpx.get(f"{server.url}/osenv?key=SECOND").text == "two"


def test_precedence_cli_over_env_over_ini(dragoman, tmp_path):
    ini = write(tmp_path / "a.ini", "[uwsgi]\nmodule = nonexistent_module\nenv = WHO=ini\n")
    server = dragoman(
        "--ini",
        str(ini),
        env={"DRAGOMAN_MODULE": "also_nonexistent", "DRAGOMAN_ENV": "WHO=env"},
        http="127.0.0.1:0",
        wait=False,
    )
    server.proc.wait(30)
    assert "also_nonexistent" in server.log()  # env beats ini
    server = dragoman("--ini", str(ini), "rules", env={"DRAGOMAN_MODULE": "also_nonexistent"})
    assert httpx.get(f"{server.url}/osenv?key=WHO").text == "ini"  # CLI module beats env
    server = dragoman(
        "--ini", str(ini), "--env", "WHO=cli", "rules", env={"DRAGOMAN_ENV": "WHO=env"}
    )
    assert httpx.get(f"{server.url}/osenv?key=WHO").text == "cli"


def test_pythonpath_and_wsgi_file(dragoman, tmp_path):
    write(tmp_path / "lib" / "helper.py", "TEXT = b'helper on pythonpath'\n")
    write(
        tmp_path / "site" / "app.py",
        "import helper\nimport sibling\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [helper.TEXT + b' / ' + sibling.TEXT]\n",
    )
    write(tmp_path / "site" / "sibling.py", "TEXT = b'sibling of the file'\n")
    server = dragoman(
        "--wsgi-file",
        str(tmp_path / "site" / "app.py"),
        "--pythonpath",
        str(tmp_path / "lib"),
        cwd=tmp_path,
    )
    assert httpx.get(server.url).text == "helper on pythonpath / sibling of the file"


def test_module_with_named_callable(dragoman):
    server = dragoman("echo:application")
    assert httpx.get(server.url).status_code == 200
    server = dragoman("--module", "echo", "--callable", "application")
    assert httpx.get(server.url).status_code == 200


def expect_error(*args, cwd=APPS, env=None, code=2) -> str:
    out = run_dragoman(*args, cwd=cwd, env=env)
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return out.stderr.strip()


def test_unknown_ini_key_is_a_placeholder_with_a_typo_warning_and_refused_when_strict(
    dragoman, tmp_path
):
    # As uWSGI: a key that is no option is a placeholder; dragoman names the likely option.
    ini = write(tmp_path / "site.ini", "[uwsgi]\nmodule = echo\n\nvaccum = true\n")
    server = dragoman("--ini", str(ini))
    assert httpx.get(server.url).status_code == 200
    assert (
        f"{ini} line 4: 'vaccum' is no option, so it is kept as a placeholder (usable as "
        "%(vaccum)), as uWSGI does; did you mean 'vacuum'?" in server.log()
    )
    # With strict (as uWSGI's strict mode), it is refused, with the file, line and fix.
    ini = write(tmp_path / "strict.ini", "[uwsgi]\nstrict = true\nmodule = echo\n\nprocceses = 4\n")
    err = expect_error("--ini", str(ini))
    assert err.startswith(
        f"dragoman: error: {ini} line 5: unknown option 'procceses'; did you mean 'processes'? "
        "`strict` is on, so a key that is no option is refused (as in uWSGI)"
    ), err


def test_uwsgi_ini_constructs_as_uwsgi_reads_them(dragoman, tmp_path):
    """Includes, config logic, loops, magic variables, placeholders with arithmetic, @(exec://),
    trailing ; comments and unresolved references, in one strict file, served for real."""
    write(tmp_path / "conf" / "common.ini", "[uwsgi]\nenv = FROM_INCLUDE=%n\n")
    ini = write(
        tmp_path / "conf" / "site.ini",
        f"""[uwsgi]
strict = true
chdir = {APPS}
module = rules
include = %dcommon.ini
set-ph = base=41
set-ph = greeting=hello
if-env = DEPLOY
env = DEPLOY_SEEN=%(_)
endif =
if-not-env = SURELY_NOT_SET_ANYWHERE
env = NOT_SET=yes ; a trailing comment is no part of the value
endif =
if-exists = /surely/not/here
env = EXISTS=wrong
else =
env = EXISTS=no
endif =
for = a b
env = LOOP_%(_)=%(_)
endfor =
env = ANSWER=%(base + 1)
env = GREETING=%(greeting) from %c
env = HOST=%h
env = FROM_EXEC=@(exec://echo from a command)
env = LOG_FORMAT=%(addr) %(status)
ignore-sigpipe = true
master-fifo = /tmp/dragoman-test-fifo
""",
    )
    server = dragoman("--ini", str(ini), env={"DEPLOY": "prod"}, cwd=tmp_path)

    def osenv(key: str) -> str:
        return httpx.get(f"{server.url}/osenv?key={key}").text

    assert osenv("FROM_INCLUDE") == "common"  # %n of the included file
    assert osenv("DEPLOY_SEEN") == "prod"
    assert osenv("NOT_SET") == "yes"
    assert osenv("EXISTS") == "no"
    assert (osenv("LOOP_a"), osenv("LOOP_b")) == ("a", "b")
    assert osenv("ANSWER") == "42"
    assert osenv("GREETING") == "hello from conf"
    assert osenv("HOST") == socket.gethostname()
    assert osenv("FROM_EXEC") == "from a command"
    assert osenv("LOG_FORMAT") == "%(addr) %(status)"  # request variables stay for log-format
    log = server.log()
    assert "option 'ignore-sigpipe'" in log and "has nothing to do in dragoman" in log
    assert "uWSGI option 'master-fifo'" in log and "send signals instead" in log


def test_a_unix_socket_without_a_slash_and_protocol_http(dragoman, tmp_path):
    # uWSGI reads `socket = app.sock` as a unix socket, bound after `chdir` (core/uwsgi.c), so
    # in that directory.
    site = tmp_path / "site"
    site.mkdir()
    ini = write(
        tmp_path / "site.ini",
        f"[uwsgi]\nchdir = {site}\npythonpath = {APPS}\nmodule = echo\nsocket = app.sock\n"
        "protocol = http\n",
    )
    server = dragoman("--ini", str(ini), http=None, cwd=tmp_path)
    assert (site / "app.sock").is_socket()
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(site / "app.sock"))) as client:
        assert client.get("http://localhost/").status_code == 200
    assert server.stop() == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "gevent = 100",
            "uWSGI option 'gevent' is refused: dragoman runs WSGI applications on threads",
        ),
        (
            "https2 = addr=:8443,cert=c.pem,key=k.pem",
            "uWSGI option 'https2' is refused: this TLS option of uWSGI is not implemented",
        ),
        ("route = ^/admin basicauth:Admin,u:p", "option 'route' is refused: this routing rule"),
        ("ini = loop.ini", "includes a file that is already being read"),
    ],
)
def test_refusals_name_the_file_line_and_what_to_change(tmp_path, line, message):
    write(tmp_path / "loop.ini", "[uwsgi]\nini = site.ini\n")
    ini = write(tmp_path / "site.ini", f"[uwsgi]\nmodule = echo\n{line}\n")
    err = expect_error("--ini", str(ini), cwd=tmp_path)
    assert "line " in err and message in err, err
    assert str(tmp_path) in err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "socket =",
            "line 3: option 'socket' expects an address to listen on (empty), as in `socket = :3031`; got an empty value",
        ),
        (
            "threads = many",
            "line 3: option 'threads' expects a whole number of at least 1, as in `threads = 4`; got \"many\"",
        ),
        (
            "processes = 0",
            "line 3: option 'processes' expects a whole number of at least 1, as in `processes = 4`; got \"0\"",
        ),
        (
            "master = maybe",
            "line 3: option 'master' expects true or false (also yes/no, on/off, 1/0), as in `master = true`; got \"maybe\"",
        ),
        (
            "http = :web",
            "line 3: option 'http' expects an address to listen on (\"web\" is not a port",
        ),
        ("env = NOEQUALS", "line 3: option 'env' expects KEY=VALUE"),
        (
            "processes = %(nope)",
            (
                "line 3: option 'processes' expects a whole number of at least 1, as in "
                '`processes = 4`; got "%(nope)" (%(nope) names no option or placeholder'
            ),
        ),
    ],
)
def test_wrong_values_name_file_line_option_expectation_and_example(tmp_path, line, message):
    ini = write(tmp_path / "site.ini", f"[uwsgi]\nmodule = echo\n{line}\n")
    err = expect_error("--ini", str(ini))
    assert err.startswith(f"dragoman: error: {ini} {message}"), err


def test_cli_and_env_errors():
    err = expect_error("echo", "--thread", "2")
    assert (
        err
        == "dragoman: error: command line option --thread: unknown option 'thread'; did you mean 'threads'?"
    )
    err = expect_error("echo", env={"DRAGOMAN_THREADS": "lots"})
    assert "environment variable DRAGOMAN_THREADS: option 'threads' expects a whole number" in err
    assert "`DRAGOMAN_THREADS=4`" in err
    err = expect_error()
    assert "no application to serve" in err
    err = expect_error("--ini", "/nonexistent/site.ini")
    assert "/nonexistent/site.ini: cannot read this ini file: No such file" in err


def test_missing_chdir_is_explained(tmp_path):
    ini = write(tmp_path / "site.ini", "[uwsgi]\nmodule = echo\nchdir = /nonexistent/dir\n")
    err = expect_error("--ini", str(ini))
    assert f"{ini} line 3: option 'chdir' names /nonexistent/dir, which cannot be entered" in err


def test_home_for_another_python_is_explained(tmp_path):
    other = "3.9" if PY != "3.9" else "3.8"
    venv = tmp_path / "venv"
    (venv / "lib" / f"python{other}" / "site-packages").mkdir(parents=True)
    write(venv / "pyvenv.cfg", f"home = /usr/bin\nversion = {other}.18\n")
    ini = write(tmp_path / "site.ini", f"[uwsgi]\nmodule = echo\nhome = {venv}\n")
    err = expect_error("--ini", str(ini))
    assert f"{ini} line 3: option 'home': {venv} is a virtualenv for Python {other}" in err
    assert f"but dragoman runs on Python {PY}" in err
    assert f"{venv}/bin/pip install dragoman" in err
    err = expect_error("echo", "--home", str(tmp_path / "missing"))
    assert "does not exist" in err


@pytest.mark.parametrize(
    ("target", "summary"),
    [
        (
            "broken_import:application",
            "ModuleNotFoundError: No module named 'this_module_does_not_exist'",
        ),
        ("echo:missing", "AttributeError: module 'echo' has no attribute 'missing'"),
        (
            "not_callable:application",
            "TypeError: not_callable:application is a str, not a callable WSGI application",
        ),
        ("no_such_module", "ModuleNotFoundError: No module named 'no_such_module'"),
    ],
)
def test_an_app_that_fails_to_load_stops_dragoman_with_the_traceback(target, summary):
    start = time.monotonic()
    out = run_dragoman("--http", "127.0.0.1:0", "--processes", "3", target, timeout=60)
    assert out.returncode == 1
    assert time.monotonic() - start < 30
    assert f"could not load the WSGI application {target}" in out.stderr
    assert summary in out.stderr
    if "Import" in summary or "ModuleNotFound" in summary:
        assert "Traceback (most recent call last)" in out.stderr
    # One worker tried, once: no fork storm, one traceback.
    described = target if ":" in target else f"{target}:application"
    assert out.stderr.count(f"could not load the WSGI application {described}:\n") == 1
    assert "exiting" in out.stderr.splitlines()[-1]


def test_port_in_use_is_explained(dragoman):
    server = dragoman("echo")
    err = expect_error("echo", "--http", server.addresses[0], code=1)
    assert f"cannot listen on {server.addresses[0]}" in err
    assert "another process is listening there" in err


def test_dragoman_runs_from_a_copied_project_dir(dragoman, tmp_path):
    """`dragoman module:callable` from the project directory finds the module (cwd on sys.path)."""
    shutil.copy(APPS / "echo.py", tmp_path / "myapp.py")
    server = dragoman("myapp:application", cwd=tmp_path)
    assert httpx.get(server.url).status_code == 200
