"""Hostile clients: limits (414, 431, 413 before the body and the 100 Continue), slow clients
(slowloris, idle keep-alive, a stalled body, a client that stops reading), the per-worker caps
(connections, queued requests), and request smuggling. After each, the worker keeps serving."""

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import parse_responses, raw_exchange


def status_of(data: bytes) -> int:
    assert data.startswith(b"HTTP/1."), data[:100]
    return int(data.split(b" ", 2)[1])


def still_serving(server) -> None:
    assert httpx.get(f"{server.url}/pid", timeout=10).status_code == 200


def test_request_line_too_long_is_414(dragoman):
    server = dragoman("rules:application", "--limit-request-line", "100")
    assert httpx.get(f"{server.url}/pid?{'a' * 50}").status_code == 200
    data = raw_exchange(
        server.host, server.port, f"GET /pid?{'a' * 200} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status_of(data) == 414
    still_serving(server)


def test_header_block_and_field_count_limits_are_431(dragoman):
    server = dragoman("rules:application", "--buffer-size", "2048", "--limit-request-fields", "10")
    big = "".join(f"X-Filler-{i}: {'v' * 100}\r\n" for i in range(15)).encode()
    data = raw_exchange(server.host, server.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert status_of(data) == 431
    many = "".join(f"X-{i}: v\r\n" for i in range(12)).encode()
    data = raw_exchange(server.host, server.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(data) == 431
    still_serving(server)


def test_limit_post_answers_413_before_the_body_and_the_100_continue(dragoman):
    server = dragoman("rules:application", "--limit-post", "1000")
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(
            b"POST /input?op=read HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        data = s.recv(65536)  # no body was sent: the answer comes at once
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert b"100 Continue" not in data
    assert b"limit-post (1000 bytes)" in data

    def chunks():
        for _ in range(10):
            yield b"x" * 500

    r = httpx.post(f"{server.url}/input?op=count", content=chunks())
    assert r.status_code == 413
    assert httpx.post(f"{server.url}/input?op=count", content=b"y" * 900).json() == ["900"]
    still_serving(server)


def test_slowloris_is_cut_off_and_others_are_served(dragoman):
    server = dragoman("rules:application", "--header-timeout", "2")
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        closed = False
        for i in range(40):
            try:
                s.sendall(f"X-Slow-{i}: v\r\n".encode())
            except OSError:
                closed = True
                break
            # Meanwhile, an ordinary client is served at once.
            if i == 2:
                t = time.monotonic()
                still_serving(server)
                assert time.monotonic() - t < 1
            s.settimeout(0.25)
            try:
                if s.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except OSError:
                closed = True
                break
        elapsed = time.monotonic() - start
    assert closed, "the slow client was never cut off"
    assert elapsed < 5, elapsed


def test_idle_keep_alive_connections_are_closed(dragoman):
    server = dragoman("rules:application", "--header-timeout", "1")
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        assert s.recv(65536) == b""  # the server closes the idle connection
        assert time.monotonic() - start < 3


def test_header_timeout_counts_only_while_waiting_for_a_head(dragoman):
    """header-timeout runs from when a connection is ready for a request head (opened, or the
    last byte of its last response written) until the head arrives, never while a request is
    served: an app slower than the timeout, a response written for longer than the timeout,
    and a client sending a request more often than the timeout all keep their connection;
    once idle it closes after the timeout (within the sweep's quarter)."""
    server = dragoman("rules:application", "--header-timeout", "1")
    size = 32 * 1024 * 1024
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        # The app takes 1.5 s: longer than the timeout.
        s.sendall(b"GET /sleep?t=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        (r,) = parse_responses(read_response(s), ["GET"])
        assert r.status == 200 and b"pid" in r.body
        # 32 MiB read at most 64 KiB per 5 ms: the server writes for well over the timeout
        # (its socket buffer holds a few MiB of it at the end).
        s.sendall(f"GET /big?size={size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        start = time.monotonic()
        got = bytearray()
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        body = len(got) - got.index(b"\r\n\r\n") - 4
        while body < size:
            chunk = s.recv(65536)
            assert chunk, f"cut off after {body} bytes, {time.monotonic() - start:.1f} s"
            body += len(chunk)
            time.sleep(0.005)
        assert body == size
        assert time.monotonic() - start > 2
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        # A request every 0.4 s for 2.4 s: each resets the wait.
        for _ in range(6):
            time.sleep(0.4)
            s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
            (r,) = parse_responses(read_response(s), ["GET"])
            assert r.status == 200 and r.body.isdigit()
        # Idle: closed after the timeout, not before.
        start = time.monotonic()
        assert s.recv(65536) == b""
        assert 0.8 < time.monotonic() - start < 3


def read_response(s: socket.socket) -> bytes:
    """One response with a Content-Length body, read whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_stalled_chunked_body_gets_408(dragoman):
    server = dragoman("rules:application", "--body-timeout", "1")
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(
            b"POST /input?op=count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        start = time.monotonic()
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert time.monotonic() - start < 4
    still_serving(server)


def test_a_stalled_streamed_body_raises_in_the_app(dragoman):
    server = dragoman(
        "rules:application", "--body-timeout", "1", "--threads", "2", "--post-buffering", "0"
    )
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(
            b"POST /input?op=count HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
            + b"a" * 1000
        )
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 500 "), data
    server.wait_for_log(
        r"OSError: the client sent nothing of the request body for 1s \(body-timeout\)"
    )
    still_serving(server)


@pytest.mark.parametrize("source", ["app", "static-file", "file-wrapper"])
def test_a_client_that_stops_reading_is_dropped_after_write_timeout(dragoman, tmp_path, source):
    """Whatever the body is made of: the app's bytes, or a file going out with sendfile."""
    size = 200 * 1024 * 1024
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(size)
    server = dragoman(
        "rules:application", "--write-timeout", "2", "--static-map", f"/files={tmp_path}"
    )
    target = {
        "app": f"/big?size={size}",
        "static-file": "/files/big.bin",
        "file-wrapper": f"/file-wrapper?file={big}",
    }[source]
    with socket.create_connection((server.host, server.port), timeout=30) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        # Not reading: the server's writes stall, and after write-timeout it gives up.
        server.wait_for_log(
            r"dropped the connection to 127\.0\.0\.1:\d+: it took nothing of the response for 2s"
        )
        still_serving(server)
        # The connection was aborted, not left to trickle the rest of the body.
        got = 0
        s.settimeout(5)
        start = time.monotonic()
        try:
            while chunk := s.recv(1 << 20):
                got += len(chunk)
        except OSError:
            pass
        assert time.monotonic() - start < 5
    assert got < size


def test_idle_keep_alive_connections_do_not_starve_new_ones(dragoman):
    server = dragoman("rules:application", "--max-connections", "5", "--header-timeout", "60")
    idle = []
    for _ in range(5):
        s = socket.create_connection((server.host, server.port), timeout=5)
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        idle.append(s)
    try:
        start = time.monotonic()
        for _ in range(3):
            r = httpx.get(f"{server.url}/pid", headers={"Connection": "close"}, timeout=5)
            assert r.status_code == 200
        # Idle for a second, the keep-alive connections make room: no wait beyond that.
        assert time.monotonic() - start < 3
        closed = 0
        for s in idle:
            s.settimeout(0.5)
            try:
                if s.recv(10) == b"":
                    closed += 1
            except TimeoutError:
                pass
        assert closed >= 1  # an idle connection made room
    finally:
        for s in idle:
            s.close()


def test_a_flood_of_connections_is_capped(dragoman):
    server = dragoman("rules:application", "--max-connections", "50", "--header-timeout", "30")
    (pid,) = server.worker_pids()
    socks = []
    try:
        for _ in range(400):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((server.host, server.port))
            socks.append(s)
        time.sleep(1)
        fds = len(list((__import__("pathlib").Path(f"/proc/{pid}/fd")).iterdir()))
        assert fds < 120, f"the worker holds {fds} fds for a flood of 400 connections"
        # The flood's queued connections go first, about 50 a second as idle ones are
        # evicted: this one waits its turn (about 7 s), then is served.
        assert httpx.get(f"{server.url}/pid", timeout=30).status_code == 200
    finally:
        for s in socks:
            s.close()


def test_beyond_the_request_queue_comes_503_with_retry_after(dragoman):
    server = dragoman("rules:application", "--threads", "2", "--request-queue", "1")
    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(lambda _: httpx.get(f"{server.url}/sleep?t=1", timeout=10), range(6))
        )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) >= 3 and 503 in statuses, statuses
    refused = next(r for r in results if r.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    still_serving(server)


def test_content_length_with_transfer_encoding_is_refused(dragoman):
    server = dragoman("echo:application")
    smuggle = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    data = raw_exchange(server.host, server.port, smuggle)
    assert status_of(data) == 400
    assert b"/smuggled" not in data and data.count(b"HTTP/1.1 ") == 1
    # Pipelined behind a valid request: the first is answered, the hostile one refused.
    data = raw_exchange(
        server.host, server.port, b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n" + smuggle
    )
    first, refused = parse_responses(data)
    assert json.loads(first.body)["PATH_INFO"] == "/first"
    assert refused.status == 400
    server.wait_for_log("both Content-Length and Transfer-Encoding")
    still_serving(server)


def test_smuggling_variants_are_refused(dragoman):
    server = dragoman("echo:application")
    for request in (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/3.0\r\nHost: x\r\n\r\n",
    ):
        data = raw_exchange(server.host, server.port, request)
        assert status_of(data) == 400, (request, data[:80])
    still_serving(server)


def test_bare_lf_and_malformed_chunk_extensions_are_refused(dragoman):
    """A bare LF ending a line of a head or of trailers, and a chunk extension out of its
    grammar: each gets 400 (a proxy in front may read them differently), the application
    never sees the request, and the worker keeps serving."""
    server = dragoman("echo:application")
    chunked = b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for request, why in (
        (b"GET /h HTTP/1.1\r\nHost: x\r\nDummy: x\nContent-Length: 0\r\n\r\n", "bare LF"),
        (b"GET /h HTTP/1.1\nHost: x\r\n\r\n", "bare LF"),
        (chunked + b"0\r\nTrailer: a\nGET /t HTTP/1.1\r\n\r\n", "bare LF"),
        (chunked + b"3;\x01\r\nabc\r\n0\r\n\r\n", "chunk extension"),
        (chunked + b"2;\r\nab\r\n0\r\n\r\n", "chunk extension"),
    ):
        data = raw_exchange(server.host, server.port, request)
        assert status_of(data) == 400, (request, data[:200])
        assert b"PATH_INFO" not in data, "the application must not see it"
        server.wait_for_log(f"refused a request from .* with .*{why}")
    # Extensions in their grammar are fine.
    data = raw_exchange(
        server.host,
        server.port,
        chunked + b'3;a=1;b="x y"\r\nabc\r\n0\r\nTrailer: t\r\n\r\n',
    )
    assert status_of(data) == 200
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["body_base64"] == "YWJj"
    still_serving(server)


def test_many_concurrent_clients_with_faults_leave_the_worker_serving(dragoman):
    server = dragoman("rules:application", "--header-timeout", "2", "--max-connections", "64")
    stop = time.monotonic() + 4
    errors = []

    def normal():
        with httpx.Client(timeout=10) as c:
            while time.monotonic() < stop:
                try:
                    status = c.get(f"{server.url}/pid").status_code
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                if status != 200:
                    errors.append(f"status {status}")

    def vanish():
        while time.monotonic() < stop:
            with socket.create_connection((server.host, server.port)) as s:
                s.sendall(
                    b"POST /input?op=count HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\nabc"
                )

    threads = [threading.Thread(target=f) for f in (normal, normal, vanish)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    still_serving(server)
