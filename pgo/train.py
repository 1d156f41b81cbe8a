"""The training run of dragoman's profile-guided build (see pgo/build.py).

An instrumented dragoman counts every branch it takes; the release build then lays out and
inlines its code for the paths these counts call hot, and optimises the rest for size. So this
run must take the paths sites use, in about the proportions they use them, and check that each
answer is right (a build trained on errors would be tuned for errors):

- small GETs on kept connections, one client and many (the own HTTP/1 path);
- HEAD, HTTP/1.0 and `Connection: close` requests, browser-sized heads;
- a 4 KiB JSON POST echoed back and a chunked upload (hyper's path);
- a 1 MiB response streamed from a generator;
- static files of 1 KiB and 100 KiB: plain, gzip-encoded, conditional (304) and ranged (206);
- the uwsgi protocol, as nginx's uwsgi_pass speaks it;
- the same GETs on a worker with `--threads 2`.

It serves bench/apps/hello.py with the dragoman that `python` imports (the build puts the
instrumented one first on PYTHONPATH), and stops each server with SIGTERM, so every process
writes its counts on the way out. It exits non-zero, saying what went wrong, if a server fails
to start or to stop, or an answer is wrong.

    python pgo/train.py [--scale S]    # S multiplies every request count (default 1.0)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

APPS = Path(__file__).resolve().parent.parent / "bench" / "apps"
LISTENING = re.compile(r"listening on (http|uwsgi)://(\S+)")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
ANSWER_TIMEOUT = 30.0

HELLO = b"Hello, world!"
# A JSON document of exactly 4 KiB: 100 items, padded with spaces before the closing brackets.
ECHO = b'{"items": [' + b",".join(b'{"id": %d, "name": "item %05d"}' % (i, i) for i in range(100))
ECHO = ECHO + b" " * (4096 - 2 - len(ECHO)) + b"]}"
BROWSER_HEADERS = (
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/131.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Cookie: csrftoken=Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4; sessionid=abcdef0123456789abcdef\r\n"
    b"Referer: http://127.0.0.1/\r\n"
)


class TrainingError(Exception):
    """A server did not start or stop as it should, or answered wrongly."""


@dataclass
class Answer:
    """One HTTP response as read off the wire."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes


async def read_answer(reader: asyncio.StreamReader, head_only: bool = False) -> Answer:
    """Reads one response: its head, then a body framed by Content-Length, chunks or close."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if head_only or status in (204, 304):
        return Answer(status, headers, b"")
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        pieces = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            pieces.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(pieces)
    else:
        body = await reader.read()
    return Answer(status, headers, body)


def expect(answer: Answer, status: int, body: bytes | None = None, what: str = "") -> None:
    if answer.status != status:
        raise TrainingError(f"{what}: status {answer.status}, expected {status}")
    if body is not None and answer.body != body:
        raise TrainingError(
            f"{what}: a body of {len(answer.body)} bytes that is not the expected {len(body)}"
        )


@dataclass
class Exchange:
    """One kind of request: the bytes to send and the check of the answer."""

    name: str
    request: bytes
    check: Callable[[Answer], None]
    keep_alive: bool = True
    head_only: bool = False


async def client(address: str, exchange: Exchange, count: int) -> None:
    """Sends `count` requests one at a time over one connection, or over a new connection each
    when the exchange does not keep it alive."""
    host, port = address.rsplit(":", 1)
    writer = None
    try:
        for _ in range(count):
            if writer is None:
                reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(exchange.request)
            answer = await asyncio.wait_for(read_answer(reader, exchange.head_only), ANSWER_TIMEOUT)
            exchange.check(answer)
            if not exchange.keep_alive:
                writer.close()
                await writer.wait_closed()
                writer = None
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
        raise TrainingError(f"{exchange.name}: {type(e).__name__}: {e}") from None
    finally:
        if writer is not None:
            writer.close()


async def drive(address: str, exchange: Exchange, connections: int, count: int) -> None:
    """`count` requests of one kind over `connections` connections side by side."""
    per_connection = max(1, count // connections)
    started = time.monotonic()
    await asyncio.gather(*(client(address, exchange, per_connection) for _ in range(connections)))
    elapsed = time.monotonic() - started
    total = per_connection * connections
    print(f"  {exchange.name}: {total} requests over {connections} connection(s), {elapsed:.1f}s")


def http_get(path: str, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + path.encode() + b" " + version + b"\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


def uwsgi_packet(variables: dict[str, str]) -> bytes:
    data = b""
    for key, value in variables.items():
        for s in (key.encode("latin-1"), value.encode("latin-1")):
            data += struct.pack("<H", len(s)) + s
    return struct.pack("<BHB", 0, len(data), 0) + data


def http_exchanges(static: dict[str, bytes], etag: bytes) -> list[tuple[Exchange, int, int]]:
    """(exchange, connections, count) for the HTTP listener, at scale 1; `etag` is the one the
    server gives small.css."""
    small, large = static["small.css"], static["large.js"]

    def hello(answer: Answer) -> None:
        expect(answer, 200, HELLO, "GET /")

    def echo(answer: Answer) -> None:
        expect(answer, 200, ECHO, "POST /echo")

    def chunked_echo(answer: Answer) -> None:
        expect(answer, 200, ECHO[:1000], "chunked POST /echo")

    def stream(answer: Answer) -> None:
        expect(answer, 200, None, "GET /stream")
        if len(answer.body) != 1024 * 1024:
            raise TrainingError(f"GET /stream: {len(answer.body)} bytes, expected 1 MiB")

    def head(answer: Answer) -> None:
        expect(answer, 200, None, "HEAD /")
        if answer.headers.get(b"content-length") != b"13":
            raise TrainingError("HEAD /: no Content-Length of 13")

    def static_plain(body: bytes, name: str) -> Callable[[Answer], None]:
        return lambda answer: expect(answer, 200, body, f"GET /static/{name}")

    def static_gzip(answer: Answer) -> None:
        expect(answer, 200, None, "GET /static/large.js, gzip")
        if answer.headers.get(b"content-encoding") != b"gzip":
            raise TrainingError("GET /static/large.js with Accept-Encoding: gzip: not gzipped")

    def static_304(answer: Answer) -> None:
        expect(answer, 304, None, "conditional GET /static/small.css")

    def static_range(answer: Answer) -> None:
        expect(answer, 206, large[1000:5000], "ranged GET /static/large.js")

    chunked_body = b"3e8\r\n" + ECHO[:1000] + b"\r\n0\r\n\r\n"
    post = (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(ECHO)
    ) + ECHO
    chunked = (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked_body
    )
    return [
        (Exchange("GET / (one connection)", http_get("/"), hello), 1, 20_000),
        (Exchange("GET / (many connections)", http_get("/"), hello), 32, 40_000),
        (Exchange("GET / (a browser's head)", http_get("/", BROWSER_HEADERS), hello), 8, 10_000),
        (
            Exchange("HEAD /", b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", head, head_only=True),
            4,
            2000,
        ),
        (
            Exchange("GET / HTTP/1.0", http_get("/", b"", b"HTTP/1.0"), hello, keep_alive=False),
            4,
            2000,
        ),
        (
            Exchange(
                "GET /, Connection: close",
                http_get("/", b"Connection: close\r\n"),
                hello,
                keep_alive=False,
            ),
            4,
            2000,
        ),
        (Exchange("POST /echo (4 KiB JSON)", post, echo), 16, 15_000),
        (Exchange("POST /echo (chunked)", chunked, chunked_echo), 4, 2000),
        (Exchange("GET /stream (1 MiB)", http_get("/stream"), stream), 4, 400),
        (
            Exchange(
                "GET /static/small.css",
                http_get("/static/small.css"),
                static_plain(small, "small.css"),
            ),
            16,
            15_000,
        ),
        (
            Exchange(
                "GET /static/large.js",
                http_get("/static/large.js"),
                static_plain(large, "large.js"),
            ),
            8,
            3000,
        ),
        (
            Exchange(
                "GET /static/large.js (gzip)",
                http_get("/static/large.js", b"Accept-Encoding: gzip\r\n"),
                static_gzip,
            ),
            8,
            3000,
        ),
        (
            Exchange(
                "GET /static/small.css (If-None-Match)",
                http_get("/static/small.css", b"If-None-Match: " + etag + b"\r\n"),
                static_304,
            ),
            8,
            5000,
        ),
        (
            Exchange(
                "GET /static/large.js (Range)",
                http_get("/static/large.js", b"Range: bytes=1000-4999\r\n"),
                static_range,
            ),
            8,
            3000,
        ),
    ]


def uwsgi_exchange() -> Exchange:
    request = uwsgi_packet(
        {
            "REQUEST_METHOD": "GET",
            "REQUEST_URI": "/",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "40000",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_USER_AGENT": "Mozilla/5.0",
            "HTTP_ACCEPT": "*/*",
        }
    )

    def check(answer: Answer) -> None:
        expect(answer, 200, HELLO, "GET / over uwsgi")

    return Exchange("GET / over the uwsgi protocol", request, check, keep_alive=False)


class Trainee:
    """A dragoman started for training; `stop` sends SIGTERM and waits for a clean exit."""

    def __init__(self, args: list[str], apps: Path, log: Path):
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dragoman", *args],
                cwd=apps,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.addresses: dict[str, str] = {}
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "all 1 worker(s) ready" in text:
                self.addresses = {m[1]: m[2] for m in LISTENING.finditer(text)}
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.proc.kill()
        raise TrainingError(f"dragoman {' '.join(args)} did not start; its log:\n{text}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise TrainingError(f"dragoman did not stop within {STOP_TIMEOUT:.0f}s") from None
        if code != 0:
            log = self.log.read_text(errors="replace")
            raise TrainingError(f"dragoman exited with {code} after SIGTERM; its log:\n{log}")


def static_files(root: Path) -> dict[str, bytes]:
    """A small stylesheet and a 100 KiB script, with the variants `dragoman compress` writes."""
    css = b"".join(b".rule-%d { margin: %dpx; }\n" % (i, i % 17) for i in range(40))[:1024]
    js = b"".join(b"function f%d(a) { return a * %d; }\n" % (i, i) for i in range(4000))
    files = {"small.css": css, "large.js": js[: 100 * 1024]}
    for name, body in files.items():
        (root / name).write_bytes(body)
    subprocess.run([sys.executable, "-m", "dragoman", "compress", "--quiet", str(root)], check=True)
    return files


async def train(scale: float, apps: Path, work: Path) -> None:
    static_root = work / "static"
    static_root.mkdir()
    static = static_files(static_root)
    server = Trainee(
        [
            "--http",
            "127.0.0.1:0",
            "--socket",
            "127.0.0.1:0",
            "--static-map",
            f"/static={static_root}",
            "hello:application",
        ],
        apps,
        work / "server.log",
    )
    try:
        address = server.addresses["http"]
        # The static files' validator, as the server computes it.
        reader, writer = await asyncio.open_connection(*address.rsplit(":", 1))
        writer.write(http_get("/static/small.css"))
        etag = (await read_answer(reader)).headers.get(b"etag", b"")
        writer.close()
        if not etag:
            raise TrainingError("GET /static/small.css: no ETag")
        print(f"dragoman at {address}:")
        for exchange, connections, count in http_exchanges(static, etag):
            await drive(address, exchange, connections, max(1, int(count * scale)))
        await drive(server.addresses["uwsgi"], uwsgi_exchange(), 8, max(1, int(5000 * scale)))
    finally:
        server.stop()

    threaded = Trainee(
        ["--http", "127.0.0.1:0", "--threads", "2", "hello:application"],
        apps,
        work / "threaded.log",
    )
    try:
        print(f"dragoman --threads 2 at {threaded.addresses['http']}:")
        exchange = Exchange("GET /", http_get("/"), lambda a: expect(a, 200, HELLO, "GET /"))
        await drive(threaded.addresses["http"], exchange, 16, max(1, int(15_000 * scale)))
    finally:
        threaded.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every request count")
    parser.add_argument(
        "--apps", type=Path, default=APPS, help="the directory of hello.py (default: bench/apps)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dragoman-pgo-") as work:
        try:
            asyncio.run(train(args.scale, args.apps.resolve(), Path(work)))
        except TrainingError as e:
            print(f"pgo/train.py: {e}", file=sys.stderr)
            return 1
    print(f"training done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
