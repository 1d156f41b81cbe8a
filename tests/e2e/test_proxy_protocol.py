"""The PROXY protocol (v1 and v2) from a trusted load balancer: the client it names becomes
REMOTE_ADDR/REMOTE_PORT; an untrusted peer is served as plain HTTP and its header is not
believed; a trusted peer that sends no valid header gets a 400 that says why, and the worker
keeps serving."""

import ipaddress
import json
import socket
import struct
import time

import httpx
from conftest import parse_responses, raw_exchange, run_dragoman

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src: str, sport: int, dst: str, dport: int, tlv: bytes = b"") -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    family = 0x11 if s.version == 4 else 0x21
    block = s.packed + d.packed + struct.pack("!HH", sport, dport) + tlv
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(block)) + block


def environ_of(data: bytes) -> list[dict]:
    responses = parse_responses(data)
    assert all(r.status == 200 for r in responses), responses
    return [json.loads(r.body) for r in responses]


REQUEST = b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n"


def test_v1_header_names_the_client_for_every_request_on_the_connection(dragoman):
    server = dragoman("echo:application", "--proxy-protocol")
    header = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8000\r\n"
    # The header and two pipelined requests in one write: the bytes after the header are kept.
    envs = environ_of(raw_exchange(server.host, server.port, header + REQUEST + REQUEST))
    assert len(envs) == 2
    for env in envs:
        assert env["REMOTE_ADDR"] == "203.0.113.7"
        assert env["REMOTE_PORT"] == "51000"


def test_the_request_head_gets_its_own_header_timeout_after_the_proxy_header(dragoman):
    """header-timeout covers the PROXY header, then the request head afresh: each arriving
    within the timeout is served even when together they take longer."""
    server = dragoman("echo:application", "--proxy-protocol", "--header-timeout", "2")
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        time.sleep(1.4)
        s.sendall(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n")
        time.sleep(1.4)
        s.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    (env,) = environ_of(data)
    assert env["REMOTE_ADDR"] == "203.0.113.7" and env["PATH_INFO"] == "/late"


def test_v1_tcp6_and_unknown(dragoman):
    server = dragoman("echo:application", "--proxy-protocol")
    header = b"PROXY TCP6 2001:db8::1 ::1 40000 443\r\n"
    (env,) = environ_of(raw_exchange(server.host, server.port, header + REQUEST))
    assert env["REMOTE_ADDR"] == "2001:db8::1"
    assert env["REMOTE_PORT"] == "40000"
    # UNKNOWN: the connection's own address is kept.
    (env,) = environ_of(raw_exchange(server.host, server.port, b"PROXY UNKNOWN\r\n" + REQUEST))
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_v2_header_with_tlvs_and_a_header_split_across_writes(dragoman):
    server = dragoman("echo:application", "--proxy-protocol")
    tlv = bytes([0x04]) + struct.pack("!H", 5) + b"hello"  # a NOOP TLV: skipped
    header = v2_header("198.51.100.20", 62000, "127.0.0.1", 8000, tlv)
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        for part in (header[:7], header[7:20], header[20:] + REQUEST[:10]):
            s.sendall(part)
        s.sendall(REQUEST[10:])
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    (env,) = environ_of(data)
    assert env["REMOTE_ADDR"] == "198.51.100.20"
    assert env["REMOTE_PORT"] == "62000"
    # v2 over IPv6.
    header = v2_header("2001:db8::9", 1234, "::1", 8000)
    (env,) = environ_of(raw_exchange(server.host, server.port, header + REQUEST))
    assert env["REMOTE_ADDR"] == "2001:db8::9"


def test_a_trusted_peer_without_a_header_is_served_as_itself(dragoman):
    # As with gunicorn and uWSGI, the header is optional: a health check from the balancer's
    # host sends none.
    server = dragoman("echo:application", "--proxy-protocol")
    response = httpx.get(f"{server.url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["REMOTE_ADDR"] == "127.0.0.1"
    (env,) = environ_of(
        raw_exchange(
            server.host, server.port, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        )
    )
    assert env["REQUEST_METHOD"] == "POST"


def test_a_malformed_header_gets_a_400_that_says_why(dragoman):
    server = dragoman("echo:application", "--proxy-protocol")
    data = raw_exchange(server.host, server.port, b"PROXY TCP4 1.2.3.4\r\n" + REQUEST)
    (response,) = parse_responses(data)
    assert response.status == 400
    assert b"PROXY v1 header is malformed" in response.body
    data = raw_exchange(
        server.host, server.port, b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n" + REQUEST
    )
    (response,) = parse_responses(data)
    assert response.status == 400
    assert b"malformed address" in response.body
    server.wait_for_log(r"refused the connection from 127\.0\.0\.1:\d+: .*proxy-protocol is on")
    # The worker keeps serving connections that do send a header.
    header = b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 8000\r\n"
    (env,) = environ_of(raw_exchange(server.host, server.port, header + REQUEST))
    assert env["REMOTE_ADDR"] == "192.0.2.1"


def test_untrusted_peers_are_served_plainly_and_their_header_is_not_believed(dragoman):
    # Only 10.9.8.7 is trusted; this client (127.0.0.1) is not.
    server = dragoman("echo:application", "--proxy-protocol", "--proxy-allow-from", "10.9.8.7")
    response = httpx.get(f"{server.url}/plain", timeout=10)
    assert response.status_code == 200
    assert response.json()["REMOTE_ADDR"] == "127.0.0.1"
    # A forged header from an untrusted peer is just a bad request line, not a new address.
    data = raw_exchange(server.host, server.port, b"PROXY TCP4 6.6.6.6 127.0.0.1 1 2\r\n" + REQUEST)
    assert b"6.6.6.6" not in data
    assert data.startswith(b"HTTP/1.1 400"), data[:200]


def test_proxy_protocol_is_off_by_default(dragoman):
    server = dragoman("echo:application")
    header = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8000\r\n"
    data = raw_exchange(server.host, server.port, header + REQUEST)
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert b"203.0.113.7" not in data


def test_unix_socket_peers_are_trusted(dragoman, tmp_path):
    path = tmp_path / "pp.sock"
    dragoman("echo:application", "--proxy-protocol", http=str(path))
    header = b"PROXY TCP4 203.0.113.50 10.0.0.1 4444 80\r\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(header + REQUEST)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    (env,) = environ_of(data)
    assert env["REMOTE_ADDR"] == "203.0.113.50"


def test_bad_allow_from_names_the_option():
    result = run_dragoman("echo:application", "--proxy-protocol", "--proxy-allow-from", "lb.local")
    assert result.returncode != 0
    assert "proxy-allow-from" in result.stderr
    assert "IP addresses and networks (CIDR)" in result.stderr
    assert '"lb.local" is no address' in result.stderr


def test_a_network_of_balancers_is_trusted(dragoman):
    """proxy-allow-from takes networks and lists, as gunicorn does (a pool of balancers)."""
    server = dragoman(
        "echo:application", "--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8, 127.0.0.0/8"
    )
    header = b"PROXY TCP4 198.51.100.4 127.0.0.1 4000 8000\r\n"
    (env,) = environ_of(raw_exchange(server.host, server.port, header + REQUEST))
    assert env["REMOTE_ADDR"] == "198.51.100.4"
