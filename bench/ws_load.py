"""A WebSocket echo load: `ws_load.py PORT CLIENTS SECONDS` opens CLIENTS connections to
127.0.0.1:PORT (offering no extension), then each sends a 32-byte masked text frame and waits
for its echo, again and again, for SECONDS; prints the messages echoed per second. Frames are
built once and echoes counted by length, so the client spends little per message (uvloop when
installed)."""

import asyncio
import base64
import os
import sys
import time

PAYLOAD = b"0123456789abcdef0123456789abcdef"
KEY = b"\x11\x22\x33\x44"
FRAME = (
    bytes([0x81, 0x80 | len(PAYLOAD)]) + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(PAYLOAD))
)
ECHO = 2 + len(PAYLOAD)  # the server's frame: unmasked


class Client(asyncio.Protocol):
    def __init__(self, handshaken: asyncio.Future, until: float):
        self.handshaken = handshaken
        self.until = until
        self.head = b""
        self.pending = 0
        self.count = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16))
        transport.write(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data):
        if not self.handshaken.done():
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.handshaken.set_exception(RuntimeError(self.head[:40]))
                return
            self.handshaken.set_result(None)
            data = self.head.split(b"\r\n\r\n", 1)[1]
        self.pending += len(data)
        while self.pending >= ECHO:
            self.pending -= ECHO
            self.count += 1
            if time.monotonic() < self.until:
                self.transport.write(FRAME)

    def start(self):
        self.transport.write(FRAME)


async def main(port: int, clients: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    far = time.monotonic() + 3600
    made = []
    for _ in range(clients):
        done = loop.create_future()
        _, client = await loop.create_connection(lambda d=done: Client(d, far), "127.0.0.1", port)
        await asyncio.wait_for(done, 10)
        made.append(client)
    started = time.monotonic()
    for client in made:
        client.until = started + seconds
        client.start()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    total = sum(c.count for c in made)
    for client in made:
        client.transport.close()
    print(f"{total / elapsed:.0f}")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
