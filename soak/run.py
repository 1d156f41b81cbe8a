"""`make soak`: the example Django site under mixed traffic and faults for a bounded time.

Two workers serve examples/mysite (its dragoman.ini, with a free port). Meanwhile:
- normal clients (keep-alive) browse: the template page, the JSON API (GET and POST), an admin
  stylesheet (static-map), a streamed response, a FileResponse download; every answer checked;
- a view that raises (500 expected, with the traceback in the log);
- slowloris clients trickling a request head (cut off after header-timeout);
- oversized and malformed requests (414, 431, 413, 400 expected);
- clients that vanish mid-upload and mid-download;
- slow uploaders (a 100 KB POST at 2 KB a second) and slow readers (a 6.5 MB streamed
  response taken at 64 KB a second), more of each than the site has application threads:
  request buffering and the response buffer must keep them from holding the application;
- a worker killed with SIGKILL, and the whole site reloaded with SIGHUP, on timers.

Afterwards it reports requests by outcome, the normal traffic served and its p50/p99 (while
the slow clients ran), each worker's RSS after warm-up and at its end,
file descriptor counts before and after, and zombies; it writes soak/results.md and exits
non-zero when a bound is broken. Every loop is bounded by the run's duration.

    python soak/run.py [--seconds 600]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "examples" / "mysite"
DRAGOMAN = [sys.executable, "-m", "dragoman"]

HEADER_TIMEOUT = 5
WARM_UP = 20.0  # seconds of a worker's life before its RSS counts
RSS_GROWTH_BOUND = 10 * 1024  # KiB a worker may grow after warm-up
KILL_EVERY = 120.0  # defaults of --kill-every and --reload-every
RELOAD_EVERY = 200.0


@dataclass
class Tally:
    """Outcomes by kind, and the failures of normal traffic with their times."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: collections.Counter = field(default_factory=collections.Counter)
    failures: list[tuple[float, float, str]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def served(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.counts[kind] += n

    def fail(self, start: float, end: float, what: str) -> None:
        with self.lock:
            self.failures.append((start, end, what))

    def surprise(self, what: str) -> None:
        with self.lock:
            self.counts["unexpected"] += 1
            if len(self.unexpected) < 50:
                self.unexpected.append(what)


class Site:
    def __init__(self, work: Path):
        self.log_path = work / "dragoman.log"
        self.proc = subprocess.Popen(
            [
                *DRAGOMAN,
                "--ini",
                str(SITE / "dragoman.ini"),
                "--http",
                "127.0.0.1:0",
                "--processes",
                "2",
                "--header-timeout",
                str(HEADER_TIMEOUT),
                "--limit-post",
                str(10 * 1024 * 1024),
                "--worker-reload-mercy",
                "20",
            ],
            cwd=SITE,
            stdout=open(self.log_path, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.log()
            if "all 2 worker(s) ready" in text:
                self.address = re.search(r"listening on http://(\S+)", text).group(1)
                self.host, port = self.address.rsplit(":", 1)
                self.port = int(port)
                self.url = f"http://{self.address}"
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"dragoman exited:\n{text}")
            time.sleep(0.1)
        raise SystemExit(f"dragoman not ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]


def rss_kib(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(m.group(1)) if m else None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def zombies_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        ppid = re.search(r"PPid:\s+(\d+)", status)
        state = re.search(r"State:\s+(\w)", status)
        if ppid and state and int(ppid.group(1)) == pid and state.group(1) == "Z":
            found.append(int(entry))
    return found


# Traffic.


def normal_client(site: Site, tally: Tally, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=site.url, timeout=30) as client:
        while not stop.is_set():
            kind = rng.choice(["page", "api-get", "api-post", "static", "stream", "download"])
            start = time.monotonic()
            try:
                ok = check(client, kind, rng)
            except httpx.HTTPError as e:
                tally.fail(start, time.monotonic(), f"{kind}: {type(e).__name__}: {e}")
                tally.count("normal: connection error")
                continue
            if ok is True:
                tally.count("normal: as expected")
                tally.served(time.monotonic() - start)
            else:
                tally.surprise(f"{kind}: {ok}")


def check(client: httpx.Client, kind: str, rng: random.Random) -> bool | str:
    """Makes one request of a kind; True when the answer is right, else what was wrong."""
    if kind == "page":
        r = client.get("/")
        return r.status_code == 200 and b"csrfmiddlewaretoken" in r.content or str(r)
    if kind == "api-get":
        n = rng.randrange(1000)
        r = client.get(f"/api/?n={n}")
        return r.status_code == 200 and r.json()["query"] == {"n": str(n)} or str(r)
    if kind == "api-post":
        payload = {"items": list(range(rng.randrange(200))), "text": "é" * rng.randrange(100)}
        r = client.post("/api/", json=payload)
        return r.status_code == 200 and r.json()["received"] == payload or str(r)
    if kind == "static":
        r = client.get("/static/admin/css/base.css")
        return r.status_code == 200 and b"body" in r.content or str(r)
    if kind == "stream":
        n = rng.randrange(1, 50)
        r = client.get(f"/stream/?chunks={n}")
        want = "".join(f"line {i}\n" for i in range(n))
        return r.status_code == 200 and r.text == want or str(r)
    size = rng.choice([1024, 65536, 262144])
    r = client.get(f"/download/?size={size}")
    pattern = bytes(range(256))
    good = len(r.content) == size and r.content[:256] == pattern[: min(256, size)]
    return r.status_code == 200 and good or str(r)


def raw(site: Site, data: bytes, read_timeout: float = 10.0) -> bytes:
    with socket.create_connection((site.host, site.port), timeout=read_timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and len(out) > 64:
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def status(data: bytes) -> int | None:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


def raising_client(site: Site, tally: Tally, stop: threading.Event) -> None:
    with httpx.Client(base_url=site.url, timeout=30) as client:
        while not stop.wait(0.2):
            try:
                r = client.get("/boom/")
            except httpx.HTTPError:
                tally.count("boom: connection error")
                continue
            if r.status_code == 500:
                tally.count("boom: 500 as expected")
            else:
                tally.surprise(f"/boom/ answered {r.status_code}")


HOSTILE = [
    ("414 long request line", b"GET /?" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (
        "431 huge headers",
        b"GET / HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 1000) for i in range(40))
        + b"\r\n",
        431,
    ),
    (
        "413 body over limit-post",
        b"POST /api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20000000\r\n\r\n",
        413,
    ),
    ("400 garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 400),
    (
        "400 CL+TE smuggling",
        (
            b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        400,
    ),
    ("400 no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    (
        "400 bad chunk",
        b"POST /api/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    ),
]


def hostile_client(site: Site, tally: Tally, stop: threading.Event) -> None:
    i = 0
    while not stop.wait(0.05):
        name, data, want = HOSTILE[i % len(HOSTILE)]
        i += 1
        try:
            got = status(raw(site, data))
        except OSError as e:
            tally.count(f"hostile {name}: {type(e).__name__}")
            continue
        if got == want:
            tally.count(f"hostile {name}: as expected")
        elif got is None:
            tally.count(f"hostile {name}: closed without an answer")
        else:
            tally.surprise(f"{name}: got {got}")


def slowloris(site: Site, tally: Tally, stop: threading.Event) -> None:
    """Five connections at a time trickle a request head, a header line a second."""
    while not stop.is_set():
        socks = []
        for _ in range(5):
            s = socket.create_connection((site.host, site.port), timeout=1)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            socks.append((s, time.monotonic()))
        alive = list(socks)
        line = 0
        while alive and not stop.is_set():
            time.sleep(1)
            line += 1
            for s, opened in list(alive):
                try:
                    s.sendall(b"X-Slow-%d: v\r\n" % line)
                    s.setblocking(False)
                    try:
                        closed = s.recv(1024) == b""
                    except BlockingIOError:
                        closed = False
                    s.setblocking(True)
                except OSError:
                    closed = True
                if closed:
                    held = time.monotonic() - opened
                    tally.count(
                        "slowloris: cut off in time"
                        if held < HEADER_TIMEOUT + 3
                        else "slowloris: cut off late"
                    )
                    alive.remove((s, opened))
                    s.close()
                elif time.monotonic() - opened > HEADER_TIMEOUT + 10:
                    tally.surprise("a slowloris connection was never cut off")
                    alive.remove((s, opened))
                    s.close()
        for s, _ in alive:
            s.close()


def vanishing_client(site: Site, tally: Tally, stop: threading.Event) -> None:
    flip = False
    while not stop.wait(0.1):
        flip = not flip
        try:
            with socket.create_connection((site.host, site.port), timeout=10) as s:
                if flip:
                    s.sendall(
                        b"POST /api/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
                        + b"["
                        * 100_000
                    )
                    tally.count("vanished mid-upload")
                else:
                    s.sendall(b"GET /download/?size=8388608 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    s.recv(65536)
                    tally.count("vanished mid-download")
                # Leave abruptly: a reset, not a polite close.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            tally.count("vanishing: connection error")


SLOW_CLIENTS = 4  # of each kind: more than the site's 2 workers x 1 thread


def slow_uploader(site: Site, tally: Tally, stop: threading.Event) -> None:
    """Posts 100 KB of JSON at 2 KB a second (above body-min-rate), over and over."""
    body = b'{"items": [' + b",".join(b"%d" % i for i in range(20000)) + b"]}"
    body = body[: body.rindex(b",", 0, 100_000)] + b"]}"
    while not stop.is_set():
        try:
            with socket.create_connection((site.host, site.port), timeout=30) as s:
                s.sendall(
                    b"POST /api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                    b"Content-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body)
                )
                for i in range(0, len(body), 2048):
                    if stop.wait(1.0):
                        return
                    s.sendall(body[i : i + 2048])
                answer = s.recv(65536)
                tally.count(f"slow upload: {status(answer) or 'no answer'}")
        except OSError as e:
            tally.count(f"slow upload: {type(e).__name__}")


def slow_reader(site: Site, tally: Tally, stop: threading.Event) -> None:
    """Asks for a 6.5 MB streamed response and takes it at 64 KB a second."""
    while not stop.is_set():
        try:
            with socket.create_connection((site.host, site.port), timeout=30) as s:
                s.sendall(
                    b"GET /stream/?chunks=100&width=65536 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Connection: close\r\n\r\n"
                )
                taken = 0
                while not stop.wait(0.25):
                    chunk = s.recv(16384)
                    if not chunk:
                        break
                    taken += len(chunk)
                tally.count("slow read: whole" if taken > 6_500_000 else "slow read: partial")
        except OSError as e:
            tally.count(f"slow read: {type(e).__name__}")


# Faults and sampling.


def chaos(
    site: Site,
    stop: threading.Event,
    events: list[tuple[float, str]],
    kill_every: float,
    reload_every: float,
) -> None:
    start = time.monotonic()
    next_kill, next_reload = start + kill_every / 2, start + reload_every
    while not stop.wait(0.5):
        now = time.monotonic()
        if now >= next_kill:
            workers = site.workers()
            if workers:
                victim = random.choice(workers)
                events.append((time.monotonic(), f"SIGKILL worker {victim}"))
                os.kill(victim, signal.SIGKILL)
            next_kill += kill_every
        if now >= next_reload:
            events.append((time.monotonic(), "SIGHUP"))
            os.kill(site.proc.pid, signal.SIGHUP)
            next_reload += reload_every


@dataclass
class Life:
    born: float
    warm: int | None = None  # RSS (KiB) at the first sample after warm-up
    last: int | None = None
    peak: int = 0
    samples: int = 0


def sampler(site: Site, stop: threading.Event, lives: dict[int, Life], master_fds: list) -> None:
    while not stop.wait(2):
        now = time.monotonic()
        for pid in site.workers():
            life = lives.setdefault(pid, Life(born=now))
            rss = rss_kib(pid)
            if rss is None:
                continue
            life.samples += 1
            if now - life.born >= WARM_UP:
                if life.warm is None:
                    life.warm = rss
                life.last = rss
                life.peak = max(life.peak, rss)
        master_fds.append(fd_count(site.proc.pid))


def idle_fds(site: Site) -> dict[int, int | None]:
    """Each worker's descriptors, but for the static files its cache keeps open on purpose
    (those over 16 KiB, sent with sendfile; bounded by the cache)."""
    static = str(SITE / "staticfiles") + "/"

    def count(pid: int) -> int | None:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            return None
        return sum(1 for link in links if not link.startswith(static))

    return {pid: count(pid) for pid in site.workers()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--kill-every", type=float, default=KILL_EVERY, help="SIGKILL period")
    parser.add_argument("--reload-every", type=float, default=RELOAD_EVERY, help="SIGHUP period")
    args = parser.parse_args()
    work = ROOT / "soak" / "work"
    work.mkdir(parents=True, exist_ok=True)
    site = Site(work)
    print(f"soak: {site.url}, {args.seconds:.0f}s", flush=True)
    time.sleep(1)
    master_fds_start = fd_count(site.proc.pid)
    worker_fds_start = idle_fds(site)

    tally = Tally()
    stop = threading.Event()
    events: list[tuple[float, str]] = []
    lives: dict[int, Life] = {}
    master_fds: list = []
    started = time.monotonic()
    threads = [
        threading.Thread(target=normal_client, args=(site, tally, stop, i)) for i in range(4)
    ]
    threads += [
        threading.Thread(target=raising_client, args=(site, tally, stop)),
        threading.Thread(target=hostile_client, args=(site, tally, stop)),
        threading.Thread(target=slowloris, args=(site, tally, stop)),
        threading.Thread(target=vanishing_client, args=(site, tally, stop)),
        *[
            threading.Thread(target=kind, args=(site, tally, stop))
            for kind in (slow_uploader, slow_reader)
            for _ in range(SLOW_CLIENTS)
        ],
        threading.Thread(
            target=chaos, args=(site, stop, events, args.kill_every, args.reload_every)
        ),
        threading.Thread(target=sampler, args=(site, stop, lives, master_fds)),
    ]
    for t in threads:
        t.start()
    while time.monotonic() - started < args.seconds:
        time.sleep(1)
        if site.proc.poll() is not None:
            print("dragoman exited during the soak", file=sys.stderr)
            break
        elapsed = int(time.monotonic() - started)
        if elapsed % 60 == 0:
            print(f"  {elapsed}s: {sum(tally.counts.values()):,} outcomes", flush=True)
    stop.set()
    for t in threads:
        t.join(60)
    duration = time.monotonic() - started

    # Let the connections of the traffic close (keep-alive ends after header-timeout).
    time.sleep(HEADER_TIMEOUT + 3)
    master_fds_end = fd_count(site.proc.pid)
    worker_fds_end = idle_fds(site)
    zombies = zombies_of(site.proc.pid)
    final_rss = {pid: rss_kib(pid) for pid in site.workers()}
    log = site.log()
    site.proc.send_signal(signal.SIGTERM)
    try:
        exit_code = site.proc.wait(60)
    except subprocess.TimeoutExpired:
        exit_code = None
        site.proc.kill()
    left = subprocess.run(
        ["pgrep", "-g", str(site.proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()

    # Normal-traffic failures explained by a SIGKILL: the request was running, or its
    # kept-alive connection was waiting (up to header-timeout), when a worker was killed.
    kills = [t for t, what in events if what.startswith("SIGKILL")]
    explained = [
        f for f in tally.failures if any(f[0] - HEADER_TIMEOUT <= k <= f[1] + 0.5 for k in kills)
    ]
    unexplained = [f for f in tally.failures if f not in explained]

    growth = {
        pid: (life.last - life.warm)
        for pid, life in lives.items()
        if life.warm is not None and life.last is not None
    }
    warm = [life.warm for life in lives.values() if life.warm]
    counts = dict(sorted(tally.counts.items()))
    served = sorted(tally.latencies)

    def pct(p: float) -> str:
        return (
            f"{served[min(len(served) - 1, int(p * len(served)))] * 1000:.1f} ms" if served else "-"
        )

    bounds = {
        "no unexpected answers": tally.counts["unexpected"] == 0,
        "normal-traffic failures all explained by a SIGKILL": not unexplained,
        f"RSS growth after warm-up <= {RSS_GROWTH_BOUND // 1024} MiB per worker": all(
            g <= RSS_GROWTH_BOUND for g in growth.values()
        ),
        "master fds back to the start": master_fds_end == master_fds_start,
        "worker fds back to a fresh worker's": sorted(set(worker_fds_end.values()))
        == sorted(set(worker_fds_start.values())),
        "no zombies": not zombies,
        "clean stop (exit 0, no process left)": exit_code == 0 and not left,
        "tracebacks of /boom/ logged": "boom: deliberate failure" in log,
        "slow uploads answered": tally.counts["slow upload: 200"] > 0,
        "slow readers served whole": tally.counts["slow read: whole"] > 0,
    }
    lines = [
        "# Soak results",
        "",
        (
            f"`make soak` (soak/run.py --seconds {args.seconds:.0f}): the example Django site, 2 "
            f"workers, {duration:.0f} s of mixed traffic on this 2-core machine (release build). "
            f"Faults: SIGKILL of a random worker every {args.kill_every:.0f} s (the first at "
            f"{args.kill_every / 2:.0f} s), SIGHUP every {args.reload_every:.0f} s."
        ),
        "",
        "## Outcomes",
        "",
        (
            f"Normal traffic served while {SLOW_CLIENTS} slow uploaders and {SLOW_CLIENTS} slow "
            f"readers ran: {len(served):,} requests ({len(served) / duration:.0f}/s), "
            f"p50 {pct(0.5)}, p99 {pct(0.99)}."
        ),
        "",
        "| outcome | count |",
        "|---|---|",
        *[f"| {k} | {v:,} |" for k, v in counts.items()],
        "",
        f"Faults: {', '.join(w for _, w in events) or 'none'}.",
        (
            f"Normal-traffic connection errors: {len(tally.failures)}, of which {len(explained)} "
            f"during or just after a SIGKILL of a worker, {len(unexplained)} otherwise."
        ),
        "",
        "## Memory (worker RSS, MiB)",
        "",
        f"{len(lives)} workers lived during the run. After {WARM_UP:.0f} s of warm-up: median "
        f"{statistics.median(warm) / 1024:.1f} MiB at warm-up"
        if warm
        else "No worker lived past warm-up.",
        "",
        "| worker pid | at warm-up | at its last sample | peak | growth |",
        "|---|---|---|---|---|",
        *[
            f"| {pid} | {life.warm / 1024:.1f} | {life.last / 1024:.1f} | {life.peak / 1024:.1f} "
            f"| {(life.last - life.warm) / 1024:+.1f} |"
            for pid, life in lives.items()
            if life.warm is not None and life.last is not None
        ],
        "",
        f"Workers alive at the end: {', '.join(f'{p}: {(r or 0) / 1024:.1f} MiB' for p, r in final_rss.items())}.",
        "",
        "## File descriptors and processes",
        "",
        (
            f"- master: {master_fds_start} at the start, {master_fds_end} at the end "
            f"(range during the run {min(filter(None, master_fds), default=0)}-"
            f"{max(filter(None, master_fds), default=0)})"
        ),
        (
            f"- idle workers: {sorted(worker_fds_start.values())} at the start (fresh), "
            f"{sorted(worker_fds_end.values())} at the end"
        ),
        (
            f"- zombies at the end: {len(zombies)}; processes left after SIGTERM: {len(left)}; "
            f"master exit code {exit_code}"
        ),
        "",
        "## Bounds",
        "",
        *[f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in bounds.items()],
        "",
    ]
    if tally.unexpected or unexplained:
        lines += ["## Unexpected", "", *[f"- {u}" for u in tally.unexpected]]
        lines += [f"- {what} at {s - started:.1f}s" for s, _, what in unexplained[:50]]
        lines.append("")
    text = "\n".join(lines)
    (ROOT / "soak" / "results.md").write_text(text)
    print(text)
    return 0 if all(bounds.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
