"""ASGI over HTTP (docs/asgi.md): the scope checked against asgiref's spec, request bodies as
http.request messages, responses complete, streamed (with backpressure) or sent from a file,
trailers, http.disconnect, lifespan with state, the event loop choice, interface = auto, and
the rules a bad application breaks (500 or a cut connection, with a log line naming it)."""

import collections.abc
import json
import socket
import time
import types
import typing
from pathlib import Path

import httpx
import pytest
from conftest import parse_responses, raw_exchange, raw_exchange_closed

try:
    # On 3.10 asgiref marks optional keys with typing_extensions.NotRequired, which only
    # typing_extensions' get_type_hints strips (asgiref needs typing_extensions there).
    from typing_extensions import get_type_hints
except ImportError:
    from typing import get_type_hints

APP = "asgi_app:app"


def start(dragoman, tmp_path, *args, env=None, **kw):
    marks = tmp_path / "marks.txt"
    marks.write_text("")
    server = dragoman("--asgi", APP, *args, env={"ASGI_MARKS": str(marks), **(env or {})}, **kw)
    server.marks = marks
    return server


def wait_mark(server, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        marks = server.marks.read_text()
        if text in marks:
            return marks
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not marked after {timeout}s: {server.marks.read_text()!r}")


def check_typed_dict(value: dict, typed: type, where: str) -> None:
    """The keys and value types of `value` against one of asgiref.typing's TypedDicts."""
    hints = get_type_hints(typed)
    required = typed.__required_keys__
    for key in required:
        assert key in value, f"{where}: the spec requires {key!r}"
    for key, v in value.items():
        assert key in hints, f"{where}: {key!r} is not in the spec"
        check_type(v, hints[key], f"{where}[{key!r}]")


def check_type(v, hint, where: str) -> None:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any:
        return
    if origin is typing.Literal:
        assert v in args, f"{where}: {v!r} not one of {args}"
    elif origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            try:
                check_type(v, a, where)
                return
            except AssertionError as e:
                errors.append(str(e))
        raise AssertionError(f"{where}: {v!r} matches none of {args}: {errors}")
    elif origin in (collections.abc.Iterable, list, tuple):
        assert isinstance(v, list), f"{where}: {v!r} is not a list"
        if origin is tuple and args and args[-1] is not Ellipsis:
            assert len(v) == len(args), f"{where}: {v!r} has not {len(args)} items"
            for x, a in zip(v, args):
                check_type(x, a, where)
        elif args:
            for x in v:
                check_type(x, args[0], where)
    elif origin is dict or hint is dict:
        assert isinstance(v, dict), f"{where}: {v!r} is not a dict"
    elif typing.is_typeddict(hint):
        check_typed_dict(v, hint, where)
    elif hint is bytes:
        # Sent as JSON: bytes arrive decoded as latin-1 text, and were checked to be bytes.
        assert isinstance(v, str), f"{where}: {v!r}"
    elif hint is type(None):
        assert v is None, f"{where}: {v!r}"
    else:
        assert isinstance(v, hint), f"{where}: {v!r} is not {hint}"


def scope_of(server, path="/scope?a=1&b=%20", headers=None, http2=False) -> dict:
    if http2:
        with httpx.Client(http1=False, http2=True) as client:
            r = client.get(server.url + path, headers=headers)
    else:
        r = httpx.get(server.url + path, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["scope"]


def test_the_scope_is_complete_and_as_asgiref_types_it(dragoman, tmp_path):
    asgiref_typing = pytest.importorskip("asgiref.typing")
    server = start(dragoman, tmp_path, "--http2-cleartext")
    with socket.create_connection((server.host, server.port)) as s:
        local = s.getsockname()
        s.sendall(
            b"GET /scope/caf%C3%A9/x%2Fy?a=1&b=%20 HTTP/1.1\r\nHost: Example.COM:81\r\n"
            b"X-Two: 1\r\nx-two: 2\r\nCookie: a=1\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    (resp,) = parse_responses(data)
    scope = json.loads(resp.body)["scope"]
    # The spec's own types (asgiref.typing.HTTPScope), key by key.
    check_typed_dict(scope, asgiref_typing.HTTPScope, "scope")
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/café/x/y"
    assert scope["raw_path"] == "/scope/caf%C3%A9/x%2Fy"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == ""
    assert scope["headers"] == [
        ["host", "Example.COM:81"],
        ["x-two", "1"],
        ["x-two", "2"],
        ["cookie", "a=1"],
        ["connection", "close"],
    ]
    assert scope["client"] == ["127.0.0.1", local[1]]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"]["started"] == "yes"
    assert scope["extensions"] == {"http.response.trailers": {}, "http.response.pathsend": {}}
    # HTTP/2 (h2c with prior knowledge), HTTP/1.0, HEAD and POST.
    h2 = scope_of(server, http2=True)
    assert h2["http_version"] == "2"
    assert ["host", f"{server.host}:{server.port}"] in h2["headers"]
    check_typed_dict(h2, asgiref_typing.HTTPScope, "h2 scope")
    raw = raw_exchange(server.host, server.port, b"GET /scope HTTP/1.0\r\n\r\n")
    (resp,) = parse_responses(raw)
    assert json.loads(resp.body)["scope"]["http_version"] == "1.0"
    r = httpx.post(server.url + "/scope", content=b"x")
    assert r.json()["scope"]["method"] == "POST"


def test_request_bodies_arrive_as_http_request_messages(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    r = httpx.post(server.url + "/echo", content=b"small body")
    assert (r.status_code, r.content, r.headers["x-messages"]) == (200, b"small body", "1")
    # Past post-buffering (64 KiB) the body is spooled and handed out 64 KiB at a time.
    big = bytes(range(256)) * 1024
    r = httpx.post(server.url + "/echo", content=big)
    assert r.content == big
    assert r.headers["x-messages"] == str(len(big) // 65536)

    def chunks():
        for i in range(5):
            yield b"chunk%d;" % i

    r = httpx.post(server.url + "/echo", content=chunks())
    assert r.content == b"chunk0;chunk1;chunk2;chunk3;chunk4;"
    r = httpx.get(server.url + "/echo")
    assert (r.content, r.headers["x-messages"]) == (b"", "1")
    # limit-post holds for ASGI too.
    limited = start(dragoman, tmp_path, "--limit-post", "100")
    r = httpx.post(limited.url + "/echo", content=b"x" * 101)
    assert r.status_code == 413


def test_lifespan_state_reaches_requests_and_shutdown_runs(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    r = httpx.get(server.url + "/state")
    assert r.json() == {"started": "yes", "loop": "uvloop"}
    assert "lifespan startup spec=2.0" in server.marks.read_text()
    assert server.stop() == 0
    assert "lifespan shutdown" in server.marks.read_text()
    assert "ASGI lifespan: shutdown complete" in server.log()


@pytest.mark.parametrize(
    ("loop", "seen"), [("asyncio", "asyncio.unix_events"), ("uvloop", "uvloop")]
)
def test_the_event_loop_is_the_one_asked_for(dragoman, tmp_path, loop, seen):
    server = start(dragoman, tmp_path, "--loop", loop)
    assert httpx.get(server.url + "/state").json()["loop"] == seen
    assert f"runs on an {loop} event loop" in server.log()


def test_a_lifespan_startup_failure_stops_dragoman_at_startup(dragoman, tmp_path):
    server = start(dragoman, tmp_path, env={"LIFESPAN": "fail"}, wait=False)
    assert server.proc.wait(30) != 0
    log = server.log()
    assert "lifespan startup failed: no database on purpose" in log
    assert "could not load the application" in log


def test_an_app_without_lifespan_is_served_under_auto_and_refused_under_on(dragoman, tmp_path):
    server = start(dragoman, tmp_path, env={"LIFESPAN": "raise"})
    assert "does not take part" in server.log()
    assert "RuntimeError: the lifespan raised on purpose" in server.log()
    r = httpx.get(server.url + "/state")
    assert r.status_code == 200 and r.json() is None
    on = start(dragoman, tmp_path, "--lifespan", "on", env={"LIFESPAN": "raise"}, wait=False)
    assert on.proc.wait(30) != 0
    assert "lifespan = on, but the application did not complete" in on.log()
    off = start(dragoman, tmp_path, "--lifespan", "off", env={"LIFESPAN": "fail"})
    assert httpx.get(off.url + "/state").json() is None


def test_interface_auto_tells_asgi_from_wsgi(dragoman, tmp_path):
    asgi = dragoman(APP, "--interface", "auto")
    assert "serving asgi_app:app as an ASGI application" in asgi.log()
    assert httpx.get(asgi.url + "/echo").status_code == 200
    wsgi = dragoman("echo:application", "--interface", "auto")
    assert "is served as a WSGI application" in wsgi.log()
    assert httpx.get(wsgi.url + "/x").json()["PATH_INFO"] == "/x"
    # Without --interface, `module` stays WSGI: an ASGI callable called as WSGI fails.
    plain = dragoman(APP)
    assert httpx.get(plain.url + "/echo").status_code == 500


def test_streamed_responses_arrive_as_they_are_sent(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    arrivals = []
    with httpx.stream("GET", server.url + "/stream?n=4&size=3&delay=0.3") as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    body = b"".join(c for _, c in arrivals)
    assert body == b"000111222333"
    # Not all at once at the end: the first chunk came well before the last.
    assert arrivals[-1][0] - arrivals[0][0] > 0.6
    r = httpx.get(server.url + "/length?declared=5&actual=5")
    assert (r.status_code, r.content) == (200, b"xxxxx")
    r = httpx.head(server.url + "/stream")
    assert (r.status_code, r.content) == (200, b"")


def test_a_slow_reader_does_not_hold_the_app_and_one_that_never_reads_is_bounded(
    dragoman, tmp_path
):
    # 64 KiB chunks, 32 MiB in all; the pipe takes 4 MiB ahead of the client.
    server = start(dragoman, tmp_path, "--response-buffer", str(4 << 20))
    with socket.create_connection((server.host, server.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /produce?n=512&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(2)
        marks = server.marks.read_text()
        produced = max(int(line.split()[-1]) for line in marks.split("\n") if "produced" in line)
        # The client read nothing: the application went on up to the pipe's buffer (4 MiB),
        # the channel's high-water mark and the socket buffers, then had to wait.
        assert 64 <= produced < 256, marks
        assert "produced all" not in marks
        # Now it reads everything, and the application finishes.
        s.settimeout(10)
        total = 0
        while total < 512 * 65536:
            chunk = s.recv(1 << 20)
            assert chunk
            total += len(chunk)
    wait_mark(server, "produced all 512")


def test_the_app_hears_http_disconnect(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"GET /until-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        seen = b""
        while b"tick" not in seen:
            chunk = s.recv(4096)
            assert chunk, seen
            seen += chunk
    marks = wait_mark(server, "received http.disconnect")
    # The application went on sending after the client left: send() raised OSError, and
    # that was not logged as an error of the application.
    assert "error in the application" not in server.log()
    # After a complete response, receive() gives http.disconnect at once.
    assert httpx.get(server.url + "/after-response").content == b"done"
    wait_mark(server, "after response: http.disconnect")
    assert marks


def test_trailers_follow_the_body_when_the_client_asks(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    raw = raw_exchange(
        server.host,
        server.port,
        b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"trailer: x-checksum" in head.lower()
    assert rest.endswith(b"0\r\nx-checksum: abc123\r\n\r\n"), rest
    assert b"part1 " in rest and b"part2" in rest
    # Without TE: trailers, the body alone.
    r = httpx.get(server.url + "/trailers")
    assert r.content == b"part1 part2"


def test_pathsend_sends_the_file(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    f = tmp_path / "big.bin"
    data = bytes(range(256)) * 4096
    f.write_bytes(data)
    r = httpx.get(server.url + f"/pathsend?file={f}")
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data))
    assert r.content == data
    r = httpx.get(server.url + f"/pathsend?file={tmp_path}/missing")
    # The application itself raised (os.path.getsize): a 500 with its traceback.
    assert r.status_code == 500


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/bad/no-response", "it returned without sending a response"),
        ("/bad/start-only", "it returned after http.response.start without sending the body"),
        ("/bad/body-before-start", "it sent http.response.body before http.response.start"),
        ("/bad/status", '"status" must be an int'),
        ("/bad/header", "header names must be byte strings"),
        ("/bad/hop", '"connection" is a hop-by-hop header'),
        ("/bad/unknown", 'it sent a message of unknown type "http.response.teapot"'),
        ("/length?declared=5&actual=6", "the response has 6 bytes but its Content-Length"),
        ("/status?code=99", '"status" must be between 200 and 599'),
    ],
)
def test_a_bad_app_gets_a_500_and_a_log_line_naming_the_rule(dragoman, tmp_path, path, rule):
    server = start(dragoman, tmp_path)
    r = httpx.get(server.url + path)
    assert r.status_code == 500
    log = server.wait_for_log("broke ASGI").string
    assert f"the application {APP} broke ASGI while serving GET {path}: {rule}" in log, log
    # The worker serves on.
    assert httpx.get(server.url + "/echo").status_code == 200


def test_an_app_that_raises_or_stops_midway(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    r = httpx.get(server.url + "/bad/raise")
    assert r.status_code == 500
    log = server.wait_for_log("ValueError: the view raised on purpose").string
    assert f"error in the application {APP} while serving GET /bad/raise:" in log
    # Once the response began, the connection is cut: the client can tell.
    for path, expected in [
        ("/bad/raise-midway", "raised after the start on purpose"),
        ("/bad/unfinished", "it returned before the end of its response"),
    ]:
        data, closed = raw_exchange_closed(
            server.host, server.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        assert closed and b"begun" in data and not data.endswith(b"0\r\n\r\n"), data
        server.wait_for_log(expected)
    # A send after the end: the response is whole, the app gets a RuntimeError, and it is
    # logged.
    r = httpx.get(server.url + "/bad/after-end")
    assert (r.status_code, r.content) == (200, b"complete")
    wait_mark(server, "after-end raised RuntimeError")
    server.wait_for_log("it sent http.response.body after the response was complete")


def test_many_requests_at_once_share_the_one_loop(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    started = time.monotonic()
    with httpx.Client(limits=httpx.Limits(max_connections=50)) as client:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(lambda _: client.get(server.url + "/sleep?s=1"), range(20)))
    # Twenty one-second sleeps, concurrently on one worker's loop: about a second.
    assert all(r.content == b"slept" for r in results)
    assert time.monotonic() - started < 5


def test_the_loop_thread_runs_in_the_batch_scheduling_class(dragoman, tmp_path):
    # The loop thread's wake-ups must not preempt the I/O thread (docs/asgi.md, "How it
    # runs"); the I/O thread keeps normal scheduling. Field 41 of /proc/PID/task/TID/stat is
    # the policy: 0 SCHED_OTHER, 3 SCHED_BATCH.
    server = start(dragoman, tmp_path)
    assert httpx.get(server.url + "/echo").status_code == 200
    policies = {}
    for worker in server.worker_pids():
        for task in Path(f"/proc/{worker}/task").iterdir():
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            policies[name] = int(fields[41 - 3])
    assert policies.get("dragoman-asgi") == 3, policies
    assert all(p == 0 for n, p in policies.items() if n != "dragoman-asgi"), policies


def test_the_worker_stops_cleanly(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    assert httpx.get(server.url + "/echo").status_code == 200
    assert server.stop() == 0
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_an_app_that_imports_nothing_runs_on_either_loop(dragoman, loop):
    server = dragoman("--asgi", "asgi_bare:application", "--loop", loop)
    assert httpx.get(server.url + "/").content == b"bare"
    assert "the event loop stopped" not in server.log()


def test_preloaded_in_the_master_with_two_workers(dragoman, tmp_path):
    server = start(dragoman, tmp_path, "--preload", "--processes", "2", workers=2)
    assert server.log().count("ASGI: the application runs on an uvloop event loop") == 2
    for _ in range(4):
        assert httpx.get(server.url + "/state").json()["started"] == "yes"
    assert server.stop() == 0
    assert server.marks.read_text().count("lifespan shutdown") == 2
