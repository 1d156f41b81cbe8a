"""The application the operations tests (metrics, health, proxies) run: fixed answers whose
sizes the tests know, a status on request, a request that sleeps or gets stuck, the body's
length for a POST, and the environ's address keys as JSON."""

import json
import os
import sys
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    status = "200 OK"
    if path == "/hello":
        body = b"hello, world\n"
    elif path == "/status":
        code = int(query.get("code", "200"))
        status = f"{code} Status {code}"
        body = f"status {code}\n".encode()
    elif path == "/sleep":
        print(f"app: /sleep started in {os.getpid()}", file=sys.stderr, flush=True)
        time.sleep(float(query.get("t", "1")))
        body = b"slept\n"
    elif path == "/stuck":
        print(f"app: /stuck started in {os.getpid()}", file=sys.stderr, flush=True)
        time.sleep(60)
        body = b"never\n"
    elif path == "/post":
        body = str(len(environ["wsgi.input"].read())).encode()
    elif path == "/environ":
        keys = (
            "REMOTE_ADDR",
            "REMOTE_PORT",
            "wsgi.url_scheme",
            "HTTP_HOST",
            "SERVER_NAME",
            "SERVER_PORT",
            "HTTP_X_FORWARDED_FOR",
            "HTTP_X_FORWARDED_PROTO",
            "HTTP_X_FORWARDED_HOST",
            "HTTP_X_FORWARDED_PORT",
            "HTTP_FORWARDED",
        )
        body = json.dumps({k: environ.get(k) for k in keys}).encode()
    elif path == "/pid":
        body = str(os.getpid()).encode()
    else:
        status, body = "404 Not Found", b"not found\n"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
