"""A steady load on the fleet, run in the client's namespace: `--concurrency` keep-alive
connections (one httpx client per thread), paced to `--rate` requests a second in all, until
SIGTERM or `--seconds` (and never more than `--max-requests`). Every request is written to
`--out` as a JSON line: when it started and ended (time.monotonic(), the same clock as the
test's), what it asked, the status, which host answered (HAProxy's X-Fleet-Server), the
release the site said it runs, and the error if it failed.

The mix: the guestbook's JSON API (GET, the release in its answer), a JSON POST echoed back
(a request body, so hyper's path), and a static file (dragoman's static path).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time

import httpx

STATIC = "/static/admin/css/base.css"
HOST = "localhost"  # in the site's ALLOWED_HOSTS


def one(client: httpx.Client, n: int, thread: int, static_len: list[int]) -> dict:
    kind = ("get", "get", "get", "get", "get", "get", "post", "static", "static", "get")[n % 10]
    rec: dict = {"kind": kind, "thread": thread, "t0": time.monotonic()}
    try:
        if kind == "get":
            r = client.get("/api/", params={"n": n})
        elif kind == "post":
            r = client.post("/api/", json={"n": n, "thread": thread})
        else:
            r = client.get(STATIC)
        rec["status"] = r.status_code
        rec["server"] = r.headers.get("x-fleet-server")
        ok = r.status_code == 200
        if ok and kind == "get":
            data = r.json()
            rec["release"] = data.get("release")
            ok = data.get("query") == {"n": str(n)}
        elif ok and kind == "post":
            ok = r.json() == {"method": "POST", "received": {"n": n, "thread": thread}}
        elif ok:
            # Every host serves the same file: its length is learnt once and then checked.
            if not static_len:
                static_len.append(len(r.content))
            ok = len(r.content) == static_len[0] and len(r.content) > 1000
        if not ok:
            rec["error"] = f"unexpected answer: {r.status_code} {r.text[:200]!r}"
    except httpx.HTTPError as e:
        rec["error"] = f"{type(e).__name__}: {e}"
    rec["t1"] = time.monotonic()
    rec["ok"] = "error" not in rec
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--max-requests", type=int, default=200_000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + args.seconds
    interval = args.concurrency / args.rate
    records: list[dict] = []
    lock = threading.Lock()
    counter = iter(range(args.max_requests))
    static_len: list[int] = []

    def worker(thread: int) -> None:
        # Threads start spread over one interval, so the load is even, not in bursts.
        next_at = time.monotonic() + interval * thread / args.concurrency
        client = httpx.Client(base_url=args.url, headers={"Host": HOST}, timeout=10.0)
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                stop.wait(max(0.0, next_at - time.monotonic()))
                if stop.is_set():
                    break
                next_at = max(next_at + interval, time.monotonic() - interval)
                with lock:
                    n = next(counter, None)
                if n is None:
                    break
                rec = one(client, n, thread, static_len)
                with lock:
                    records.append(rec)
                if not rec["ok"]:
                    # A fresh connection after a failure, as a browser would open.
                    client.close()
                    client = httpx.Client(base_url=args.url, headers={"Host": HOST}, timeout=10.0)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(args.out, "w") as f:
        f.writelines(json.dumps(rec) + "\n" for rec in sorted(records, key=lambda r: r["t0"]))


if __name__ == "__main__":
    main()
