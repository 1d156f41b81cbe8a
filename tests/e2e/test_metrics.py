"""`metrics = ADDR`: the master serves Prometheus text (and OpenMetrics when asked) summed
over every worker from the scoreboard. The counters are checked against what real clients
sent and received, byte for byte, during and after a load run; the exposition is read with
prometheus_client's own parsers; restarts are counted by reason; a scraper that stalls does
not hold the master."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conftest import APPS
from ops import RawClient, get, scrape, wait_until

REQUESTS = "dragoman_http_requests_total"
LATENCY = "dragoman_http_request_duration_seconds"


@pytest.fixture
def site(tmp_path) -> Path:
    static = tmp_path / "static"
    static.mkdir()
    (static / "app.css").write_text("body { color: teal }\n" * 40)
    shutil.copy(APPS / "ops_app.py", tmp_path / "ops_app.py")
    return tmp_path


def metrics_address(server) -> str:
    return server.wait_for_log(r"metrics on http://(127\.0\.0\.1:\d+)/metrics").group(1)


def start(dragoman, site, *extra, workers=1):
    return dragoman(
        "ops_app:application",
        "--metrics",
        "127.0.0.1:0",
        "--static-map",
        f"/static={site / 'static'}",
        *extra,
        cwd=site,
        workers=workers,
    )


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def run_clients(server, etag: str, clients: int, rounds: int):
    """`clients` threads, each on its own keep-alive connection, send `rounds` times the same
    mix; returns what they saw: (route, method, class) counts, bytes sent and received."""
    seen: Counter = Counter()
    totals = {"sent": 0, "received": 0, "static_hits": 0, "not_modified": 0, "misses": 0}
    lock = threading.Lock()
    errors = []
    body = b"x" * 3000
    mix = [
        ("app", "GET", get("/hello"), False),
        ("app", "GET", get("/status?code=404"), False),
        ("app", "GET", get("/status?code=503"), False),
        (
            "app",
            "POST",
            b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n" + body,
            False,
        ),
        ("static", "GET", get("/static/app.css"), False),
        ("static", "HEAD", b"HEAD /static/app.css HTTP/1.1\r\nHost: x\r\n\r\n", True),
        ("static", "GET", get("/static/app.css", extra=f"If-None-Match: {etag}\r\n"), False),
        # Under the mount but no such file: a miss, answered by the application.
        ("app", "GET", get("/static/nothing.css"), False),
        ("app", "DELETE", b"DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", False),
    ]

    def one():
        try:
            c = RawClient(server.host, server.port)
            local: Counter = Counter()
            hits = nm = miss = 0
            for _ in range(rounds):
                for route, method, raw, head in mix:
                    status, _, _ = c.request(raw, head=head)
                    local[(route, method, status_class(status))] += 1
                    if route == "static" and status == 200:
                        hits += 1
                    if status == 304:
                        nm += 1
                    if b"/static/nothing" in raw:
                        miss += 1
            c.close()
            with lock:
                seen.update(local)
                totals["sent"] += c.sent
                totals["received"] += c.received
                totals["static_hits"] += hits
                totals["not_modified"] += nm
                totals["misses"] += miss
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads, seen, totals, errors


def test_counters_add_up_to_what_the_clients_sent_and_received(dragoman, site):
    server = start(dragoman, site, "--processes", "2", workers=2)
    address = metrics_address(server)
    etag = httpx.get(f"{server.url}/static/app.css").headers["etag"]
    before = scrape(address)

    threads, seen, totals, errors = run_clients(server, etag, clients=6, rounds=40)
    # Scrapes during the run, in both formats, parsed by prometheus_client: the counters
    # only grow.
    last = before.total(REQUESTS)
    scrapes = 0
    while any(t.is_alive() for t in threads):
        s = scrape(address, openmetrics=scrapes % 2 == 1)
        now = s.total(REQUESTS)
        assert now >= last, (now, last)
        last, scrapes = now, scrapes + 1
        time.sleep(0.02)
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert scrapes >= 2, "the run ended before a scrape could see it"

    sent_requests = sum(seen.values())
    assert sent_requests == 6 * 40 * 9

    def settled():
        s = scrape(address)
        done = s.total(REQUESTS) - before.total(REQUESTS)
        assert done <= sent_requests, f"counted {done} of {sent_requests} requests"
        return s if done == sent_requests and s.value("dragoman_connections_open") == 0 else None

    after = wait_until(settled, message="every request counted and every connection closed")
    for (route, method, cls), n in seen.items():
        labels = {"route": route, "method": method, "status": cls}
        got = after.value(REQUESTS, **labels) - before.value(REQUESTS, **labels)
        assert got == n, (labels, got, n)
    # The histogram counts the same requests, by route.
    for route in ("app", "static"):
        want = sum(n for (r, _, _), n in seen.items() if r == route)
        got = after.value(f"{LATENCY}_count", route=route) - before.value(
            f"{LATENCY}_count", route=route
        )
        inf = after.value(f"{LATENCY}_bucket", route=route, le="+Inf") - before.value(
            f"{LATENCY}_bucket", route=route, le="+Inf"
        )
        assert got == want == inf, (route, got, want, inf)
    # Bytes, exactly as the clients counted them (the scrapes go to the master, not here).
    delta = {
        name: after.value(name) - before.value(name)
        for name in (
            "dragoman_http_received_bytes_total",
            "dragoman_http_sent_bytes_total",
            "dragoman_static_hits_total",
            "dragoman_static_not_modified_total",
            "dragoman_static_misses_total",
        )
    }
    assert delta["dragoman_http_received_bytes_total"] == totals["sent"]
    assert delta["dragoman_http_sent_bytes_total"] == totals["received"]
    assert delta["dragoman_static_hits_total"] == totals["static_hits"] == 6 * 40 * 2
    assert delta["dragoman_static_not_modified_total"] == totals["not_modified"] == 6 * 40
    assert delta["dragoman_static_misses_total"] == totals["misses"] == 6 * 40
    assert after.value("dragoman_http_requests_in_flight") == 0
    assert after.value("dragoman_workers") == 2
    rss = [v for (n, _), v in after.samples.items() if n == "dragoman_worker_resident_memory_bytes"]
    assert len(rss) == 2 and all(v > 1_000_000 for v in rss), rss
    assert after.value("dragoman_ready") == 1


def test_a_wrk_run_adds_up(dragoman, site):
    wrk = shutil.which("wrk")
    assert wrk, "wrk is installed by make bench's dependencies (apt: wrk)"
    server = start(dragoman, site)
    address = metrics_address(server)
    before = scrape(address).total(REQUESTS)
    out = subprocess.run(
        [wrk, "-t1", "-c8", "-d2s", f"{server.url}/hello"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    done = int(re.search(r"(\d+) requests in", out).group(1))
    assert done > 100, out

    def counted():
        n = scrape(address).total(REQUESTS, route="app", method="GET", status="2xx") - before
        return n if n >= done else None

    n = wait_until(counted, message=f"{done} requests counted")
    # wrk counts the responses it read before it stopped; each of its 8 connections may have
    # had one more answered.
    assert done <= n <= done + 8, (done, n, out)


def test_restarts_are_counted_by_reason_and_counters_never_go_back(dragoman, site):
    server = start(dragoman, site, "--max-requests", "5", "--harakiri", "2")
    address = metrics_address(server)

    def restarts(reason):
        return scrape(address).value("dragoman_worker_restarts_total", reason=reason)

    # A worker at max-requests serves on until its replacement accepts: send until two
    # recycles are done (bounded), then every request sent is still counted.
    sent = 0
    with httpx.Client() as c:
        deadline = time.monotonic() + 30
        while restarts("max-requests") < 2 and time.monotonic() < deadline and sent < 200:
            assert c.get(f"{server.url}/hello", headers={"Connection": "close"}).status_code == 200
            sent += 1
            time.sleep(0.02)
    assert restarts("max-requests") >= 2
    wait_until(
        lambda: scrape(address).total(REQUESTS, route="app") == sent,
        message=f"{sent} requests counted",
    )

    pid = int(httpx.get(f"{server.url}/pid").text)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: restarts("crash") == 1, message="a crash counted")
    # The replacement serves before the reload, which then has a worker to replace.
    wait_until(lambda: httpx.get(f"{server.url}/pid").text != str(pid), message="a new worker")

    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: restarts("reload") == 1, message="a reload counted")

    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/stuck", timeout=8)
    wait_until(lambda: restarts("harakiri") == 1, timeout=15, message="a harakiri counted")
    s = scrape(address)
    assert s.total(REQUESTS, route="app") >= sent + 1
    assert s.value("dragoman_worker_restarts_total", reason="rss") == 0


def test_queue_depth_connections_and_in_flight_seen_while_a_worker_is_busy(dragoman, site):
    server = start(dragoman, site)
    address = metrics_address(server)
    idle = [RawClient(server.host, server.port) for _ in range(3)]
    for c in idle:
        assert c.request(get("/hello"))[0] == 200
    wait_until(
        lambda: scrape(address).value("dragoman_connections_open") == 3,
        message="three open connections",
    )
    # With one thread, the app runs on the event loop: while it sleeps, new connections wait
    # in the listener's accept queue, and the master sees them there.
    slow = threading.Thread(
        target=lambda: httpx.get(f"{server.url}/sleep?t=2", timeout=10), daemon=True
    )
    slow.start()
    server.wait_for_log(r"app: /sleep started")
    waiting = [socket.create_connection((server.host, server.port)) for _ in range(4)]

    def queued():
        s = scrape(address)
        return s if s.value("dragoman_listen_queue", listener=server.addresses[0]) >= 4 else None

    s = wait_until(queued, message="4 connections in the accept queue")
    assert s.value("dragoman_http_requests_in_flight") == 1
    assert s.value("dragoman_listen_queue_max", listener=server.addresses[0]) == 1024
    slow.join(10)
    for w in waiting:
        w.close()
    for c in idle:
        c.close()
    wait_until(
        lambda: scrape(address).value("dragoman_connections_open") == 0,
        message="the connections closed",
    )


def test_stalled_scrapers_do_not_hold_the_master(dragoman, site):
    server = start(dragoman, site)
    address = metrics_address(server)
    host, port = address.rsplit(":", 1)
    # Silent clients, one that sends a head without end, one that never reads.
    silent = [socket.create_connection((host, int(port))) for _ in range(5)]
    endless = socket.create_connection((host, int(port)))
    endless.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 20000)
    t0 = time.monotonic()
    s = scrape(address)
    assert time.monotonic() - t0 < 2
    assert s.value("dragoman_ready") == 1
    # The master's other work goes on: a reload completes while they hang.
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log(r"reload finished", timeout=20)
    assert b"431" in endless.recv(4096)
    # Other paths and methods.
    assert httpx.get(f"http://{address}/").status_code == 404
    assert httpx.post(f"http://{address}/metrics").status_code == 405
    head = httpx.head(f"http://{address}/metrics")
    assert head.status_code == 200 and head.content == b""
    for c in [*silent, endless]:
        c.close()
