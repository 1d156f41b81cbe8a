"""uWSGI options of the request path that a site's ini may carry: add-header,
wsgi-disable-file-wrapper, socket-timeout and http-timeout."""

import json
import socket
import time

import httpx
from conftest import raw_exchange


def test_add_header_reaches_application_and_static_responses(dragoman, tmp_path):
    (tmp_path / "a.css").write_text("a{}\n")
    server = dragoman(
        "echo:application",
        "--add-header",
        "X-Frame-Options: DENY",
        "--add-header",
        "X-Served-By: dragoman",
        "--static-map",
        f"/static={tmp_path}",
    )
    for path in ("/", "/static/a.css"):
        r = httpx.get(f"{server.url}{path}")
        assert r.status_code == 200
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-served-by"] == "dragoman", path


def test_add_header_skips_the_connection_headers_with_a_warning(dragoman):
    # Real inis add `Connection: close` or `Connection: Keep-Alive` for uWSGI's router: they
    # load, the line is skipped with a warning, and the connection follows HTTP/1.1's rules.
    server = dragoman(
        "echo:application",
        "--add-header",
        "Connection: close",
        "--add-header",
        "X-Kept: yes",
    )
    server.wait_for_log(r"add-header connection: not added")
    with httpx.Client() as client:
        for _ in range(2):
            r = client.get(server.url)
            assert r.headers["x-kept"] == "yes"
            assert r.headers.get("connection") != "close"
    bad = dragoman("echo:application", "--add-header", "no colon here", wait=False)
    assert bad.proc.wait(30) == 2
    assert "add-header" in bad.log() and "NAME: VALUE" in bad.log()


def test_wsgi_disable_file_wrapper(dragoman):
    on = dragoman("echo:application")
    off = dragoman("echo:application", "--wsgi-disable-file-wrapper")
    assert httpx.get(on.url).json()["has_file_wrapper"] is True
    assert httpx.get(off.url).json()["has_file_wrapper"] is False


def test_socket_timeout_sets_the_body_timeout(dragoman):
    # socket-timeout = 1: a body that stalls gets its 408 after about a second (the default
    # body-timeout is 60 s).
    server = dragoman("rules:application", "--socket-timeout", "1")
    start = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /input HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert time.monotonic() - start < 5
    # An explicit body-timeout wins.
    server = dragoman("rules:application", "--socket-timeout", "1", "--body-timeout", "30")
    data = raw_exchange(
        server.host, server.port, b"POST /input HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"
    )
    assert json.loads(data.split(b"\r\n\r\n", 1)[1]) == ["ab"]


def test_a_start_script_with_uwsgi_command_line_options_runs_unchanged(dragoman, tmp_path):
    # As Slicer's bin/start runs uWSGI: the ini expects its placeholders from the command line,
    # and uWSGI's own flags come along (`--ignore-sigpipe` takes no value, so the argument
    # after it is not swallowed).
    ini = tmp_path / "uwsgi.ini"
    ini.write_text(
        "[uwsgi]\n# expected placeholders: http_host, http_port, app\n"
        "http = %(http_host):%(http_port)\nmodule = %(app)\nmaster = true\n"
    )
    server = dragoman(
        "--ini",
        str(ini),
        "--ignore-sigpipe",
        "--set-placeholder",
        "http_host=127.0.0.1",
        "--set-placeholder",
        "http_port=0",
        "--set-ph=app=echo:application",
        "--offload-threads",
        "2",
        http=None,
    )
    assert server.host == "127.0.0.1"
    r = httpx.get(f"{server.url}/hello")
    assert r.status_code == 200 and r.json()["PATH_INFO"] == "/hello"
    log = server.log()
    assert "'ignore-sigpipe' (command line option --ignore-sigpipe) has nothing to do" in log
    assert "'offload-threads'" in log
