"""WebSockets under ASGI (docs/asgi.md), with the websockets library and raw sockets: echo of
text and binary (fragmented, large, compressed), ping/pong, close codes and reasons both
ways, subprotocols, denials (403 and the application's own response), size limits, the
handshake and ping timeouts, bad handshakes, a client or an application that floods the
other, 1001 on a graceful stop, and many idle connections on one worker."""

import asyncio
import base64
import os
import socket
import struct
import time

import pytest
import websockets
from conftest import raw_exchange
from test_asgi import start, wait_mark
from websockets.exceptions import ConnectionClosed, InvalidStatus


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def url(server, path="/ws/echo"):
    return f"ws://{server.host}:{server.port}{path}"


def test_echo_text_binary_fragments_and_pings(dragoman, tmp_path):
    server = start(dragoman, tmp_path)

    async def talk():
        async with websockets.connect(url(server), compression=None, max_size=None) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff" * 10)
            assert await ws.recv() == b"\x00\xff" * 10
            # Fragmented by the client: one message for the application.
            await ws.send(["frag", "ment", "ed"])
            assert await ws.recv() == "fragmented"
            big = os.urandom(3 << 20)
            await ws.send(big)
            assert await ws.recv() == big
            latency = await (await ws.ping(b"are you there"))
            assert latency < 5
            assert ws.response.headers["x-accepted"] == "yes"
            assert "sec-websocket-extensions" not in ws.response.headers
            await ws.close(4000, "client done")
        return ws

    ws = run(talk())
    assert ws.close_code == 4000
    wait_mark(server, "ws disconnect 4000 'client done'")


def test_permessage_deflate_is_negotiated_and_works(dragoman, tmp_path):
    server = start(dragoman, tmp_path)

    async def talk():
        async with websockets.connect(url(server)) as ws:
            extensions = ws.response.headers["sec-websocket-extensions"]
            text = "compress me please " * 5000
            await ws.send(text)
            assert await ws.recv() == text
            await ws.send("tiny")
            assert await ws.recv() == "tiny"
            return extensions

    extensions = run(talk())
    assert extensions.startswith("permessage-deflate")
    assert "server_no_context_takeover" in extensions
    assert "client_no_context_takeover" in extensions
    off = start(dragoman, tmp_path, "--websocket-compression=false")

    async def plain():
        async with websockets.connect(url(off)) as ws:
            return ws.response.headers.get("sec-websocket-extensions")

    assert run(plain()) is None


def test_the_scope_and_subprotocols(dragoman, tmp_path):
    import json

    asgiref_typing = pytest.importorskip("asgiref.typing")
    from test_asgi import check_typed_dict

    server = start(dragoman, tmp_path)

    async def talk():
        async with websockets.connect(
            url(server, "/ws/subprotocol?x=1"), subprotocols=["chat", "superchat"]
        ) as ws:
            assert ws.subprotocol == "superchat"
        async with websockets.connect(url(server, "/ws/scope?q=2")) as ws:
            return json.loads(await ws.recv())

    scope = run(talk())
    check_typed_dict(scope, asgiref_typing.WebSocketScope, "scope")
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert (scope["path"], scope["query_string"]) == ("/ws/scope", "q=2")
    assert scope["subprotocols"] == []
    assert scope["state"]["started"] == "yes"
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert ["upgrade", "websocket"] in scope["headers"]


def test_denials_get_403_or_the_apps_own_response(dragoman, tmp_path):
    server = start(dragoman, tmp_path)

    async def denied(path):
        with pytest.raises(InvalidStatus) as e:
            async with websockets.connect(url(server, path)):
                pass
        return e.value.response

    r = run(denied("/ws/deny"))
    assert r.status_code == 403
    r = run(denied("/ws/deny-response"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Token"
    assert r.body == b"who are you?"
    # An application that raises, or returns, before it answers: 500, and the log says why.
    assert run(denied("/ws/raise-before")).status_code == 500
    server.wait_for_log("RuntimeError: raised before accepting on purpose")
    assert run(denied("/ws/nothing")).status_code == 500
    server.wait_for_log("it returned without accepting or denying the WebSocket")


def test_close_codes_and_reasons_both_ways(dragoman, tmp_path):
    server = start(dragoman, tmp_path)

    async def server_closes():
        async with websockets.connect(url(server, "/ws/close")) as ws:
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd

    rcvd = run(server_closes())
    assert (rcvd.code, rcvd.reason) == (4001, "bye for now")
    wait_mark(server, "ws closed: websocket.disconnect 4001")

    async def app_raises():
        async with websockets.connect(url(server, "/ws/raise")) as ws:
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd

    assert run(app_raises()).code == 1011
    server.wait_for_log("RuntimeError: raised on an open WebSocket on purpose")

    async def app_returns():
        async with websockets.connect(url(server, "/ws/return")) as ws:
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd

    assert run(app_returns()).code == 1000


def test_a_message_over_the_limit_closes_with_1009(dragoman, tmp_path):
    server = start(dragoman, tmp_path, "--websocket-max-message", "1000")

    async def talk():
        async with websockets.connect(url(server), compression=None, max_size=None) as ws:
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000
            await ws.send("x" * 1001)
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd

    assert run(talk()).code == 1009
    wait_mark(server, "ws disconnect 1009")
    assert "a message larger than websocket-max-message" in server.log()


def handshake(key: bytes = b"dGhlIHNhbXBsZSBub25jZQ==", version: bytes = b"13", extra=b""):
    return (
        b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: "
        + version
        + b"\r\n"
        + extra
        + b"\r\n"
    )


def test_bad_handshakes_are_refused(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    out = raw_exchange(server.host, server.port, handshake(version=b"8"))
    assert out.startswith(b"HTTP/1.1 426 "), out
    assert b"sec-websocket-version: 13" in out.lower()
    out = raw_exchange(server.host, server.port, handshake(key=b"short"))
    assert out.startswith(b"HTTP/1.1 400 "), out
    out = raw_exchange(
        server.host,
        server.port,
        b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 400 "), out
    # The accept key of RFC 6455's example.
    out = raw_exchange(server.host, server.port, handshake(), idle=0.5)
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), out
    assert b"\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in out


def test_a_wsgi_app_gets_upgrade_requests_as_plain_requests(dragoman):
    server = dragoman("echo:application")
    out = raw_exchange(server.host, server.port, handshake(extra=b"Connection: close\r\n"))
    assert out.startswith(b"HTTP/1.1 200 "), out
    assert b'"HTTP_UPGRADE": "websocket"' in out


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    key = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def open_raw(server) -> socket.socket:
    s = socket.create_connection((server.host, server.port))
    key = base64.b64encode(os.urandom(16))
    s.sendall(handshake(key=key))
    s.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def read_frame(s: socket.socket) -> tuple[int, bytes]:
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    b0, b1 = exactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack(">H", exactly(2))
    elif n == 127:
        (n,) = struct.unpack(">Q", exactly(8))
    return b0 & 0x0F, exactly(n)


def test_protocol_errors_close_with_their_codes(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    cases = [
        (client_frame(0x3, b"x"), 1002),  # a reserved opcode
        (client_frame(0x1, b"\xff\xfe"), 1007),  # text that is not UTF-8
        (client_frame(0x0, b"x"), 1002),  # a continuation of nothing
        (b"\x81\x02hi", 1002),  # unmasked
    ]
    for frame, code in cases:
        with open_raw(server) as s:
            s.sendall(frame)
            opcode, payload = read_frame(s)
            assert opcode == 0x8 and struct.unpack(">H", payload[:2])[0] == code, payload
    # A ping is answered with its payload; a close is echoed.
    with open_raw(server) as s:
        s.sendall(client_frame(0x9, b"p1"))
        assert read_frame(s) == (0xA, b"p1")
        s.sendall(client_frame(0x8, struct.pack(">H", 1000) + b"ok"))
        assert read_frame(s) == (0x8, struct.pack(">H", 1000))
        assert s.recv(10) == b""
    wait_mark(server, "ws disconnect 1000 'ok'")


def test_a_silent_client_is_pinged_then_dropped(dragoman, tmp_path):
    server = start(
        dragoman, tmp_path, "--websocket-ping-interval", "1", "--websocket-ping-timeout", "1"
    )
    with open_raw(server) as s:
        started = time.monotonic()
        assert read_frame(s) == (0x9, b"dragoman")
        # Not answered: a close with 1011 within the timeout.
        opcode, payload = read_frame(s)
        assert opcode == 0x8 and struct.unpack(">H", payload[:2])[0] == 1011
        assert 1.5 < time.monotonic() - started < 6
    wait_mark(server, "ws disconnect 1011")
    assert "no answer to a ping within 1s" in server.log()


def test_the_handshake_timeout_answers_503(dragoman, tmp_path):
    server = start(dragoman, tmp_path, "--websocket-handshake-timeout", "1")

    async def talk():
        with pytest.raises(InvalidStatus) as e:
            async with websockets.connect(url(server, "/ws/slow-accept")):
                pass
        return e.value.response.status_code

    assert run(talk()) == 503
    assert "within 1s (websocket-handshake-timeout)" in server.log()


def test_a_graceful_stop_closes_with_1001(dragoman, tmp_path):
    server = start(dragoman, tmp_path)

    async def talk():
        async with websockets.connect(url(server)) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            server.proc.send_signal(15)
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd

    rcvd = run(talk())
    assert rcvd.code == 1001
    assert server.proc.wait(30) == 0
    assert "ws disconnect 1001" in server.marks.read_text()


def test_a_flooding_client_waits_for_a_slow_application(dragoman, tmp_path):
    server = start(dragoman, tmp_path)

    async def flood():
        async with websockets.connect(
            url(server, "/ws/slow-reader"), compression=None, write_limit=65536
        ) as ws:
            sent = 0
            message = b"x" * 65536

            async def send_all():
                nonlocal sent
                for _ in range(2000):
                    await ws.send(message)
                    sent += 1

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(send_all(), 3)
            return sent

    sent = run(flood())
    # 2,000 messages of 64 KiB (125 MiB): the application reads one every 0.2 s, the server
    # holds at most its inbound cap (1 MiB) and stops reading, so the client's sends wait
    # once the sockets' buffers are full.
    assert sent < 200, sent
    # Every message sent is read before the close (the ones still in the sockets' buffers
    # too), one each 0.2 s.
    marks = wait_mark(server, "slow reader got", timeout=10 + 0.2 * sent)
    print(f"sent {sent}; {marks.strip().splitlines()[-1]}")


def test_an_application_that_floods_a_client_that_does_not_read_waits(dragoman, tmp_path):
    server = start(dragoman, tmp_path)
    # A burst of 1,000 messages of 64 KiB to a client that reads none of them: the
    # application's send() waits once the server holds its high-water mark.
    s = socket.create_connection((server.host, server.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    key = base64.b64encode(os.urandom(16))
    s.sendall(handshake(key=key).replace(b"/ws/echo", b"/ws/burst?n=1000"))
    time.sleep(2)
    assert "burst sent" not in server.marks.read_text()
    s.close()
    wait_mark(server, "burst send raised ClientDisconnected")


def test_many_idle_connections_on_one_worker(dragoman, tmp_path):
    """10,000 idle WebSockets on one worker: all accepted, all still answering, and the
    worker's memory per connection (printed; docs/asgi.md has the figure)."""
    n = 10_000
    server = start(
        dragoman,
        tmp_path,
        "--max-connections",
        str(n + 100),
        "--websocket-ping-interval",
        "0",
    )
    (pid,) = server.worker_pids()

    def rss_kib() -> int:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    async def hold():
        before = rss_kib()
        request = handshake()
        writers = []

        async def one():
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            writers.append((reader, writer))

        for i in range(0, n, 500):
            await asyncio.gather(*(one() for _ in range(min(500, n - i))))
        await asyncio.sleep(1)
        after = rss_kib()
        # Every connection still answers (a ping on a sample of them).
        for reader, writer in writers[:: n // 50]:
            writer.write(client_frame(0x9, b"alive"))
            await writer.drain()
            assert await reader.readexactly(7) == b"\x8a\x05alive"
        for _, writer in writers:
            writer.close()
        return before, after

    before, after = asyncio.run(asyncio.wait_for(hold(), 240))
    per_connection = (after - before) * 1024 / n
    print(
        f"\n{n} idle WebSockets: worker RSS {before} KiB -> {after} KiB, "
        f"{per_connection:.0f} bytes per connection"
    )
    # The budget docs/asgi.md states.
    assert per_connection < 32 * 1024, per_connection


def test_websockets_over_http2_extended_connect(dragoman, tmp_path):
    """RFC 8441 over h2c (prior knowledge): the server offers extended CONNECT, a stream
    opened with `:protocol websocket` is accepted with a 200, and carries WebSocket frames."""
    import h2.config
    import h2.connection
    import h2.events

    server = start(dragoman, tmp_path, "--http2-cleartext")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    with socket.create_connection((server.host, server.port)) as s:
        s.settimeout(10)
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        events = []

        def pump(until):
            while not any(until(e) for e in events):
                data = s.recv(65536)
                assert data, events
                events.extend(conn.receive_data(data))
                s.sendall(conn.data_to_send())

        pump(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
        assert conn.remote_settings.enable_connect_protocol == 1
        conn.send_headers(
            1,
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":path", "/ws/scope?over=h2"),
                (":authority", f"{server.host}:{server.port}"),
                ("sec-websocket-version", "13"),
            ],
        )
        s.sendall(conn.data_to_send())
        pump(lambda e: isinstance(e, h2.events.ResponseReceived))
        (response,) = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
        headers = dict(response.headers)
        assert headers[b":status"] == b"200", headers
        assert b"sec-websocket-accept" not in headers and headers[b"x-accepted"] == b"yes"

        def data() -> bytes:
            got = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
            for e in events:
                if isinstance(e, h2.events.DataReceived):
                    conn.acknowledge_received_data(e.flow_controlled_length, 1)
            events.clear()
            return got

        pump(lambda e: isinstance(e, h2.events.DataReceived))
        received = data()
        # The scope the application saw: HTTP/2.
        import json

        opcode, length = received[0] & 0x0F, received[1] & 0x7F
        if length == 126:
            body = received[4:]
        else:
            body = received[2:]
        scope = json.loads(body)
        assert opcode == 1 and scope["http_version"] == "2", scope
        assert scope["query_string"] == "over=h2"
        conn.send_data(1, client_frame(0x1, b"over h2"))
        s.sendall(conn.data_to_send())
        pump(lambda e: isinstance(e, h2.events.DataReceived))
        assert data() == b"\x81\x07over h2"
        conn.send_data(1, client_frame(0x8, struct.pack(">H", 1000)))
        s.sendall(conn.data_to_send())
        pump(lambda e: isinstance(e, h2.events.DataReceived))
        assert data().startswith(b"\x88\x02\x03\xe8")
    wait_mark(server, "ws disconnect 1000")
