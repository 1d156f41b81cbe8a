"""The deployment docs, run. Every fenced block of docs/deploying-django.md,
docs/migrating-from-uwsgi.md and docs/migrating-from-gunicorn.md is read from the page itself by
the `<!-- doc-test: NAME -->` line before it (or `<!-- doc-test: skip (why) -->`), so the docs
and these tests cannot drift: a block without a marker, or a named block no test takes, fails.

What one machine can run is run: Django's startproject, the settings, collectstatic and
`dragoman compress`, the ini with `dragoman --check`, the server, the curl lines against it, a
reload under requests, the systemd units' command under systemd-socket-activate, the container's
HEALTHCHECK command, the uWSGI ini and the gunicorn command line converted. The rest is
validated: the units with `systemd-analyze verify`, the Kubernetes manifests against Kubernetes'
schemas (kubernetes-validate, offline), the Containerfile instruction by instruction.

The one change made to what the pages say: `/srv/mysite` is a temporary directory (whose
`venv` is a link to this test suite's virtualenv), and ports 8000 and 9100 are free ones.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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
import kubernetes_validate
import pytest
import yaml
from conftest import REPO, Server

DOCS = REPO / "docs"
SITE = REPO / "examples" / "mysite"
VENV = Path(sys.prefix)
SRV = "/srv/mysite"

MARKED = re.compile(r"<!-- doc-test: ([^\n]+?) -->\n```([\w.-]*)\n(.*?)\n```\n", re.DOTALL)

# The blocks each page has, by name; a new block needs a test (and a name here).
EXPECTED = {
    "deploying-django.md": {
        "startproject",
        "settings",
        "prepare",
        "ini",
        "check",
        "check-output",
        "run",
        "curl",
        "curl-output",
        "mysite.socket",
        "mysite.service",
        "acme",
        "Containerfile",
        "balancer",
        "kubernetes",
    },
    "migrating-from-uwsgi.md": {"uwsgi-before", "uwsgi-check-output", "uwsgi-after"},
    "migrating-from-gunicorn.md": {
        "gunicorn-before",
        "gunicorn-before-output",
        "gunicorn-after",
        "gunicorn-ini",
    },
}


def blocks(page: str) -> dict[str, str]:
    """The named blocks of a page; asserts that every fenced block carries a marker."""
    text = (DOCS / page).read_text()
    fences = sum(1 for line in text.splitlines() if line.startswith("```"))
    found: dict[str, str] = {}
    marked = 0
    for m in MARKED.finditer(text):
        marked += 1
        name = m.group(1)
        if name.startswith("skip ("):
            continue
        assert name not in found, f"{page}: two blocks named {name}"
        found[name] = m.group(3) + "\n"
    assert fences == 2 * marked, f"{page}: a fenced block without a doc-test marker"
    return found


def localise(text: str, root: Path, ports: dict[int, int] | None = None) -> str:
    text = text.replace(SRV, str(root))
    for doc_port, port in (ports or {}).items():
        text = text.replace(f":{doc_port}", f":{port}")
    return text


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRAGOMAN_", "DJANGO_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra or {})
    return env


def bash(script: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator:
    """Starts a command (a dragoman) with its log in a file; killed when the test ends."""
    procs: list[subprocess.Popen] = []
    counter = iter(range(100))

    def start(argv: list[str], cwd: Path, env: dict[str, str], workers: int = 1) -> Server:
        log_path = tmp_path / f"launched-{next(counter)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=clean_env({"PYTHONUNBUFFERED": "1", **env}),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        server = Server(proc, log_path)
        if workers:
            server.wait_ready(workers, timeout=60)
        return server

    yield start
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


def test_every_block_is_marked_and_taken_by_a_test():
    for page, names in EXPECTED.items():
        assert set(blocks(page)) == names, page


# -- docs/deploying-django.md ---------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """/srv/mysite as sections 1-4 of the page leave it: the project, its settings, the key,
    the database, the static files collected and compressed, and the ini."""
    doc = blocks("deploying-django.md")
    root = tmp_path_factory.mktemp("srv") / "mysite"
    root.mkdir()
    (root / "venv").symlink_to(VENV)  # section 1: the virtualenv
    r = bash(localise(doc["startproject"], root), cwd=root)
    assert r.returncode == 0, r.stderr
    settings = root / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\n" + doc["settings"])
    r = bash(localise(doc["prepare"], root), cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    (root / "mysite.ini").write_text(localise(doc["ini"], root))
    return root


def test_startproject_settings_and_static_files(project):
    env = env_file(project / "env")
    assert re.fullmatch(r"[0-9a-f]{64}", env["DJANGO_SECRET_KEY"])
    assert (project / "env").stat().st_mode & 0o077 == 0, "the key file is private"
    manifest = json.loads((project / "static" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]
    assert re.fullmatch(r"admin/css/base\.[0-9a-f]{12}\.css", hashed)
    assert (project / "static" / (hashed + ".br")).is_file()
    assert (project / "static" / "admin" / "css" / ".dragoman-variants").is_file()
    # The key file's umask stayed with it: the service user can read the static files.
    assert (project / "static" / hashed).stat().st_mode & 0o004
    assert (project / "data" / "db.sqlite3").is_file()


def test_check_says_what_the_page_says(project):
    doc = blocks("deploying-django.md")
    r = bash(localise(doc["check"], project), cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == doc["check-output"].strip()


def service_argv(root: Path) -> list[str]:
    """The unit's ExecStart, the Containerfile's CMD and the page's foreground command: one."""
    doc = blocks("deploying-django.md")
    unit = doc["mysite.service"]
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE).group(1)
    argv = shlex.split(localise(exec_start, root))
    cmd = re.search(r"^CMD (\[.+\])$", doc["Containerfile"], re.MULTILINE).group(1)
    assert [localise(a, root) for a in json.loads(cmd)] == argv
    run = shlex.split(localise(doc["run"], root))
    assert [str(root / run[0]), *run[1:]] == argv
    return argv


def test_the_site_serves_as_the_page_says_and_reloads_dropping_nothing(project, launch):
    doc = blocks("deploying-django.md")
    argv = service_argv(project)
    env = {**env_file(project / "env"), "DRAGOMAN_METRICS": "127.0.0.1:0"}
    # The ini's http is :8000; the environment names a free port (it wins over the ini).
    env["DRAGOMAN_HTTP"] = "127.0.0.1:0"
    server = launch(argv, cwd=project, env=env, workers=2)
    metrics = server.wait_for_log(r"metrics on http://(127\.0\.0\.1:\d+)/metrics").group(1)
    ports = {8000: server.port, 9100: int(metrics.rsplit(":", 1)[1])}
    r = bash(localise(doc["curl"], project, ports), cwd=project)
    assert r.returncode == 0, r.stderr
    got = [line.rstrip("\r") for line in r.stdout.splitlines()]
    assert got == doc["curl-output"].splitlines()

    # Static files: the hashed name is immutable, and the Brotli variant goes to who takes it.
    manifest = json.loads((project / "static" / "staticfiles.json").read_text())
    css = f"{server.url}/static/{manifest['paths']['admin/css/base.css']}"
    r = httpx.get(css, headers={"Accept-Encoding": "br"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "br"
    assert "immutable" in r.headers["cache-control"]

    # The container's HEALTHCHECK command, against this server (the environment names it).
    health = re.search(r"^HEALTHCHECK .* CMD (\[.+\])$", doc["Containerfile"], re.MULTILINE).group(
        1
    )
    probe = [localise(a, project) for a in json.loads(health)]
    r = subprocess.run(
        probe,
        env=clean_env({"DRAGOMAN_HTTP": server.addresses[0]}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr

    # `systemctl reload` is ExecReload's SIGHUP: requests go on through it, none fails.
    failed: list[str] = []
    ok = [0]
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(
            base_url=server.url,
            headers={"Host": "example.com", "X-Forwarded-Proto": "https"},
            timeout=30,
        ) as client:
            while not stop.is_set() and ok[0] + len(failed) < 5000:
                try:
                    r = client.get("/admin/login/")
                    if r.status_code == 200:
                        ok[0] += 1
                    else:
                        failed.append(f"status {r.status_code}")
                except httpx.HTTPError as e:
                    failed.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        assert re.search(
            r"^ExecReload=/bin/kill -HUP \$MAINPID$", doc["mysite.service"], re.MULTILINE
        )
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for_log("reload finished", timeout=60)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert failed == [], failed[:5]
    assert ok[0] > 20
    assert server.stop() == 0


def test_socket_activation_as_the_units_say(project, launch, tmp_path):
    """The socket unit's address and the ini's `http` are the same socket: dragoman takes the
    one systemd passes (here systemd-socket-activate, as systemd would) and binds nothing."""
    doc = blocks("deploying-django.md")
    listen = re.search(r"^ListenStream=(.+)$", doc["mysite.socket"], re.MULTILINE).group(1)
    assert listen == "0.0.0.0:8000"
    port = free_port()
    ini = tmp_path / "mysite.ini"
    ini.write_text(localise(doc["ini"], project, {8000: port, 9100: free_port()}))
    argv = service_argv(project)
    argv[argv.index("--ini") + 1] = str(ini)
    # systemd-socket-activate passes on only the variables named with -E, as systemd passes
    # only the unit's (EnvironmentFile=).
    assert re.search(r"^EnvironmentFile=/srv/mysite/env$", doc["mysite.service"], re.MULTILINE)
    secrets = env_file(project / "env")
    server = launch(
        [
            "systemd-socket-activate",
            "-l",
            localise(listen, project, {8000: port}),
            *(f"-E{name}" for name in secrets),
            *argv,
        ],
        cwd=project,
        env=secrets,
        workers=0,
    )
    deadline = time.monotonic() + 10
    while f"Listening on 0.0.0.0:{port}" not in server.log():
        assert time.monotonic() < deadline and server.proc.poll() is None, server.log()
        time.sleep(0.05)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60)
    except httpx.HTTPError as e:
        raise AssertionError(f"{e!r}:\n{server.log()}") from e
    assert r.status_code in (200, 503)
    server.wait_ready(2, timeout=60)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert "cannot listen" not in server.log()


def test_systemd_units_verify(project, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing; make test installs the systemd package")
    doc = blocks("deploying-django.md")
    # The units name /srv/mysite: the project's files (the virtualenv's dragoman, the env file)
    # must exist for `verify`, so they are checked where the test put them.
    for name in ("mysite.socket", "mysite.service"):
        first = doc[name].splitlines()[0]
        assert first == f"# /etc/systemd/system/{name}"
        (tmp_path / name).write_text(localise(doc[name], project))
    r = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            str(tmp_path / "mysite.socket"),
            str(tmp_path / "mysite.service"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on a misspelt key or a bad value too, printing a warning: none may appear.
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r.stdout + r.stderr
    # It does catch what is wrong: a misspelt key is reported.
    (tmp_path / "mysite.service").write_text(localise(doc["mysite.service"], project) + "Bogus=1\n")
    r = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "mysite.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Unknown key 'Bogus'" in r.stderr


def test_acme_and_balancer_inis_load_with_the_site(project, tmp_path):
    doc = blocks("deploying-django.md")
    for name in ("acme", "balancer"):
        extra = tmp_path / f"{name}.ini"
        extra.write_text(localise(doc[name], project))
        r = bash(
            f"venv/bin/dragoman --check --ini mysite.ini --ini {extra}",
            cwd=project,
            env=env_file(project / "env"),
        )
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
        assert doc["check-output"].strip() in r.stdout


def print_config(root: Path, env: dict[str, str]) -> dict[str, str]:
    r = bash("venv/bin/dragoman --print-config --ini mysite.ini", cwd=root, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    options = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^([a-z0-9-]+) = (.*?)\s+; ", line)
        if m:
            options[m.group(1)] = m.group(2)
    return options


def test_kubernetes_manifests_validate_and_agree_with_the_ini(project):
    doc = blocks("deploying-django.md")
    resources = list(yaml.safe_load_all(doc["kubernetes"]))
    assert [r["kind"] for r in resources] == ["Deployment", "Service"]
    version = kubernetes_validate.latest_version()
    for resource in resources:
        # Raises on any schema error; strict: an unknown field is an error too.
        kubernetes_validate.validate(resource, version, strict=True)
    # And it does catch errors: a misspelt field is refused.
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {**resources[1], "spec": {**resources[1]["spec"], "selectr": {}}}, version, True
        )

    deployment, service = resources
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    options = print_config(project, {**env_file(project / "env"), **env})
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # The probes ask the ini's health check on its http port.
    assert options["http"].endswith(f":{ports['http']}")
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": options["health-check"], "port": "http"}
    # The grace period outlasts dragoman's own graceful stop.
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(options["shutdown-delay"]) + int(options["worker-reload-mercy"])
    # Prometheus scrapes where the metrics listen.
    annotations = pod["metadata"]["annotations"]
    assert options["metrics"] == f":{annotations['prometheus.io/port']}"
    assert ports["metrics"] == int(annotations["prometheus.io/port"])
    assert annotations["prometheus.io/path"] == "/metrics"
    # The Service sends to the pods' http port; the pod runs as the image's user.
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    user = re.search(r"^USER (\d+):(\d+)$", doc["Containerfile"], re.MULTILINE)
    assert pod["spec"]["securityContext"]["runAsUser"] == int(user.group(1))
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


# Dockerfile instructions (the reference's list) and the flags each may take.
INSTRUCTIONS = {
    "FROM": {"platform"},
    "RUN": {"mount", "network", "security"},
    "CMD": set(),
    "LABEL": set(),
    "EXPOSE": set(),
    "ENV": set(),
    "ADD": {"chown", "chmod", "checksum", "keep-git-dir", "link", "exclude"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ENTRYPOINT": set(),
    "VOLUME": set(),
    "USER": set(),
    "WORKDIR": set(),
    "ARG": set(),
    "ONBUILD": set(),
    "STOPSIGNAL": set(),
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
    "SHELL": set(),
}


def containerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        word, _, args = whole.strip().partition(" ")
        out.append((word, args.strip()))
    assert not pending, "a continuation line at the end"
    return out


def test_containerfile_instructions_are_valid():
    doc = blocks("deploying-django.md")
    instructions = containerfile_instructions(doc["Containerfile"])
    assert instructions[0][0] == "FROM"
    stages = set()
    for word, args in instructions:
        assert word in INSTRUCTIONS, f"not a Containerfile instruction: {word}"
        assert args, f"{word} without arguments"
        # Flags come first, written --name=value; each must be one the instruction takes.
        leading = re.match(r"((?:--[a-z-]+=\S+\s+)*)", args).group(1)
        flags = set(re.findall(r"--([a-z-]+)=", leading))
        assert flags <= INSTRUCTIONS[word], f"{word}: {flags}"
        if word == "FROM":
            m = re.fullmatch(r"(\S+)(?: AS (\S+))?", args)
            assert m, args
            stages.add(m.group(2))
        if word == "COPY" and args.startswith("--from="):
            assert args.split()[0].removeprefix("--from=") in stages
        if word in ("CMD", "ENTRYPOINT"):
            assert isinstance(json.loads(args), list)
        if word == "HEALTHCHECK":
            assert isinstance(json.loads(args.split(" CMD ", 1)[1]), list)
        if word == "USER":
            user = args.split(":")[0]
            assert user not in ("root", "0"), "the image runs as root"
        if word == "EXPOSE":
            assert {p for p in args.split()} == {"8000", "9100"}
        if word == "WORKDIR":
            assert args == SRV
    words = [w for w, _ in instructions]
    last_run = max(i for i, w in enumerate(words) if w == "RUN")
    assert words.count("USER") == 1 and words.index("USER") > last_run
    assert "HEALTHCHECK" in words and words[-1] == "CMD"
    # Broken input is caught: an unknown instruction.
    with pytest.raises(AssertionError):
        assert containerfile_instructions("FROM x\nRUNN true")[1][0] in INSTRUCTIONS


# -- docs/migrating-from-uwsgi.md and docs/migrating-from-gunicorn.md ------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example Django site at a /srv/mysite of its own: copied, migrated, collected."""
    root = tmp_path_factory.mktemp("migrate") / "mysite"
    shutil.copytree(
        SITE,
        root,
        ignore=shutil.ignore_patterns("db.sqlite3", "staticfiles", "media", "__pycache__", "*.log"),
    )
    (root / "venv").symlink_to(VENV)
    env = site_env(root)
    for args in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        r = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=root,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 0, r.stderr
    return root


def site_env(root: Path) -> dict[str, str]:
    return {
        "DJANGO_DB_PATH": str(root / "db.sqlite3"),
        "DJANGO_STATIC_ROOT": str(root / "static"),
        "DJANGO_MEDIA_ROOT": str(root / "media"),
    }


def test_the_uwsgi_ini_before_is_refused_as_the_page_says(site, tmp_path):
    doc = blocks("migrating-from-uwsgi.md")
    ini = site / "uwsgi.ini"
    ini.write_text(localise(doc["uwsgi-before"], site))
    r = bash(f"venv/bin/dragoman --check --ini {ini}", cwd=site, env=site_env(site))
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr == localise(doc["uwsgi-check-output"], site)
    # The errors name the lines of the file where gevent and route are.
    lines = doc["uwsgi-before"].splitlines()
    for option in ("gevent", "route"):
        number = next(i for i, line in enumerate(lines, 1) if line.startswith(f"{option} ="))
        assert re.search(
            rf"uwsgi\.ini line {number}: (uWSGI )?option '{option}' is refused", r.stderr
        )
    # Without the two refused lines it passes, with a warning about cache2.
    kept = tmp_path / "uwsgi.ini"
    kept.write_text(
        localise(
            "".join(f"{line}\n" for line in lines if not line.startswith(("gevent", "route"))),
            site,
        )
    )
    r = bash(f"venv/bin/dragoman --check --ini {kept}", cwd=site, env=site_env(site))
    assert r.returncode == 0, r.stdout + r.stderr
    number = next(i for i, line in enumerate(lines, 1) if line.startswith("cache2 ="))
    assert f"uWSGI option 'cache2' ({kept} line {number}) is not implemented" in r.stderr


def test_the_uwsgi_ini_after_serves_the_example_site(site, launch):
    doc = blocks("migrating-from-uwsgi.md")
    before = doc["uwsgi-before"].splitlines()
    after = doc["uwsgi-after"].splitlines()
    # "Three lines out, two in; everything else is the same file" (and three comments).
    removed = [line for line in before if line not in after]
    added = [line for line in after if line not in before and not line.startswith("#")]
    assert [line.split(" =")[0] for line in removed] == ["cache2", "gevent", "route"]
    assert [line.split(" =")[0] for line in added] == ["health-check", "metrics"]
    ini = site / "uwsgi.ini"
    ini.write_text(localise(doc["uwsgi-after"], site, {8000: 0, 9100: 0, 9191: 0}))
    server = launch(
        ["venv/bin/dragoman", "--ini", str(ini)], cwd=site, env=site_env(site), workers=4
    )
    # http-socket = :8000 became :0, every interface; ask on loopback.
    url = f"http://127.0.0.1:{server.port}"
    r = httpx.get(f"{url}/admin/login/")
    assert r.status_code == 200 and "Django administration" in r.text
    r = httpx.get(f"{url}/static/admin/css/base.css")
    assert r.status_code == 200 and "max-age=7776000" in r.headers["cache-control"]
    assert httpx.get(f"{url}/healthz").status_code == 200
    # The uwsgi socket for nginx is there too, and the request lines (written in batches) use
    # the ini's log-format.
    assert f"listening on uwsgi unix:{site}/mysite.sock" in server.log()
    server.wait_for_log(r'127\.0\.0\.1 - - \[.+\] "GET /admin/login/ HTTP/1\.1" 200 \d+ ')
    assert server.stop() == 0


def uwsgi_catalogue() -> dict[str, str]:
    """Each uWSGI option's class, from configuration.md's generated table."""
    rows = re.findall(
        r"^\| `([^`]+)` \| ([^|]+) \|", (DOCS / "configuration.md").read_text(), re.MULTILINE
    )
    return {name: cls.strip() for name, cls in rows}


def test_the_uwsgi_tables_agree_with_the_catalogue():
    catalogue = uwsgi_catalogue()
    assert len(catalogue) > 1300
    sections = {
        "Maps unchanged": {"implemented"},
        "Accepted, nothing to do": {"covered by design"},
        "Not implemented": {"not implemented (warning)", "accepted, not in effect yet"},
        "Refused": {"refused"},
    }
    text = (DOCS / "migrating-from-uwsgi.md").read_text()
    checked = 0
    for part in re.split(r"^### ", text, flags=re.MULTILINE)[1:]:
        title = part.splitlines()[0]
        classes = next((c for t, c in sections.items() if title.startswith(t)), None)
        if classes is None:
            continue
        for first_cell in re.findall(r"^\| (`[^|]+) \|", part, re.MULTILINE):
            if " with " in first_cell:
                continue  # `route` with basicauth: refused by its value, checked above
            for name in re.findall(r"`([^`]+)`", first_cell):
                assert catalogue.get(name) in classes, f"{title}: {name} is {catalogue.get(name)}"
                checked += 1
    assert checked > 40


def gunicorn_argv(block: str, root: Path) -> list[str]:
    return shlex.split(localise(block, root).replace("\\\n", " "))


def test_gunicorn_itself_takes_the_command_line_before(site):
    doc = blocks("migrating-from-gunicorn.md")
    argv = gunicorn_argv(doc["gunicorn-before"], site)
    assert argv[0] == "gunicorn"
    r = subprocess.run(
        [str(VENV / "bin" / "gunicorn"), *argv[1:], "--check-config"],
        cwd=site,
        env=clean_env(site_env(site)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_dragoman_refuses_the_gunicorn_command_line_as_the_page_says(site):
    doc = blocks("migrating-from-gunicorn.md")
    argv = gunicorn_argv(doc["gunicorn-before"], site)
    r = subprocess.run(
        [str(VENV / "bin" / "dragoman"), *argv[1:]],
        cwd=site,
        env=clean_env(site_env(site)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == doc["gunicorn-before-output"].strip()


def test_the_gunicorn_command_line_after_serves_the_example_site(site, launch):
    doc = blocks("migrating-from-gunicorn.md")
    before = gunicorn_argv(doc["gunicorn-before"], site)
    argv = gunicorn_argv(doc["gunicorn-after"], site)
    assert argv[0] == "dragoman"
    # Every option the page keeps is gunicorn's own flag, as it was.
    kept = [a for a in argv[1:] if a.startswith("--")]
    assert set(kept) - set(before) == {"--max-requests-delta", "--static-map"}
    argv[argv.index("--bind") + 1] = "127.0.0.1:0"
    server = launch(
        [str(VENV / "bin" / "dragoman"), *argv[1:]], cwd=site, env=site_env(site), workers=4
    )
    r = httpx.get(f"{server.url}/admin/login/")
    assert r.status_code == 200 and "Django administration" in r.text
    assert httpx.get(f"{server.url}/static/admin/css/base.css").status_code == 200
    # forwarded-allow-ips '*': a proxy's X-Forwarded-For is the client in the request line.
    httpx.get(f"{server.url}/admin/login/", headers={"X-Forwarded-For": "203.0.113.7"})
    server.wait_for_log(r"203\.0\.113\.7 .*GET /admin/login/")
    assert server.stop() == 0


def test_the_gunicorn_ini_is_the_command_line(site):
    doc = blocks("migrating-from-gunicorn.md")
    ini = site / "gunicorn-converted.ini"
    ini.write_text(localise(doc["gunicorn-ini"], site))
    from_ini = print_config_of(site, ["--ini", str(ini)])
    from_cli = print_config_of(site, gunicorn_argv(doc["gunicorn-after"], site)[1:])
    assert from_ini == from_cli
    assert from_ini["processes"] == "4" and from_ini["harakiri"] == "60"


def print_config_of(root: Path, args: list[str]) -> dict[str, str]:
    r = subprocess.run(
        [str(VENV / "bin" / "dragoman"), "--print-config", *args],
        cwd=root,
        env=clean_env(site_env(root)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^([a-z0-9-]+) = (.*?)\s+; ", line)
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out
