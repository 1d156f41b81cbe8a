"""uWSGI's `mount` and `manage-script-name`: several WSGI applications in one process, each
under a URL prefix; the longest prefix on a path-segment boundary wins, SCRIPT_NAME is the
prefix and PATH_INFO the rest; a request no mount takes goes to the main application."""

import json
from pathlib import Path

import httpx
import pytest
from conftest import APPS, parse_responses, run_dragoman
from test_uwsgi import packet, uwsgi_exchange


def site(tmp_path: Path, body: str, name: str = "site.ini") -> Path:
    ini = tmp_path / name
    ini.write_text(f"[uwsgi]\nchdir = {APPS}\n{body}")
    return ini


MOUNTS = """\
module = mount_apps:main
mount = /app1=mount_apps:app1
mount = /app1/admin=mount_apps:admin
mount = /app2={APPS}/mount_file_app.py
mount = /links=mount_apps:links
manage-script-name = true
"""


def get(client: httpx.Client, path: str) -> dict:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def where(client: httpx.Client, path: str) -> tuple[str, str, str]:
    data = get(client, path)
    return data["app"], data["script_name"], data["path_info"]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_the_longest_prefix_on_a_segment_boundary_serves_with_script_name_and_path_info(
    dragoman, tmp_path, threads
):
    ini = site(tmp_path, MOUNTS.format(APPS=APPS))
    server = dragoman("--ini", str(ini), "--threads", threads)
    with httpx.Client(base_url=server.url) as c:
        assert where(c, "/app1/x/y") == ("app1", "/app1", "/x/y")
        # The prefix alone: PATH_INFO empty, as uWSGI gives it; with the slash, "/".
        assert where(c, "/app1") == ("app1", "/app1", "")
        assert where(c, "/app1/") == ("app1", "/app1", "/")
        # The longest prefix wins, in whatever order the mounts were given.
        assert where(c, "/app1/admin/users") == ("admin", "/app1/admin", "/users")
        assert where(c, "/app1/admin") == ("admin", "/app1/admin", "")
        assert where(c, "/app1/administrator") == ("app1", "/app1", "/administrator")
        # A segment boundary: /app10 and /app2x are not under /app1 and /app2.
        assert where(c, "/app10") == ("main", "", "/app10")
        assert where(c, "/app2x/y") == ("main", "", "/app2x/y")
        # A mount from a Python file; the query is the query.
        data = get(c, "/app2/search?q=a+b")
        assert (data["app"], data["script_name"], data["path_info"]) == ("file", "/app2", "/search")
        assert data["query"] == "q=a+b"
        # No mount takes it: the main application, SCRIPT_NAME empty.
        assert where(c, "/") == ("main", "", "/")
        assert where(c, "/other/app1") == ("main", "", "/other/app1")
        # The path is percent-decoded before it is routed, as uWSGI routes PATH_INFO.
        assert where(c, "/app1/a%20b") == ("app1", "/app1", "/a b")
        assert where(c, "/app1%2Fadmin/x") == ("admin", "/app1/admin", "/x")
        # One keep-alive connection, one application after another: nothing carries over.
        for _ in range(2):
            assert where(c, "/app1/k") == ("app1", "/app1", "/k")
            assert where(c, "/k") == ("main", "", "/k")
        data = get(c, "/app1/z?x=1")
        assert data["request_uri"] == "/app1/z?x=1"
        # A body reaches the mounted application (the path that reads bodies first).
        response = c.post("/app1/form", content=b"a=1&b=2")
        assert response.json()["body"] == "a=1&b=2"
        assert response.json()["app"] == "app1"
    log = server.log()
    assert "not yet in effect" not in log, log
    assert "manage-script-name" not in log, log


def test_an_application_builds_its_urls_from_script_name(dragoman, tmp_path):
    ini = site(tmp_path, MOUNTS.format(APPS=APPS))
    server = dragoman("--ini", str(ini))
    with httpx.Client(base_url=server.url) as c:
        response = c.get("/links/")
        assert response.status_code == 302
        assert response.headers["location"] == "/links/login"
        response = c.get("/links/login")
        assert response.text == '<a href="/links/logout">log out</a> of /links'


def test_mounts_load_in_every_worker_and_with_preload(dragoman, tmp_path):
    ini = site(tmp_path, MOUNTS.format(APPS=APPS) + "processes = 2\n")
    for extra in ([], ["--preload"], ["--lazy-apps"]):
        server = dragoman("--ini", str(ini), *extra, workers=2)
        with httpx.Client(base_url=server.url) as c:
            for _ in range(6):
                assert where(c, "/app1/admin/x") == ("admin", "/app1/admin", "/x")
                assert where(c, "/app2") == ("file", "/app2", "")
                assert where(c, "/x") == ("main", "", "/x")
        server.stop()


def test_without_a_main_application_the_first_mount_serves_the_rest_or_404(dragoman, tmp_path):
    # uWSGI's "default app": the first mount loaded serves what no mount takes.
    body = "mount = /app1=mount_apps:app1\nmount = /b=mount_apps:admin\nmanage-script-name = true\n"
    server = dragoman("--ini", str(site(tmp_path, body)))
    with httpx.Client(base_url=server.url) as c:
        assert where(c, "/app1/x") == ("app1", "/app1", "/x")
        assert where(c, "/b") == ("admin", "/b", "")
        assert where(c, "/elsewhere") == ("app1", "", "/elsewhere")
    assert "no-default-app = true" in server.log()
    # no-default-app (as arXiv's ini sets it): a 404 instead.
    ini = site(tmp_path, body + "no-default-app = true\n", "strict.ini")
    server = dragoman("--ini", str(ini))
    with httpx.Client(base_url=server.url) as c:
        assert where(c, "/app1/x") == ("app1", "/app1", "/x")
        for path in ("/", "/elsewhere", "/app10", "/b2"):
            response = c.get(path)
            assert response.status_code == 404, (path, response.text)
        head = c.head("/nothing")
        assert head.status_code == 404


def test_a_mount_at_the_root_is_the_main_application(dragoman, tmp_path):
    # As agateau/tmc2 and desklab/doku write it.
    body = "mount = /=mount_apps:main\nmount = /app1=mount_apps:app1\nmanage-script-name = true\n"
    server = dragoman("--ini", str(site(tmp_path, body)))
    with httpx.Client(base_url=server.url) as c:
        assert where(c, "/x") == ("main", "", "/x")
        assert where(c, "/app1/x") == ("app1", "/app1", "/x")
    assert "no-default-app" not in server.log()
    # patchwork's: module, and the same module mounted at the root: served once, no warning.
    body = "module = mount_apps:main\nmount = /=mount_apps:main\nmanage-script-name = true\n"
    server = dragoman("--ini", str(site(tmp_path, body, "patchwork.ini")))
    assert where(httpx.Client(base_url=server.url), "/a") == ("main", "", "/a")
    assert "warning" not in server.log().lower(), server.log()


def test_manage_script_name_with_only_a_main_application_strips_nothing(dragoman, tmp_path):
    server = dragoman(
        "--ini", str(site(tmp_path, "module = mount_apps:main\nmanage-script-name\n"))
    )
    assert where(httpx.Client(base_url=server.url), "/a/b") == ("main", "", "/a/b")
    assert "not yet in effect" not in server.log()


def test_mount_without_manage_script_name_routes_by_prefix_and_says_so(dragoman, tmp_path):
    ini = site(tmp_path, "module = mount_apps:main\nmount = /app1=mount_apps:app1\n")
    server = dragoman("--ini", str(ini))
    with httpx.Client(base_url=server.url) as c:
        assert where(c, "/app1/x") == ("app1", "/app1", "/x")
        assert where(c, "/x") == ("main", "", "/x")
    log = server.log()
    assert f"{ini} line 4: `mount` without `manage-script-name = true`" in log, log
    assert log.count("without `manage-script-name = true`") == 1


def test_a_mount_that_does_not_import_stops_dragoman_with_the_traceback(tmp_path):
    ini = site(
        tmp_path, "module = mount_apps:main\nmount = /x=broken_import\nmanage-script-name = 1\n"
    )
    out = run_dragoman("--ini", str(ini), "--http", "127.0.0.1:0", "--processes", "2", timeout=60)
    assert out.returncode == 1, out.stderr
    assert "Traceback (most recent call last)" in out.stderr
    assert (
        f"could not load the WSGI application broken_import:application (mount /x) ({ini} line 4): "
        "ModuleNotFoundError: No module named 'this_module_does_not_exist'" in out.stderr
    ), out.stderr
    assert "exiting" in out.stderr.splitlines()[-1]
    # With preload, the master stops before forking.
    out = run_dragoman("--ini", str(ini), "--http", "127.0.0.1:0", "--preload", timeout=60)
    assert out.returncode == 1 and "(mount /x)" in out.stderr, out.stderr
    # dragoman --check says it too.
    out = run_dragoman("--check", "--ini", str(ini), timeout=60)
    assert out.returncode == 1 and "(mount /x)" in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("api.wsgi", "expects PREFIX=APP: a URL prefix starting with `/`"),
        ("api=api.wsgi", "expects PREFIX=APP: a URL prefix starting with `/`"),
        ("/api=", "expects PREFIX=APP: a URL prefix starting with `/`"),
        ("/api=my-api:app", "the application a module, module:callable or a Python file"),
        ("/api=config.ini", "does not load PasteDeploy .ini applications"),
    ],
)
def test_a_bad_mount_is_a_config_error_with_file_line_and_fix(tmp_path, value, expected):
    ini = site(tmp_path, f"module = mount_apps:main\n\nmount = {value}\n")
    out = run_dragoman("--ini", str(ini))
    assert out.returncode == 2, (out.returncode, out.stderr)
    err = out.stderr.strip()
    assert err.startswith(f"dragoman: error: {ini} line 5: option 'mount' "), err
    assert expected in err, err
    assert "mount = /api=api.wsgi:application" in err, err
    assert "Traceback" not in err


def test_mount_beside_an_asgi_application_is_refused(tmp_path):
    ini = site(tmp_path, "asgi = asgi_app:application\nmount = /w=mount_apps:app1\n")
    out = run_dragoman("--ini", str(ini))
    assert out.returncode == 2, (out.returncode, out.stderr)
    err = out.stderr.strip()
    assert f"{ini} line 4: option 'mount' (/w=mount_apps:app1)" in err, err
    assert f"served as ASGI (`asgi = asgi_app:application` at {ini} line 3)" in err, err
    assert "Fix:" in err, err


def test_over_the_uwsgi_protocol_the_mount_replaces_nginxs_script_name(dragoman, tmp_path):
    ini = site(tmp_path, MOUNTS.format(APPS=APPS))
    server = dragoman("--ini", str(ini), "--socket", "127.0.0.1:0")

    def ask(variables: dict[str, str], modifier1: int = 0) -> dict:
        base = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "x.test"}
        data = uwsgi_exchange(server.uwsgi_addresses[0], packet(base | variables, modifier1))
        (response,) = parse_responses(data)
        assert response.status == 200, response
        return json.loads(response.body)

    # nginx's stock uwsgi_params: PATH_INFO the whole path, SCRIPT_NAME empty.
    got = ask({"REQUEST_URI": "/app1/x", "PATH_INFO": "/app1/x", "SCRIPT_NAME": ""})
    assert (got["app"], got["script_name"], got["path_info"]) == ("app1", "/app1", "/x")
    # SCRIPT_NAME set in nginx and stripped with modifier1 30: the same application and split.
    got = ask({"REQUEST_URI": "/app1/x", "PATH_INFO": "/app1/x", "SCRIPT_NAME": "/app1"}, 30)
    assert (got["app"], got["script_name"], got["path_info"]) == ("app1", "/app1", "/x")
    # The main application keeps what nginx sent.
    got = ask({"REQUEST_URI": "/site/y", "PATH_INFO": "/y", "SCRIPT_NAME": "/site"})
    assert (got["app"], got["script_name"], got["path_info"]) == ("main", "/site", "/y")
