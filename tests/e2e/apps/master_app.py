"""The application the process-management tests run: it reports its code version (from a
module the tests rewrite before a reload), sleeps, leaks memory or gets stuck on request."""

import os
import sys
import time
from urllib.parse import parse_qs

import appversion

LEAK = []


def stuck_in_a_long_call():
    time.sleep(60)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    if path in ("/sleep", "/stuck"):
        # A mark in the log, for tests that must know the request is in the app.
        print(f"app: {path} started in {os.getpid()}", file=sys.stderr, flush=True)
    if path == "/sleep":
        time.sleep(float(query.get("t", "1")))
    elif path == "/stuck":
        stuck_in_a_long_call()
    elif path == "/leak":
        block = bytearray(int(query.get("mb", "20")) * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
        LEAK.append(block)
    body = f"{appversion.VERSION} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
