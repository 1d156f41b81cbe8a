"""PEP 3333 as the application sees it: environ, wsgi.input, start_response, the response
iterable, close(), wsgi.errors, wsgi.file_wrapper, errors in the app, and threads."""

import base64
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import parse_responses, raw_exchange

CGI_KEYS = [
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REQUEST_URI",
]


def raw_echo(server, request: bytes) -> dict:
    (resp,) = parse_responses(raw_exchange(server.host, server.port, request))
    assert resp.status == 200, resp
    return json.loads(resp.body)


def test_environ_has_every_required_key(dragoman):
    server = dragoman("echo:application")
    with socket.create_connection((server.host, server.port)) as s:
        local_port = s.getsockname()[1]
        s.sendall(b"GET /p?a=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    (resp,) = parse_responses(data)
    env = json.loads(resp.body)
    for key in CGI_KEYS:
        assert isinstance(env.get(key), str), key
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["QUERY_STRING"] == "a=1"
    assert env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == "8080"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["has_file_wrapper"] is True
    assert env["errors_type"] == "ErrorStream"
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env


def test_each_request_of_a_keep_alive_connection_gets_its_own_environ(dragoman):
    """Later requests on a connection start from what its first request shares (REMOTE_*,
    SERVER_*, method, protocol), never from its headers, query or body: every environ on one
    connection equals the environ of the same request sent alone, REMOTE_PORT aside."""
    server = dragoman("echo:application")
    requests = [
        (
            b"POST /a?x=1 HTTP/1.1\r\nHost: one.example:8080\r\nX-Foo: first\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        ),
        b"GET /b HTTP/1.1\r\nHost: two.example\r\n\r\n",
        b"GET /c?y=2 HTTP/1.1\r\nHost: one.example:8080\r\nCookie: a=b\r\n\r\n",
        b"PURGE /d HTTP/1.1\r\nHost: one.example:8080\r\n\r\n",
        b"GET /e HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET /f HTTP/1.1\r\nHost: one.example:8080\r\n\r\n",
    ]
    together = parse_responses(raw_exchange(server.host, server.port, b"".join(requests)))
    assert [r.status for r in together] == [200] * len(requests)
    for request, response in zip(requests, together, strict=True):
        shared = json.loads(response.body)
        alone = raw_echo(server, request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
        for env in (shared, alone):
            env.pop("REMOTE_PORT")
            env.pop("HTTP_CONNECTION", None)
            env["environ_keys"] = [k for k in env["environ_keys"] if k != "HTTP_CONNECTION"]
        assert shared == alone, request
    first, second = json.loads(together[0].body), json.loads(together[1].body)
    assert first["HTTP_X_FOO"] == "first" and "HTTP_X_FOO" not in second
    assert "CONTENT_TYPE" not in second and second["QUERY_STRING"] == ""
    assert second["SERVER_NAME"] == "two.example" and second["SERVER_PORT"] == "80"


def test_server_name_without_host_is_the_socket_address(dragoman):
    server = dragoman("echo:application")
    env = raw_echo(server, b"GET / HTTP/1.0\r\n\r\n")
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)


def test_multiprocess_and_multithread_flags(dragoman):
    server = dragoman("echo:application", "--processes", "2", "--threads", "3", workers=2)
    env = httpx.get(server.url).json()
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is True


def test_headers_map_to_http_keys(dragoman):
    server = dragoman("echo:application")
    env = raw_echo(
        server,
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Custom-Thing: one\r\nAccept: a/b\r\nAccept: c/d\r\n"
        b"Cookie: a=1\r\nCookie: b=2\r\nX-Forwarded-For: 10.0.0.1\r\nX_Forwarded_For: 6.6.6.6\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 2\r\nX-Latin: caf\xe9\r\n\r\nhi",
    )
    assert env["HTTP_X_CUSTOM_THING"] == "one"
    assert env["HTTP_ACCEPT"] == "a/b, c/d"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    # A name with "_" would collide with X-Forwarded-For: dropped, the real header kept.
    assert env["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_X_LATIN"] == "caf\xe9"  # latin-1, per PEP 3333


def test_request_uri_is_raw_and_path_info_is_decoded_latin1(dragoman):
    server = dragoman("echo:application")
    env = raw_echo(server, b"GET /caf%C3%A9/%E9/a%2Fb?x=%20y HTTP/1.1\r\nHost: x\r\n\r\n")
    assert env["REQUEST_URI"] == "/caf%C3%A9/%E9/a%2Fb?x=%20y"
    assert env["PATH_INFO"] == "/caf\xc3\xa9/\xe9/a/b"
    assert env["QUERY_STRING"] == "x=%20y"
    # What a framework does with it: the UTF-8 bytes come back intact.
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8", "replace").startswith("/café/")


def test_raw_bytes_in_the_target_arrive_as_latin1_strings(dragoman):
    # Found by the environ fuzz target: raw UTF-8 in the query (which hyper accepts) went into
    # QUERY_STRING decoded as UTF-8, so Django's .encode("latin-1") of it raised.
    server = dragoman("echo:application")
    env = raw_echo(server, "GET /δ?q=δ¶ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    for key in ("QUERY_STRING", "REQUEST_URI", "PATH_INFO"):
        assert all(ord(c) < 256 for c in env[key]), (key, env[key])
    assert env["QUERY_STRING"].encode("latin-1").decode() == "q=δ¶"
    assert env["PATH_INFO"].encode("latin-1").decode() == "/δ"
    assert env["REQUEST_URI"].encode("latin-1").decode() == "/δ?q=δ¶"


@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("size", [1000, 200_000], ids=["buffered-body", "streamed-body"])
def test_wsgi_input_methods(dragoman, threads, size):
    server = dragoman("rules:application", "--threads", str(threads))
    lines = [b"line %06d %s\n" % (i, b"x" * (i % 50)) for i in range(10_000)]
    body = b"".join(lines)[:size]
    url = f"{server.url}/input"
    with httpx.Client(timeout=30) as c:
        assert (
            "".join(c.post(url, params={"op": "read"}, content=body).json()).encode("latin-1")
            == body
        )
        parts = c.post(url, params={"op": "read-n", "n": "777"}, content=body).json()
        assert all(len(p) == 777 for p in parts[:-1]) and len(parts[-1]) <= 777
        assert "".join(parts).encode("latin-1") == body
        got = c.post(url, params={"op": "readline"}, content=body).json()
        assert [g.encode("latin-1") for g in got] == body.splitlines(keepends=True)
        got = c.post(url, params={"op": "readline", "limit": "7"}, content=body).json()
        assert all(len(g) <= 7 for g in got) and "".join(got).encode("latin-1") == body
        got = c.post(url, params={"op": "readlines"}, content=body).json()
        assert [g.encode("latin-1") for g in got] == body.splitlines(keepends=True)
        got = c.post(url, params={"op": "readlines", "hint": "100"}, content=body).json()
        assert 1 <= len(got) <= 10 and sum(map(len, got)) >= 100
        got = c.post(url, params={"op": "iter"}, content=body).json()
        assert [g.encode("latin-1") for g in got] == body.splitlines(keepends=True)


def _rss_kib(pid: int, field: str = "VmHWM") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.parametrize("threads", [1, 4])
def test_large_upload_is_streamed_not_buffered(dragoman, threads):
    """A 128 MiB upload read in 64 KiB pieces moves the worker's peak RSS by far less."""
    server = dragoman("rules:application", "--threads", str(threads))
    (pid,) = server.worker_pids()
    with httpx.Client(timeout=60) as c:
        c.get(f"{server.url}/pid")
        before = _rss_kib(pid)
        size = 128 * 1024 * 1024
        block = b"\xab" * (1024 * 1024)

        def gen():
            for _ in range(size // len(block)):
                yield block

        r = c.post(
            f"{server.url}/input?op=count",
            content=gen(),
            headers={"Content-Length": str(size)},
        )
    assert r.json() == [str(size)]
    grown_mib = (_rss_kib(pid) - before) / 1024
    assert grown_mib < 32, f"peak RSS grew by {grown_mib:.1f} MiB for a 128 MiB upload"


def test_start_response_during_first_iteration(dragoman):
    server = dragoman("rules:application")
    r = httpx.get(f"{server.url}/gen")
    assert r.status_code == 200 and r.text == "part 0\npart 1\npart 2\n"


@pytest.mark.parametrize("threads", [1, 4])
def test_write_callable(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    r = httpx.get(f"{server.url}/write")
    assert r.status_code == 200
    assert r.text == "written then returned"


def test_exc_info_replaces_the_response_before_headers_are_sent(dragoman):
    server = dragoman("rules:application")
    r = httpx.get(f"{server.url}/exc-info-before")
    assert r.status_code == 503 and r.reason_phrase == "Try Later"
    assert r.text == "replaced"


@pytest.mark.parametrize("threads", [1, 4])
def test_exc_info_after_headers_reraises_and_cuts_the_connection(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/exc-info-after")
    server.wait_for_log(r"ValueError: too late")
    assert httpx.get(f"{server.url}/pid").status_code == 200


def test_custom_reason_phrase(dragoman):
    server = dragoman("rules:application")
    data = raw_exchange(server.host, server.port, b"GET /reason HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 299 Custom Reason\r\n")


def test_repeated_response_headers_are_kept(dragoman):
    server = dragoman("rules:application")
    r = httpx.get(f"{server.url}/cookies")
    assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_a_list_response_has_content_length(dragoman):
    server = dragoman("rules:application")
    r = httpx.get(f"{server.url}/big?size=5000")
    assert r.headers["content-length"] == "5000"
    assert "transfer-encoding" not in r.headers


@pytest.mark.parametrize("threads", [1, 4])
def test_response_chunks_arrive_intact_and_are_released(dragoman, threads):
    # Chunks of 1 KiB and more are sent from the application's bytes objects without a copy.
    # Each must arrive exactly, even when the app dropped its own reference long before the
    # write, and the server must let go of every one once written.
    server = dragoman("rules:application", "--threads", str(threads))
    with httpx.Client(base_url=server.url) as client:
        before = int(client.get("/refcount").text)
        for size in (8, 1024, 65536, 1 << 20):
            expected = b"".join((b"%07d\n" % i) * (size // 8) for i in range(4))
            for via in ("gen", "write"):
                for _ in range(3):
                    r = client.get("/lent", params={"via": via, "size": size})
                    assert r.status_code == 200
                    assert r.content == expected, (via, size)
        shared = bytes(range(256)) * 64
        for _ in range(50):
            assert client.get("/lent").content == shared
        # Released references are dropped when a thread next enters the interpreter: the
        # next request at the latest.
        client.get("/refcount")
        assert int(client.get("/refcount").text) == before


@pytest.mark.parametrize("threads", [1, 4])
def test_the_applications_content_length_goes_out_once(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    for target in ("/declared", "/declared?via=gen", "/declared?name=content-LENGTH"):
        for method in ("GET", "HEAD"):
            data = raw_exchange(
                server.host,
                server.port,
                f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
            )
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            assert lines[0] == b"http/1.1 200 ok", (method, target, head)
            assert [x for x in lines if x.startswith(b"content-length:")] == [
                b"content-length: 13"
            ], (method, target, head)
            assert not any(x.startswith(b"transfer-encoding") for x in lines)
            assert body == (b"declared body" if method == "GET" else b""), (method, target)


VIOLATIONS = [
    ("/twice", "start_response() was called a second time without exc_info"),
    ("/twice-swallowed", "start_response() was called a second time without exc_info"),
    ("/hop", "hop-by-hop header"),
    ("/nonlatin", "must be latin-1 text"),
    ("/badstatus", "three digits, a space and a reason phrase"),
    ("/str-body", "the response body must be bytes"),
    ("/noniterable", "must return an iterable of bytes"),
    ("/no-start", "returned without calling start_response()"),
    ("/cl-mismatch", "its Content-Length header says 100"),
]


@pytest.mark.parametrize("threads", [1, 4])
def test_pep3333_violations_give_500_a_log_line_and_a_live_worker(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    pid = httpx.get(f"{server.url}/pid").text
    for path, rule in VIOLATIONS:
        r = httpx.get(server.url + path)
        assert r.status_code == 500, (path, r.text)
        line = server.wait_for_log(rf"\[ERROR\] .*{path}.*")
        assert "rules:application" in line.group(0)
        server.wait_for_log(re.escape(rule))
        assert httpx.get(f"{server.url}/pid").text == pid


@pytest.mark.parametrize("threads", [1, 4])
def test_more_bytes_than_content_length_before_sending_is_a_500(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    assert httpx.get(f"{server.url}/cl-over-at-once").status_code == 500
    server.wait_for_log(
        "GET /cl-over-at-once: the application sent more bytes than its Content-Length"
    )


@pytest.mark.parametrize("threads", [1, 4])
def test_more_bytes_than_content_length_midstream_cuts_the_connection(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/cl-over-midstream")
    server.wait_for_log(
        "GET /cl-over-midstream: the application sent more bytes than its Content-Length"
    )
    assert httpx.get(f"{server.url}/pid").status_code == 200


@pytest.mark.parametrize("threads", [1, 4])
def test_exception_gives_500_traceback_and_the_worker_goes_on(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    pid = httpx.get(f"{server.url}/pid").text
    r = httpx.get(f"{server.url}/raise")
    assert r.status_code == 500
    server.wait_for_log(r"error in the application rules:application while serving GET /raise")
    log = server.wait_for_log(
        r"(?s)Traceback \(most recent call last\):.*rules\.py.*deliberate failure in /raise"
    )
    assert log
    assert httpx.get(f"{server.url}/pid").text == pid


@pytest.mark.parametrize("threads", [1, 4])
def test_exception_mid_stream_closes_the_connection(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/raise-midstream")
    server.wait_for_log("deliberate failure mid-stream")
    assert httpx.get(f"{server.url}/pid").status_code == 200


@pytest.mark.parametrize("threads", [1, 4])
def test_a_close_that_raises(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    pid = httpx.get(f"{server.url}/pid").text
    # Nothing sent yet (the list is in memory): 500.
    assert httpx.get(f"{server.url}/close-raises-list").status_code == 500
    # Streamed: the bytes went out, so the connection is cut (no final chunk).
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/close-raises")
    server.wait_for_log(
        r"(?s)the application rules:application broke PEP 3333 while serving GET /close-raises-list: "
        r"close\(\) of its response raised.*deliberate failure in close\(\)"
    )
    server.wait_for_log(
        r"broke PEP 3333 while serving GET /close-raises: close\(\) of its response raised"
    )
    assert httpx.get(f"{server.url}/pid").text == pid


@pytest.mark.parametrize("threads", [1, 4])
def test_a_list_or_tuple_subclass_with_its_own_iter_is_iterated(dragoman, threads):
    # PEP 3333: the server iterates the returned object; a subclass's __iter__ decides what
    # goes out, not the items the sequence stores.
    server = dragoman("rules:application", "--threads", str(threads))
    for kind in ("list", "tuple"):
        assert httpx.get(f"{server.url}/own-iter-{kind}").text == "from __iter__"


def test_start_response_state_never_leaks_into_the_next_request_of_a_connection(dragoman):
    """One connection, requests that leave start_response in every state: each next request
    starts afresh, and a start_response or write() kept past its request stays that
    request's (the server reuses the pair only while nothing else holds it)."""
    server = dragoman("rules:application")
    paths = ["/twice-swallowed", "/write", "/pid", "/exc-info-before", "/keep", "/kept", "/pid"]
    requests = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() for p in paths)
    responses = parse_responses(raw_exchange(server.host, server.port, requests))
    got = [(r.status, r.body) for r in responses]
    pid = got[2][1]
    assert got == [
        (500, b"500 Internal Server Error\n"),
        (200, b"written then returned"),
        (200, pid),
        (503, b"replaced"),
        (200, b"kept"),
        (200, b"same=False late=refused"),
        (200, pid),
    ]


def test_no_request_waits_for_the_servers_own_imports(dragoman):
    """What dragoman asks of Python once (whether this CPython is free-threaded, which
    imports sysconfig, about 0.8 ms) it asks while the app loads, not when the first
    keep-alive connection's second request reuses start_response."""
    server = dragoman("rules:application")
    assert httpx.get(f"{server.url}/imported?name=sysconfig").text == "yes"
    assert httpx.get(f"{server.url}/imported?name=no_such_module").text == "no"


def closed_count(server) -> int:
    return int(httpx.get(f"{server.url}/closed").text)


@pytest.mark.parametrize("threads", [1, 4])
def test_close_is_called_exactly_once(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    assert closed_count(server) == 0
    assert httpx.get(f"{server.url}/closeable").text == "abc"
    assert closed_count(server) == 1
    assert httpx.get(f"{server.url}/closeable").text == "abc"
    data = raw_exchange(server.host, server.port, b"HEAD /closeable HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")
    time.sleep(0.2)
    assert closed_count(server) == 3


@pytest.mark.parametrize("threads", [1, 4])
def test_close_is_called_when_the_client_disconnects_mid_response(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 1_000_000:
            received += len(s.recv(65536))
    deadline = time.monotonic() + 10
    while closed_count(server) != 1:
        assert time.monotonic() < deadline, "close() not called after the client left"
        time.sleep(0.1)
    time.sleep(0.3)
    assert closed_count(server) == 1


def test_wsgi_errors_go_to_the_log(dragoman):
    server = dragoman("rules:application")
    assert httpx.get(f"{server.url}/errors").text == "logged"
    server.wait_for_log(r"\[ERROR\] a line for wsgi.errors")
    server.wait_for_log(r"\[ERROR\] two parts")


@pytest.mark.parametrize("threads", [1, 4])
def test_file_wrapper_sends_the_file_and_closes_it(dragoman, tmp_path, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    path = tmp_path / "data.bin"
    content = bytes(range(256)) * 400
    path.write_bytes(content)
    r = httpx.get(f"{server.url}/file-wrapper", params={"file": str(path)})
    assert r.content == content
    assert httpx.get(f"{server.url}/file-closed").text == "True"


def test_threads_run_requests_concurrently_in_one_process(dragoman):
    server = dragoman("rules:application", "--threads", "4")
    with ThreadPoolExecutor(4) as pool:
        start = time.monotonic()
        results = list(
            pool.map(lambda _: httpx.get(f"{server.url}/sleep?t=1", timeout=10).json(), range(4))
        )
        elapsed = time.monotonic() - start
    assert len({r["pid"] for r in results}) == 1
    assert len({r["thread"] for r in results}) == 4
    assert elapsed < 3.5, f"4 one-second requests on 4 threads took {elapsed:.1f}s"


def test_one_thread_serves_one_request_at_a_time(dragoman):
    server = dragoman("rules:application")
    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(lambda _: httpx.get(f"{server.url}/sleep?t=0.3", timeout=10).json(), range(3))
        )
    assert len({r["thread"] for r in results}) == 1


def test_body_of_the_echo_is_exact(dragoman):
    server = dragoman("echo:application")
    body = bytes(range(256)) * 10
    env = httpx.post(server.url, content=body).json()
    assert base64.b64decode(env["body_base64"]) == body
    assert env["CONTENT_LENGTH"] == str(len(body))


@pytest.mark.parametrize("threads", [1, 2])
def test_client_gone_mid_upload_raises_in_the_app_and_the_worker_goes_on(dragoman, threads):
    # post-buffering = 0: the body is streamed to the application as it reads.
    server = dragoman("rules:application", "--threads", str(threads), "--post-buffering", "0")
    pid = httpx.get(f"{server.url}/pid").text
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"POST /input?op=count HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        s.sendall(b"a" * 100_000)
    server.wait_for_log(r"OSError: the client stopped sending the request body")
    assert httpx.get(f"{server.url}/pid").text == pid


@pytest.mark.parametrize("threads", [1, 4])
def test_a_slow_generator_reaches_the_client_chunk_by_chunk(dragoman, threads):
    server = dragoman("rules:application", "--threads", str(threads))
    arrivals = []
    with httpx.stream("GET", f"{server.url}/stream?n=4&delay=0.3", timeout=10) as r:
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    assert b"".join(c for _, c in arrivals) == b"line 0\nline 1\nline 2\nline 3\n"
    # The first line is on the client's side long before the last is produced.
    assert arrivals[-1][0] - arrivals[0][0] > 0.6


def test_with_one_thread_a_request_waits_while_a_stalled_response_holds_the_app(dragoman):
    # threads = 1: the app runs on the event-loop thread, one request at a time. A generator
    # that runs a response-buffer ahead of a client that does not read waits, and keeps the
    # app; a request on another connection is called once that response is over (here: its
    # client leaves).
    server = dragoman("rules:application", "--threads", "1", "--response-buffer", "1048576")
    stalled = socket.create_connection((server.host, server.port))
    stalled.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
    assert stalled.recv(100).startswith(b"HTTP/1.1 200")
    time.sleep(0.5)  # the socket buffers fill; the generator waits
    post = socket.create_connection((server.host, server.port))
    with socket.create_connection((server.host, server.port)) as waiting, post:
        waiting.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        # A small body, read with its head (the app would be called at once if it were free).
        post.sendall(b"POST /input HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        for s in (waiting, post):
            s.settimeout(0.5)
            with pytest.raises(TimeoutError):
                s.recv(100)
        stalled.close()
        waiting.settimeout(10)
        assert waiting.recv(100).startswith(b"HTTP/1.1 200")
        post.settimeout(10)
        answer = b""
        while b'["hello"]' not in answer and (chunk := post.recv(1000)):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'["hello"]'), answer
    assert closed_count(server) == 1
