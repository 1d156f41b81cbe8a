"""The WSGI application every Python server in the benchmark serves, dispatching on PATH_INFO:

- ``/``: hello world, 200 text/plain ``Hello, world!`` with its Content-Length, as Django and
  Flask send every response (the first and cheapest branch). Without one, each server frames
  the body itself, and some (bjoern) fall back to chunked encoding, which measures their
  chunked path rather than the usual response;
- ``/echo``: reads CONTENT_LENGTH bytes from wsgi.input and returns them as application/json
  with a Content-Length (the 4 KiB JSON POST scenario);
- ``/stream``: 1 MiB as 16 chunks of 64 KiB from a generator, without a Content-Length.
"""

STREAM_CHUNK = b"x" * (64 * 1024)
STREAM_CHUNKS = 16


def stream():
    for _ in range(STREAM_CHUNKS):
        yield STREAM_CHUNK


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [b"Hello, world!"]
    if path == "/echo":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return stream()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not found"]
