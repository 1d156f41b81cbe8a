"""HTTP/1.1 behaviour: keep-alive, pipelining, HTTP/1.0, Connection: close, chunked bodies both
ways, HEAD, Expect: 100-continue, Date/Server, IPv4 + IPv6 and several listeners."""

import json
import socket
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest
from conftest import parse_responses, raw_exchange


def echo_json(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_keep_alive_reuses_one_connection(dragoman):
    server = dragoman("echo:application")
    with httpx.Client(base_url=server.url) as client:
        ports = {echo_json(client.get(f"/n/{i}"))["REMOTE_PORT"] for i in range(5)}
    assert len(ports) == 1


def test_pipelined_requests_are_answered_in_order(dragoman):
    server = dragoman("echo:application")
    requests = (
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /second HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /third HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /fourth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = raw_exchange(server.host, server.port, requests)
    first, second, third, fourth = parse_responses(data, methods=["GET", "HEAD", "POST", "GET"])
    assert json.loads(first.body)["PATH_INFO"] == "/first"
    assert second.status == 200 and second.body == b""
    assert int(second.header("content-length")) > 0
    third_env = json.loads(third.body)
    assert third_env["PATH_INFO"] == "/third" and third_env["body_base64"] == "aGVsbG8="
    assert json.loads(fourth.body)["PATH_INFO"] == "/fourth"


def test_http10_client_gets_a_closed_connection(dragoman):
    server = dragoman("echo:application")
    start = time.monotonic()
    data = raw_exchange(server.host, server.port, b"GET /old HTTP/1.0\r\n\r\n", idle=5)
    assert time.monotonic() - start < 4, "HTTP/1.0 without keep-alive must be closed at once"
    (resp,) = parse_responses(data)
    env = json.loads(resp.body)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["PATH_INFO"] == "/old"


def test_http10_keep_alive_is_honoured(dragoman):
    server = dragoman("echo:application")
    request = b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    data = raw_exchange(server.host, server.port, request + request, idle=1)
    assert len(parse_responses(data)) == 2


def test_connection_close_closes(dragoman):
    server = dragoman("echo:application")
    start = time.monotonic()
    data = raw_exchange(
        server.host, server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", idle=5
    )
    assert time.monotonic() - start < 4
    (resp,) = parse_responses(data)
    assert resp.status == 200
    assert resp.header("connection") == "close"


def test_chunked_request_body_gets_content_length(dragoman):
    server = dragoman("echo:application")
    request = (
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    )
    (resp,) = parse_responses(raw_exchange(server.host, server.port, request))
    env = json.loads(resp.body)
    assert env["CONTENT_LENGTH"] == "11"
    assert env["body_base64"] == "aGVsbG8gd29ybGQ="
    assert "HTTP_TRANSFER_ENCODING" not in env


@pytest.mark.parametrize("size", [300_000, 3 * 1024 * 1024])
def test_large_chunked_upload_is_buffered_then_read_whole(dragoman, size):
    """Above 1 MiB the chunked body is spooled to a file; the app still sees CONTENT_LENGTH."""
    server = dragoman("rules:application")
    payload = bytes(range(256)) * (size // 256)

    def chunks():
        for i in range(0, len(payload), 50_000):
            yield payload[i : i + 50_000]

    r = httpx.post(f"{server.url}/input?op=count", content=chunks())
    assert r.status_code == 200
    assert r.json() == [str(len(payload))]


def test_chunked_response_without_length(dragoman):
    server = dragoman("rules:application")
    r = httpx.get(f"{server.url}/stream?n=4")
    assert r.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in r.headers
    assert r.text == "line 0\nline 1\nline 2\nline 3\n"


def test_head_sends_headers_as_for_get_and_no_body(dragoman):
    server = dragoman("rules:application")
    get = httpx.get(f"{server.url}/big?size=12345")
    # HEAD then GET on one connection: nothing may follow the HEAD response's head.
    data = raw_exchange(
        server.host,
        server.port,
        b"HEAD /big?size=12345 HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    head, after = parse_responses(data, methods=["HEAD", "GET"])
    assert head.status == 200
    assert head.body == b""
    assert head.header("content-type") == get.headers["content-type"]
    assert head.header("content-length") == get.headers["content-length"] == "12345"
    assert after.status == 200 and after.body.isdigit()


def test_head_on_a_generator_sends_no_body(dragoman):
    server = dragoman("rules:application")
    data = raw_exchange(
        server.host,
        server.port,
        b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    head, pid = parse_responses(data, methods=["HEAD", "GET"])
    assert head.status == 200 and head.body == b""
    assert pid.body.isdigit()


def _send_expect(server, path: str) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=5)
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        "Expect: 100-continue\r\n\r\n".encode()
    )
    return s


def test_expect_continue_is_sent_when_the_app_reads(dragoman):
    # post-buffering = 0: the body is streamed to the application as it reads.
    server = dragoman("rules:application", "--post-buffering", "0")
    with _send_expect(server, "/input?op=read") as s:
        interim = s.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        s.sendall(b"hello")
        s.settimeout(5)
        data = b""
        while b'["hello"]' not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")


def test_expect_continue_is_not_sent_when_the_app_does_not_read(dragoman):
    server = dragoman("rules:application", "--post-buffering", "0")
    with _send_expect(server, "/input?op=none") as s:
        s.settimeout(5)
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 200 OK"), data
    assert b"100 Continue" not in data


def test_date_and_server_headers(dragoman):
    server = dragoman("echo:application")
    r = httpx.get(server.url)
    assert r.headers["server"].startswith("dragoman/")
    sent = parsedate_to_datetime(r.headers["date"]).timestamp()
    assert abs(sent - time.time()) < 5


def test_ipv4_ipv6_and_several_listeners(dragoman):
    server = dragoman("echo:application", "--http", "[::1]:0", "--http", "127.0.0.1:0", http=None)
    assert len(server.addresses) == 2
    hosts = set()
    for address in server.addresses:
        env = echo_json(httpx.get(f"http://{address}/"))
        hosts.add(env["REMOTE_ADDR"])
    assert hosts == {"127.0.0.1", "::1"}


def test_malformed_request_gets_400_and_the_worker_keeps_serving(dragoman):
    server = dragoman("echo:application")
    pid = echo_json(httpx.get(server.url))["pid"]
    for bad in (
        b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",  # obsolete line folding
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
    ):
        data = raw_exchange(server.host, server.port, bad)
        assert data.startswith(b"HTTP/1.1 400 "), (bad, data)
    assert echo_json(httpx.get(server.url))["pid"] == pid


def test_a_client_that_half_closes_after_its_request_gets_the_response(dragoman):
    """nc -N and some health checks shut their write side once the request is sent: the
    server sees end-of-file while the application still runs, and must answer anyway."""
    server = dragoman("rules:application")
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"GET /sleep?t=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data


def test_an_absolute_form_target_names_the_host(dragoman):
    # RFC 9112 §3.2.2: the host of an absolute-form target wins over the Host header, so the
    # application cannot be told one host while a proxy in front routed by the other.
    server = dragoman("echo:application")
    data = raw_exchange(
        server.host,
        server.port,
        b"GET http://a.example:8080/x?q=1 HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    env = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert env["HTTP_HOST"] == "a.example:8080"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("a.example", "8080")
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/x", "q=1")
