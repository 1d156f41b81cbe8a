"""The connection's own HTTP/1 path (src/http/fast.rs) answers requests without a body, and
small bodies framed by one Content-Length that come with their head; hyper answers the rest. A
client must not be able to tell which one answered.

Each request here goes out twice on fresh connections: as it is (the own path takes it) and
with `Content-Length: 0` added (which the own path leaves to hyper; the app sees the same
request), each followed by a request that asks to close, so a kept connection shows as its
answer. The raw bytes that come back must be the same, but for the Date value.

Responses cut short by the app (an exception mid-stream, a body that does not match its
Content-Length) are compared more loosely on a threaded worker: when the failure reaches hyper
before it wrote what it had gathered, it drops those bytes, so either may have sent more of a
response that is cut either way.
"""

import json
import re
import socket
import time

import pytest
from conftest import raw_exchange_closed

DATE = re.compile(rb"\r\ndate: [^\r]*\r\n")


def exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """Sends `data`; returns what came back (Date masked) and whether the server closed."""
    raw, closed = raw_exchange_closed("127.0.0.1", port, data, idle=3.0)
    assert raw.count(b"\r\ndate: ") == len(DATE.findall(raw))
    return DATE.sub(b"\r\ndate: -\r\n", raw), closed


def head(method: str, target: str, version: str, extra: list[str], hyper: bool) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: t", *extra]
    if hyper:
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


TARGETS = [
    "/",  # a 404 from the app
    "/reason",  # a custom reason phrase
    "/hop",  # the app's Connection header is dropped
    "/cookies",  # a repeated header
    "/gen",  # a generator: chunked on HTTP/1.1, until the close on HTTP/1.0
    "/write",  # write() then the iterable
    "/stream?n=40",
    "/lent?via=gen&size=4096",
    "/declared",
    "/declared?via=gen",  # a streamed body with the app's Content-Length
    "/cl-over-at-once",
    "/raise",  # a 500
    "/noniterable",
    "/big?size=300000",
    "/file-wrapper-bytesio",
    "/static/page.html",  # a static file (sendfile)
    "/static/missing",
]

# Cut short: shorter than its Content-Length, longer, an exception after the first chunk.
CUT = ["/cl-mismatch", "/cl-over-midstream", "/raise-midstream"]

# Asks to close: answered only if the connection was kept after the request before it.
LAST = b"GET /reason HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

VARIANTS = [
    ("GET", "1.1", []),
    ("HEAD", "1.1", []),
    ("GET", "1.1", ["Connection: close"]),
    ("GET", "1.0", []),
    ("GET", "1.0", ["Connection: keep-alive"]),
    ("HEAD", "1.0", ["Connection: keep-alive"]),
]


@pytest.fixture(params=[1, 4], ids=["threads1", "threads4"])
def server(request, dragoman, tmp_path):
    request.node.threads = request.param
    root = tmp_path / "static"
    root.mkdir()
    (root / "page.html").write_bytes(b"<p>static</p>\n" * 300)
    return dragoman(
        "rules:application",
        "--threads",
        str(request.param),
        "--static-map",
        f"/static={root}",
    )


def test_own_path_and_hyper_answer_alike(server, request):
    compared = 0
    kept = 0
    for target in TARGETS + CUT:
        for method, version, extra in VARIANTS:
            own = exchange(server.port, head(method, target, version, extra, False) + LAST)
            by_hyper = exchange(server.port, head(method, target, version, extra, True) + LAST)
            what = f"{method} {target} HTTP/{version} {extra}"
            assert own[0].startswith(b"HTTP/1."), what
            assert own[1] and by_hyper[1], what
            if target in CUT and request.node.threads > 1:
                shorter, longer = sorted((own[0], by_hyper[0]), key=len)
                assert longer.startswith(shorter), what
            else:
                assert own == by_hyper, what
            kept += own[0].count(b"HTTP/1.1 299 Custom Reason") - (target == "/reason")
            compared += 1
    # The keep-alive variants kept their connection for most targets.
    assert kept >= len(TARGETS) * 2
    # Conditional and range requests of a static file, and a pipelined pair.
    etag = None
    raw, _ = exchange(server.port, head("GET", "/static/page.html", "1.1", [], False))
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"etag:"):
            etag = line.split(b":", 1)[1].strip().decode()
    assert etag
    for extra in ([f"If-None-Match: {etag}"], ["Range: bytes=10-99"], ["Range: bytes=9999-"]):
        own = exchange(server.port, head("GET", "/static/page.html", "1.1", extra, False) + LAST)
        by_hyper = exchange(
            server.port, head("GET", "/static/page.html", "1.1", extra, True) + LAST
        )
        assert own == by_hyper, extra
        compared += 1
    pair = head("GET", "/gen", "1.1", [], False) + head("GET", "/cookies", "1.1", [], False)
    pair_hyper = head("GET", "/gen", "1.1", [], True) + head("GET", "/cookies", "1.1", [], True)
    own, by_hyper = exchange(server.port, pair + LAST), exchange(server.port, pair_hyper + LAST)
    assert own == by_hyper
    assert own[0].count(b"HTTP/1.1 ") == 3
    assert compared == len(TARGETS + CUT) * len(VARIANTS) + 3


def test_a_connection_moves_to_hyper_and_keeps_serving(server):
    """Requests the own path takes, then one it does not (a chunked body), then more: all
    answered, in order, on one connection."""
    post = b"POST /gen HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    get = head("GET", "/reason", "1.1", [], False)
    raw, closed = exchange(server.port, get + get + post + get + LAST)
    assert closed
    statuses = re.findall(rb"HTTP/1\.1 (\d+) ", raw)
    assert statuses == [b"299", b"299", b"200", b"299", b"299"]


# A request the own path takes that leaves the connection as it was (to the own path), and
# one it leaves to hyper, which then serves the rest of the connection.
STAY = head("GET", "/reason", "1.1", [], False)
MOVE = head("GET", "/reason", "1.1", [], True)


def with_body(method: str, target: str, version: str, body: bytes) -> bytes:
    return (
        f"{method} {target} HTTP/{version}\r\nHost: t\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_small_bodies_are_answered_alike_by_both_paths(server):
    """A body that comes with its head (up to 16 KiB) is read by the own path: the
    application reads the same bytes and the client gets the same answer as from hyper, at
    the edge of that size, over it, and pipelined."""
    compared = 0
    for size in [1, 4096, 16384, 16385]:
        body = bytes(b"abcdefghij\n"[i % 11] for i in range(size))
        for method in ["POST", "PUT", "PATCH", "DELETE"]:
            for op in ["read", "read-n&n=1000", "readline", "none"]:
                one = with_body(method, f"/input?op={op}", "1.1", body)
                own = exchange(server.port, STAY + one + one + LAST)
                by_hyper = exchange(server.port, MOVE + one + one + LAST)
                what = f"{method} {size} {op}"
                assert own == by_hyper, what
                assert own[0].count(b"HTTP/1.1 200 OK") == 2, what
                if op == "read":
                    assert json.dumps([body.decode()]).encode() in own[0], what
                compared += 1
    # HTTP/1.0, which closes after the answer.
    one = with_body("POST", "/input?op=read", "1.0", b"x" * 100)
    own, by_hyper = exchange(server.port, STAY + one), exchange(server.port, MOVE + one)
    assert own == by_hyper
    assert own[0].count(b'["' + b"x" * 100 + b'"]') == 1
    assert compared == 4 * 4 * 4


def test_a_body_sent_after_its_head_is_read_too(dragoman):
    """A body not in the same read as its head goes to hyper, whose body reads keep their own
    pace: a body that comes after header-timeout (1 s here) is still read, and answered, and
    so are the requests after it. Waiting for it on the own path would count against
    header-timeout, and the connection would be cut."""
    server = dragoman("rules:application", "--header-timeout", "1")
    one = with_body("POST", "/input?op=read", "1.1", b"late body")
    cut = one.index(b"\r\n\r\n") + 4
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(one[:cut])
        time.sleep(2.5)
        s.sendall(one[cut:] + STAY + LAST)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    assert re.findall(rb"HTTP/1\.1 (\d+) ", raw) == [b"200", b"299", b"299"]
    assert b'["late body"]' in raw
