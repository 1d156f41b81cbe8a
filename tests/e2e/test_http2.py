"""HTTP/2: over TLS by ALPN (curl --http2, httpx http2=True, h2load, openssl s_client) and with
prior knowledge on plain listeners (h2c, `http2-cleartext`); streams counted as requests in
flight; GOAWAY on a graceful stop; and the known floods, written frame by frame with the h2
library's frame layer (hyperframe), cost the attacker their connection and nothing else."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import hpack
import httpx
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)
from test_https import STREAM, curl, https_address
from tls_certs import Authority

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Authority:
    return Authority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(ca):
    return ca.issue("site", ("localhost",))


def start(dragoman, site, *args, workers=1):
    server = dragoman(
        "tls_app:application",
        "--https",
        f"127.0.0.1:0,{site.cert},{site.key}",
        *args,
        http=None,
        workers=workers,
    )
    return server, https_address(server)


def tls_socket(ca, host, port, alpn=("h2",)) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca.path))
    context.set_alpn_protocols(list(alpn))
    raw = socket.create_connection((host, port), timeout=10)
    s = context.wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == alpn[0]
    return s


class H2Client:
    """An HTTP/2 client connection made with the h2 library, over TLS or plain. The library
    takes nothing after GOAWAY, while a server finishing its streams still sends their
    frames: those are read here with its frame layer and HPACK decoder."""

    def __init__(self, sock):
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.pending = b""
        self.statuses: dict[int, str] = {}
        self.bodies: dict[int, bytes] = {}
        self.ended_streams: set[int] = set()
        self.terminated: h2.events.ConnectionTerminated | None = None

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def get(self, path: str) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [
                (":method", "GET"),
                (":path", path),
                (":scheme", "https"),
                (":authority", "localhost"),
            ],
            end_stream=True,
        )
        self.flush()
        return sid

    def read_until(self, done, timeout: float = 10.0) -> bool:
        """Reads until done() or the connection closes; whether done."""
        deadline = time.monotonic() + timeout
        while not done():
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError, ssl.SSLError, OSError):
                return done()
            if not data:
                return done()
            self.pending += data
            while len(self.pending) >= 9:
                size = 9 + int.from_bytes(self.pending[:3], "big")
                if len(self.pending) < size:
                    break
                frame, self.pending = self.pending[:size], self.pending[size:]
                if self.terminated is None:
                    self.through_library(frame)
                else:
                    self.after_goaway(frame)
            self.flush()
        return True

    def through_library(self, frame: bytes):
        for event in self.conn.receive_data(frame):
            if isinstance(event, h2.events.ResponseReceived):
                self.statuses[event.stream_id] = dict(event.headers)[b":status"].decode()
            elif isinstance(event, h2.events.DataReceived):
                self.bodies[event.stream_id] = self.bodies.get(event.stream_id, b"") + event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended_streams.add(event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = event

    def after_goaway(self, raw: bytes):
        frame, length = Frame.parse_frame_header(memoryview(raw[:9]))
        frame.parse_body(memoryview(raw[9 : 9 + length]))
        sid = frame.stream_id
        if isinstance(frame, HeadersFrame):
            headers = dict(self.conn.decoder.decode(frame.data))
            status = headers.get(b":status", headers.get(":status"))
            self.statuses[sid] = status.decode() if isinstance(status, bytes) else status
        elif isinstance(frame, DataFrame):
            self.bodies[sid] = self.bodies.get(sid, b"") + frame.data
        if "END_STREAM" in frame.flags:
            self.ended_streams.add(sid)

    def body(self, sid: int) -> bytes:
        return self.bodies.get(sid, b"")

    def ended(self, sid: int) -> bool:
        return sid in self.ended_streams

    def status(self, sid: int) -> str | None:
        return self.statuses.get(sid)

    def goaway(self):
        return self.terminated


def test_curl_and_httpx_speak_http2_and_the_app_sees_it(dragoman, ca, site, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    data = os.urandom(1024 * 1024 + 5)
    (static / "big.bin").write_bytes(data)
    server, (host, port) = start(dragoman, site, "--static-map", f"/static={static}")
    resolve = f"localhost:{port}:{host}"
    out = curl(ca, f"https://localhost:{port}/p/a%20th?x=1", "--http2", "-i", resolve=resolve)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200"), head
    env = json.loads(body)
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    # :authority became Host, and the target its path, as over HTTP/1.1.
    assert env["HTTP_HOST"] == f"localhost:{port}"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", str(port))
    assert env["REQUEST_URI"] == "/p/a%20th?x=1" and env["PATH_INFO"] == "/p/a th"
    # Many streams on one connection, concurrently; a file and a streamed body byte for byte.
    with httpx.Client(verify=ca.context(), http2=True) as client:
        url = f"https://localhost:{port}"
        r = client.get(f"{url}/static/big.bin")
        assert r.http_version == "HTTP/2" and r.content == data
        r = client.get(f"{url}/static/big.bin", headers={"Range": "bytes=10-99999"})
        assert r.status_code == 206 and r.content == data[10:100000]
        assert client.get(f"{url}/stream").content == STREAM
        body = os.urandom(200_000)
        r = client.post(f"{url}/echo", content=body)
        assert base64.b64decode(r.json()["body_base64"]) == body
    s = tls_socket(ca, host, port)
    c = H2Client(s)
    sids = [c.get(f"/n/{i}") for i in range(50)]
    assert c.read_until(lambda: all(c.ended(sid) for sid in sids))
    for i, sid in enumerate(sids):
        assert c.status(sid) == "200"
        assert json.loads(c.body(sid))["PATH_INFO"] == f"/n/{i}"
    s.close()
    assert "HTTP/2" not in server.log() or "error" not in server.log().lower()


def test_http2_false_offers_http11_only(dragoman, ca, site):
    _, (host, port) = start(dragoman, site, "--http2=false")
    out = curl(
        ca, f"https://localhost:{port}/", "--http2", "-i", resolve=f"localhost:{port}:{host}"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"HTTP/1.1 200"), out.stdout[:100]
    assert json.loads(out.stdout.partition(b"\r\n\r\n")[2])["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_h2c_with_prior_knowledge_beside_http11(dragoman):
    server = dragoman("tls_app:application", "--http2-cleartext")
    out = subprocess.run(
        ["curl", "-sS", "-i", "--http2-prior-knowledge", f"{server.url}/h2c"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"HTTP/2 200"), out.stdout[:100]
    env = json.loads(out.stdout.partition(b"\r\n\r\n")[2])
    assert env["SERVER_PROTOCOL"] == "HTTP/2" and env["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in env
    # The same listener still speaks HTTP/1.1.
    r = httpx.get(f"{server.url}/h1")
    assert r.status_code == 200 and r.json()["SERVER_PROTOCOL"] == "HTTP/1.1"
    # Without the option, the preface is no HTTP/1 request: refused, and served no HTTP/2.
    plain = dragoman("tls_app:application")
    out = subprocess.run(
        ["curl", "-sS", "-i", "--http2-prior-knowledge", f"{plain.url}/h2c"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert not out.stdout.startswith(b"HTTP/2 200")


def test_h2c_serves_static_files_too_large_for_a_frame(dragoman, tmp_path):
    # Over a plain socket, HTTP/1 sends files from 16 KiB on with sendfile; HTTP/2 frames every
    # byte of a body, so h2c must not take that path (HAProxy's `proto h2` to a backend found it:
    # the connection was closed after the headers, "zero-copy send: the write does not match").
    static = tmp_path / "static"
    static.mkdir()
    sizes = {"small.css": 1000, "frame.css": 16_384, "big.css": 22_340, "huge.bin": 3_000_000}
    for name, size in sizes.items():
        (static / name).write_bytes(os.urandom(size))
    server = dragoman(
        "tls_app:application", "--http2-cleartext", "--static-map", f"/static={static}"
    )
    with httpx.Client(http1=False, http2=True, timeout=20) as client:
        for name in sizes:
            r = client.get(f"{server.url}/static/{name}")
            assert r.http_version == "HTTP/2" and r.status_code == 200, name
            assert r.content == (static / name).read_bytes(), name
        r = client.get(f"{server.url}/static/huge.bin", headers={"Range": "bytes=100000-299999"})
        assert r.status_code == 206
        assert r.content == (static / "huge.bin").read_bytes()[100_000:300_000]
    # HTTP/1.1 on the same listener still sends them (with sendfile).
    r = httpx.get(f"{server.url}/static/huge.bin")
    assert r.status_code == 200 and r.content == (static / "huge.bin").read_bytes()
    assert "zero-copy" not in server.log()


def test_h2load_many_streams_over_many_connections(dragoman, ca, site):
    _, (host, port) = start(dragoman, site, "--processes", "2", workers=2)
    out = subprocess.run(
        ["h2load", "-n", "4000", "-c", "16", "-m", "10", f"https://{host}:{port}/"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
    assert "Application protocol: h2" in out.stdout, out.stdout


def test_streams_in_flight_keep_the_connection_and_idle_ones_go(dragoman, ca, site):
    """header-timeout counts only while no stream is in flight: a slow response outlives it;
    an idle connection is told GOAWAY after it."""
    server, (host, port) = start(dragoman, site, "--header-timeout", "2", "--threads", "4")
    s = tls_socket(ca, host, port)
    c = H2Client(s)
    t0 = time.monotonic()
    slow = c.get("/slow?3.5")
    quick = c.get("/quick")
    assert c.read_until(lambda: c.ended(quick), timeout=3)
    assert time.monotonic() - t0 < 2, "the quick stream waited for the slow one"
    assert c.read_until(lambda: c.ended(slow), timeout=10)
    assert time.monotonic() - t0 >= 3.4
    assert c.status(slow) == "200" and c.body(slow) == b"slow done\n"
    assert c.status(quick) == "200"
    assert c.goaway() is None
    # Idle now: GOAWAY (no error) within header-timeout and the sweep's lag, then closed.
    t1 = time.monotonic()
    assert c.read_until(lambda: c.goaway() is not None, timeout=6)
    assert c.goaway().error_code == 0
    assert time.monotonic() - t1 < 5
    s.close()
    assert server.proc.poll() is None


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP])
def test_graceful_stop_and_reload_send_goaway_and_let_streams_finish(dragoman, ca, site, how):
    server, (host, port) = start(dragoman, site, "--threads", "4")
    s = tls_socket(ca, host, port)
    c = H2Client(s)
    streams = [c.get("/slow?2") for _ in range(3)]
    time.sleep(0.5)
    server.proc.send_signal(how)
    assert c.read_until(lambda: all(c.ended(sid) for sid in streams), timeout=15)
    assert all(c.status(sid) == "200" and c.body(sid) == b"slow done\n" for sid in streams)
    assert c.read_until(lambda: c.goaway() is not None, timeout=10)
    goaway = c.goaway()
    assert goaway.error_code == 0
    assert goaway.last_stream_id >= max(streams)
    s.close()
    if how == signal.SIGHUP:
        # The new worker serves; over HTTP/2 still.
        server.wait_for_log(r"reload finished")
        out = curl(
            ca, f"https://localhost:{port}/", "--http2", "-i", resolve=f"localhost:{port}:{host}"
        )
        assert out.stdout.startswith(b"HTTP/2 200"), out.stderr
    else:
        assert server.proc.wait(20) == 0


def flood(ca, host, port, frames, seconds: float = 10.0) -> tuple[bool, int]:
    """Writes the preface, SETTINGS, then `frames` (an iterator of bytes) as fast as the server
    takes them, reading what it sends, until the server closes or `seconds` pass. Returns
    whether the server closed the connection, and how many frames were written."""
    s = tls_socket(ca, host, port)
    s.sendall(PREFACE + SettingsFrame(0).serialize())
    s.setblocking(False)
    sent = 0
    closed = False
    deadline = time.monotonic() + seconds
    pending = b""
    while time.monotonic() < deadline and not closed:
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    closed = True
                    break
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        except (ConnectionResetError, ssl.SSLError, OSError):
            closed = True
        if closed:
            break
        if not pending:
            batch = [next(frames, None) for _ in range(100)]
            pending = b"".join(f for f in batch if f)
            sent += sum(1 for f in batch if f)
            if not pending:
                time.sleep(0.01)
                continue
        try:
            n = s.send(pending)
            pending = pending[n:]
        except (ssl.SSLWantWriteError, BlockingIOError):
            time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            closed = True
    s.close()
    return closed, sent


def headers_block(sid: int) -> bytes:
    return hpack.Encoder().encode(
        [
            (":method", "GET"),
            (":path", f"/flood/{sid}"),
            (":scheme", "https"),
            (":authority", "localhost"),
        ]
    )


def rapid_reset():
    sid = 1
    while True:
        f = HeadersFrame(sid, headers_block(sid))
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        yield f.serialize() + RstStreamFrame(sid, error_code=8).serialize()
        sid += 2


def continuation_flood():
    f = HeadersFrame(1, headers_block(1))
    yield f.serialize()  # no END_HEADERS: the block goes on and on
    junk = b"x-junk: " + b"a" * 1000
    while True:
        yield ContinuationFrame(1, junk).serialize()


def ping_flood():
    n = 0
    while True:
        n += 1
        yield PingFrame(0, opaque_data=n.to_bytes(8, "big")).serialize()


def settings_flood():
    while True:
        yield SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535}).serialize()


@pytest.mark.parametrize(
    "frames",
    [rapid_reset, continuation_flood, ping_flood, settings_flood],
    ids=["rapid-reset-CVE-2023-44487", "continuation-CVE-2024-27316", "ping", "settings"],
)
def test_floods_cost_the_attacker_their_connection(dragoman, ca, site, frames):
    server, (host, port) = start(dragoman, site)
    pid = server.worker_pids()
    results: dict = {}

    def attack():
        results["closed"], results["sent"] = flood(ca, host, port, frames())

    attacker = threading.Thread(target=attack)
    attacker.start()
    # Served meanwhile.
    time.sleep(0.5)
    with httpx.Client(verify=ca.context(), http2=True, timeout=10) as client:
        for _ in range(5):
            t0 = time.monotonic()
            assert client.get(f"https://localhost:{port}/").status_code == 200
            assert time.monotonic() - t0 < 2
    attacker.join(30)
    assert results.get("closed"), results
    assert server.worker_pids() == pid, "the worker was replaced"
    assert re.search(r"HTTP/2 flood from 127\.0\.0\.1:\d+", server.log()), server.log()[-2000:]
