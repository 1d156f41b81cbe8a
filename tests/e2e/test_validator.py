"""An application wrapped in wsgiref.validate.validator (warnings as errors): any slip of the
server against PEP 3333 turns into a 500 and an AssertionError or WSGIWarning in the log."""

import httpx
import pytest
from conftest import parse_responses, raw_exchange


@pytest.fixture(params=[1, 4], ids=["threads=1", "threads=4"])
def server(request, dragoman):
    return dragoman("validated:application", "--threads", str(request.param))


def assert_clean(server):
    log = server.log()
    for bad in ("AssertionError", "WSGIWarning", "Traceback", "[ERROR]"):
        assert bad not in log, log


def test_get_post_and_head(server):
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/get?x=1").text == "ok:"
        assert c.post("/post", content=b"payload").text == "ok:payload"
        big = b"q" * 300_000  # streamed to the app (larger than the buffered size)
        assert c.post("/big", content=big).content == b"ok:" + big
        head = c.head("/head")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == "3"
    assert_clean(server)


def test_chunked_upload(server):
    def gen():
        yield b"abc"
        yield b"def"

    assert httpx.post(f"{server.url}/chunked", content=gen()).text == "ok:abcdef"
    assert_clean(server)


def test_keep_alive_and_pipelining(server):
    with httpx.Client(base_url=server.url) as c:
        for i in range(5):
            assert c.post("/k", content=str(i).encode()).text == f"ok:{i}"
    data = raw_exchange(
        server.host,
        server.port,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"HEAD /3 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    responses = parse_responses(data, methods=["GET", "POST", "HEAD", "GET"])
    assert [r.body for r in responses] == [b"ok:", b"ok:abc", b"", b"ok:"]
    assert all(r.status == 200 for r in responses)
    assert_clean(server)
