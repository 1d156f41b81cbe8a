"""Helpers of the operations tests (metrics, health checks, proxies, config checks): a raw
HTTP/1.1 client that counts every byte it sends and receives, and a Prometheus scrape parsed
with prometheus_client's own parsers."""

from __future__ import annotations

import socket
import time

import httpx

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class RawClient:
    """One keep-alive connection: sends requests as raw bytes, reads each response whole
    (Content-Length bodies; none for HEAD, 204 and 304), and counts the bytes both ways."""

    def __init__(self, host: str, port: int, source: str | None = None, timeout: float = 10):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
        self.sent = 0
        self.received = 0
        self.buffer = b""

    def request(self, raw: bytes, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        self.sock.sendall(raw)
        self.sent += len(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head_bytes, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head or status in (204, 304) else int(headers.get("content-length", "0"))
        while len(rest) < length:
            self._more()
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        body, self.buffer = rest[:length], rest[length:]
        self.received += len(head_bytes) + 4 + length
        return status, headers, body

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def get(path: str, host: str = "x", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


class Scrape:
    """One scrape: the samples by (name, sorted labels), and the families."""

    def __init__(self, text: str, openmetrics: bool):
        from prometheus_client.openmetrics.parser import (
            text_string_to_metric_families as openmetrics_families,
        )
        from prometheus_client.parser import text_string_to_metric_families as text_families

        parse = openmetrics_families if openmetrics else text_families
        self.families = {f.name: f for f in parse(text)}
        self.samples: dict[tuple[str, tuple], float] = {}
        for family in self.families.values():
            for s in family.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))


def scrape(address: str, openmetrics: bool = False, timeout: float = 5) -> Scrape:
    headers = {"Accept": OPENMETRICS} if openmetrics else {}
    r = httpx.get(f"http://{address}/metrics", headers=headers, timeout=timeout)
    assert r.status_code == 200, r.text
    kind = "application/openmetrics-text" if openmetrics else "text/plain; version=0.0.4"
    assert r.headers["content-type"].startswith(kind), r.headers
    return Scrape(r.text, openmetrics)


def wait_until(predicate, timeout: float = 10.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)
