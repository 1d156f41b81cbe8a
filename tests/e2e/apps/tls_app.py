"""For the HTTPS and HTTP/2 tests: /stream streams 1 MiB in 64 pieces (no Content-Length),
/slow?SECONDS answers after that long, /cookie sets a Secure cookie; anything else is echo's
environ as JSON."""

import time

from echo import application as echo

STREAM = [bytes([i % 251]) * 16384 for i in range(64)]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return iter(STREAM)
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
        body = b"slow done\n"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    return echo(environ, start_response)
