"""Slow and hostile clients cost only their own connection (issue 21): what nginx in front
used to absorb. A request body is read whole before the request takes an application slot
(post-buffering), so a slow upload never holds one; its cost is bounded by limit-post, the
worker's spool budget, body-timeout and body-min-rate."""

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import raw_exchange


def answered_within(server, seconds: float) -> float:
    """Time for a plain GET to the application on a fresh connection; fails past `seconds`."""
    start = time.monotonic()
    r = httpx.get(f"{server.url}/pid", timeout=seconds)
    assert r.status_code == 200
    return time.monotonic() - start


def slow_upload(server, head_extra: str = "", length: int = 70000) -> socket.socket:
    """A POST that declares `length` bytes and sends 10 of them, then nothing."""
    s = socket.create_connection((server.host, server.port), timeout=10)
    s.sendall(
        f"POST /input?op=count HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
        f"{head_extra}\r\n".encode()
    )
    if "100-continue" in head_extra:
        assert s.recv(1024).startswith(b"HTTP/1.1 100 Continue"), "dragoman answers the 100"
    s.sendall(b"a" * 10)
    return s


@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("expect", ["", "Expect: 100-continue\r\n"])
def test_slow_uploads_hold_no_application_slot(dragoman, threads, expect):
    server = dragoman("rules:application", "--threads", str(threads))
    uploads = [slow_upload(server, expect) for _ in range(threads + 2)]
    time.sleep(0.3)  # the uploads are read as far as they go
    try:
        assert answered_within(server, 1.0) < 1.0
    finally:
        for s in uploads:
            s.close()


def test_a_buffered_upload_reaches_the_app_whole_and_after_a_pause(dragoman):
    # Bodies past post-buffering go to a temporary file; the application reads them at once.
    server = dragoman("rules:application", "--post-buffering", "1000")
    body = bytes(range(256)) * 400
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(
            f"POST /input?op=count HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        s.sendall(body[:5000])
        time.sleep(0.5)
        s.sendall(body[5000:])
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert data.endswith(f'["{len(body)}"]'.encode())


def test_a_stalled_buffered_body_gets_408_without_the_app(dragoman):
    server = dragoman("rules:application", "--body-timeout", "1")
    with slow_upload(server) as s:
        s.settimeout(5)
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"body-timeout" in data
    assert answered_within(server, 1.0) < 1.0


def test_a_body_slower_than_body_min_rate_gets_408(dragoman):
    # After the first body-timeout (1 s), at least 1000 bytes a second on average: a client
    # sending 100 bytes every 0.3 s (333 bytes a second) is cut within a few seconds.
    server = dragoman("rules:application", "--body-timeout", "1", "--body-min-rate", "1000")
    got = []
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /input?op=count HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")

        def read():
            try:
                got.append(s.recv(65536))
            except OSError:
                got.append(b"")

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 8
        while reader.is_alive() and time.monotonic() < deadline:
            try:
                s.sendall(b"a" * 100)
            except OSError:
                break
            time.sleep(0.3)
        reader.join(5)
    assert got and got[0].startswith(b"HTTP/1.1 408 "), got
    assert b"body-min-rate" in got[0]


def test_the_spool_budget_answers_503_and_gives_its_bytes_back(dragoman):
    # post-buffering 1000: a declared 60,000-byte body takes 60,000 of the 100,000-byte budget
    # as soon as it starts; a second one does not fit (503 before any body byte is read);
    # once the first is done, its share is back.
    server = dragoman("rules:application", "--post-buffering", "1000", "--spool-budget", "100000")
    first = slow_upload(server, length=60000)
    time.sleep(0.3)
    second = raw_exchange(
        server.host,
        server.port,
        b"POST /input?op=count HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n",
    )
    assert second.startswith(b"HTTP/1.1 503 "), second[:200]
    assert b"retry-after: 1" in second.lower() and b"spool-budget" in second
    first.sendall(b"a" * (60000 - 10))
    first.settimeout(5)
    assert first.recv(65536).startswith(b"HTTP/1.1 200 ")
    first.close()
    body = b"b" * 60000
    r = httpx.post(f"{server.url}/input?op=count", content=body, timeout=10)
    assert r.status_code == 200 and r.json() == ["60000"]


def test_an_endless_chunked_body_is_cut_at_limit_post(dragoman):
    server = dragoman("rules:application", "--limit-post", "100000")
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /input?op=count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        data = b""
        try:
            for _ in range(200):
                s.sendall(b"1000\r\n" + b"c" * 0x1000 + b"\r\n")
        except OSError:
            pass
        s.settimeout(5)
        try:
            while chunk := s.recv(65536):
                data += chunk
        except OSError:
            pass
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert answered_within(server, 1.0) < 1.0


@pytest.mark.parametrize("threads", [1, 4])
def test_slow_readers_hold_no_application_slot(dragoman, threads):
    # Streamed responses of 25 MiB (more than loopback's socket buffers hold) to clients that
    # read nothing: the application runs ahead into the response buffer (64 MiB by default)
    # and is free for others.
    server = dragoman("rules:application", "--threads", str(threads))
    size, n = 65536, 400
    readers = []
    for _ in range(threads + 2):
        s = socket.create_connection((server.host, server.port), timeout=10)
        s.sendall(f"GET /chunks?n={n}&size={size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        readers.append(s)
    time.sleep(0.5)
    try:
        assert answered_within(server, 1.0) < 1.0
        # The slow readers still get every byte, in order.
        s = readers[0]
        data = bytearray()
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = s.recv(1 << 20)
            assert chunk, len(data)
            data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        payload = dechunk(body)
        assert len(payload) == n * size
        assert all(payload[i * size] == i % 256 for i in range(n))
    finally:
        for s in readers:
            s.close()


def dechunk(body: bytes) -> bytes:
    out, i = bytearray(), 0
    while True:
        end = body.index(b"\r\n", i)
        size = int(body[i:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        i = end + 2 + size + 2


def test_a_reader_slower_than_write_min_rate_is_cut(dragoman, tmp_path):
    # Once behind for write-timeout (3 s), a client must take at least write-min-rate on
    # average (1 MB a second here). This one takes 16 KiB every 0.1 s (160 KB a second) of a
    # 50 MB response: never stalled long enough for write-timeout, cut by the rate. Over a
    # unix socket, whose small buffers wake the writer often (TCP's grow to megabytes, and
    # then a client this slow stalls the writer past write-timeout anyway).
    path = tmp_path / "d.sock"
    server = dragoman(
        "rules:application",
        "--write-timeout",
        "3",
        "--write-min-rate",
        "1000000",
        "--http",
        str(path),
        http=None,
    )
    start = time.monotonic()
    taken, cut = 0, False
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.settimeout(10)
        s.sendall(b"GET /big?size=50000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        while time.monotonic() - start < 30:
            try:
                chunk = s.recv(16384)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                cut = True
                break
            taken += len(chunk)
            time.sleep(0.1)
    assert cut and taken < 50_000_000, taken
    assert time.monotonic() - start < 20
    server.wait_for_log(r"less than 1000000 bytes a second \(write-min-rate\)")
    assert "write-timeout" not in server.log()


@pytest.mark.parametrize("threads", [1, 4])
def test_a_spooled_body_is_let_go_when_its_response_is_over(dragoman, threads):
    # Past post-buffering a body is in a temporary file; once the response is over the file
    # is closed at once, not when Python's garbage collector gets to the request.
    server = dragoman("rules:application", "--threads", str(threads), "--post-buffering", "1000")
    (worker,) = server.worker_pids()

    def deleted_files() -> list[str]:
        found = []
        for fd in Path(f"/proc/{worker}/fd").iterdir():
            try:
                target = str(fd.readlink())
            except FileNotFoundError:
                continue  # closed between the listing and the look (a connection going)
            if "(deleted)" in target:
                found.append(target)
        return found

    assert httpx.post(f"{server.url}/keep-body", content=b"y" * 50_000).status_code == 200
    assert httpx.post(f"{server.url}/input?op=count", content=b"z" * 50_000).json() == ["50000"]
    assert deleted_files() == []
