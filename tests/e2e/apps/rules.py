"""One route per PEP 3333 behaviour the suite checks. Route = PATH_INFO."""

import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

CLOSED = {"count": 0}
KEPT = {}
# One bytes object every /lent?via=shared response returns; /refcount tells how many
# references to it exist, so a server that keeps chunks (or loses their release) shows.
LENT = bytes(range(256)) * 64


def numbered(i, size):
    """A new bytes object of `size` bytes, lines of i: the app drops it once returned."""
    return (b"%07d\n" % i) * (size // 8)


def respond(start_response, body, status="200 OK", headers=()):
    start_response(status, [("Content-Type", "text/plain"), *headers])
    return [body]


class Closeable:
    """An iterable response with close(), counting the calls."""

    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        CLOSED["count"] += 1


HOGGED: list = []
KEPT_ENVIRONS: list = []


def endless(start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        i = 0
        while True:
            yield b"x" * 65536
            i += 1
    finally:
        CLOSED["count"] += 1


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}

    if path == "/gen":
        # start_response is called during the first iteration, as PEP 3333 allows.
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b""
            for i in range(3):
                yield b"part %d\n" % i

        return gen()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"then ")
        return [b"returned"]
    if path == "/lent":
        via, size = query.get("via", "shared"), int(query.get("size", "65536"))
        if via == "shared":
            return respond(start_response, LENT)
        if via == "write":
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            for i in range(3):
                write(numbered(i, size))
            return [numbered(3, size)]

        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            for i in range(4):
                yield numbered(i, size)

        return gen()
    if path == "/declared":
        # The application's own Content-Length, spelled as the query says.
        body = b"declared body"
        headers = [("Content-Type", "text/plain"), (query.get("name", "Content-Length"), " 13 ")]
        if query.get("via") == "gen":

            def gen():
                start_response("200 OK", headers)
                yield body[:5]
                yield body[5:]

            return gen()
        start_response("200 OK", headers)
        return [body]
    if path == "/refcount":
        return respond(start_response, str(sys.getrefcount(LENT)).encode())
    if path == "/exc-info-before":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            start_response("503 Try Later", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced"]
    if path == "/exc-info-after":

        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"first part"
            try:
                raise ValueError("too late")
            except ValueError:
                start_response("500 Oops", [], sys.exc_info())
            yield b"never"

        return gen()
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"twice"]
    if path == "/twice-swallowed":
        start_response("200 OK", [])
        try:
            start_response("200 OK", [])
        except Exception:  # noqa: BLE001, S110 - the test is that swallowing it does not help
            pass
        return [b"twice"]
    if path == "/hop":
        return respond(start_response, b"hop", headers=[("Connection", "close")])
    if path == "/nonlatin":
        return respond(start_response, b"x", headers=[("X-Smile", "\u263a")])
    if path == "/badstatus":
        return respond(start_response, b"x", status="OK")
    if path == "/reason":
        return respond(start_response, b"custom", status="299 Custom Reason")
    if path == "/str-body":
        start_response("200 OK", [])
        return ["text, not bytes"]
    if path == "/raise":
        raise RuntimeError("deliberate failure in /raise")
    if path == "/raise-midstream":

        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"some bytes then "
            raise RuntimeError("deliberate failure mid-stream")

        return gen()
    if path == "/noniterable":
        start_response("200 OK", [])
        return 42
    if path == "/no-start":
        return [b"never started"]
    if path == "/closeable":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closeable([b"a", b"b", b"c"])
    if path == "/close-raises":

        class Raising:
            def __iter__(self):
                return iter([b"body ", b"bytes"])

            def close(self):
                raise RuntimeError("deliberate failure in close()")

        start_response("200 OK", [("Content-Type", "text/plain")])
        return Raising()
    if path == "/close-raises-list":

        class RaisingList(list):  # keeps list's iteration: the whole body is in memory
            def close(self):
                raise RuntimeError("deliberate failure in close()")

        start_response("200 OK", [("Content-Type", "text/plain")])
        return RaisingList([b"body ", b"bytes"])
    if path in ("/own-iter-list", "/own-iter-tuple"):
        base = list if path.endswith("list") else tuple

        class OwnIter(base):  # what the server iterates is not what the sequence stores
            def __iter__(self):
                return iter([b"from ", b"__iter__"])

        start_response("200 OK", [("Content-Type", "text/plain")])
        return OwnIter([b"stored"])
    if path == "/closed":
        return respond(start_response, str(CLOSED["count"]).encode())
    if path == "/endless":
        return endless(start_response)
    if path == "/cookies":
        return respond(
            start_response,
            b"ok",
            headers=[("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")],
        )
    if path == "/errors":
        environ["wsgi.errors"].write("a line for wsgi.errors\n")
        environ["wsgi.errors"].writelines(["two ", "parts\n"])
        environ["wsgi.errors"].flush()
        return respond(start_response, b"logged")
    if path == "/file-wrapper":
        f = open(query["file"], "rb")  # noqa: SIM115 - closed by the server via the wrapper
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper = environ["wsgi.file_wrapper"](f, 4096)
        CLOSED["file"] = f
        return wrapper
    if path == "/file-wrapper-bytesio":
        import io

        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"in memory " * 1000), 4096)
    if path == "/file-closed":
        return respond(start_response, str(CLOSED["file"].closed).encode())
    if path == "/cl-mismatch":
        return respond(start_response, b"12345", headers=[("Content-Length", "100")])
    if path == "/cl-over-at-once":

        def gen():
            start_response("200 OK", [("Content-Length", "5")])
            yield b"12345"
            yield b"67890"

        return gen()
    if path == "/cl-over-midstream":

        def gen():
            start_response("200 OK", [("Content-Length", "5")])
            yield b"123"
            yield b"45"
            yield b"678"

        return gen()
    if path == "/stream":
        n = int(query.get("n", "3"))
        delay = float(query.get("delay", "0"))

        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            for i in range(n):
                if delay:
                    time.sleep(delay)
                yield b"line %d\n" % i

        return gen()
    if path == "/input":
        stream = environ["wsgi.input"]
        op = query.get("op", "read")
        if op == "read":
            parts = [stream.read()]
        elif op == "read-n":
            parts = []
            while chunk := stream.read(int(query["n"])):
                parts.append(chunk)
        elif op == "readline":
            limit = int(query.get("limit", "-1"))
            parts = []
            while line := stream.readline(limit):
                parts.append(line)
        elif op == "readlines":
            parts = stream.readlines(int(query.get("hint", "-1")))
        elif op == "iter":
            parts = list(stream)
        elif op == "count":
            total = 0
            while chunk := stream.read(65536):
                total += len(chunk)
            parts = [str(total).encode()]
        elif op == "none":
            parts = []
        body = json.dumps([p.decode("latin-1") for p in parts]).encode()
        return respond(start_response, body, headers=[("Content-Type", "application/json")])
    if path == "/sleep":
        time.sleep(float(query.get("t", "0.5")))
        body = json.dumps({"pid": os.getpid(), "thread": threading.get_ident()}).encode()
        return respond(start_response, body)
    if path == "/osenv":
        return respond(start_response, os.environ.get(query["key"], "<unset>").encode())
    if path == "/pid":
        return respond(start_response, str(os.getpid()).encode())
    if path == "/imported":
        return respond(start_response, b"yes" if query["name"] in sys.modules else b"no")
    if path == "/keep":
        # Holds on to this request's start_response and write() past the request.
        KEPT["start_response"] = start_response
        KEPT["write"] = start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"kept"]
    if path == "/kept":
        kept, kept_write = KEPT.pop("start_response"), KEPT.pop("write")
        same = kept is start_response
        kept_write(b"late bytes")  # the old request's write(): must not reach this response
        try:
            kept("200 OK", [])  # the old request's: it was already called
            late = "accepted"
        except RuntimeError:
            late = "refused"
        return respond(start_response, f"same={same} late={late}".encode())
    if path == "/keep-body":
        # Holds the request (its environ and wsgi.input) past the response, as a request
        # object in a reference cycle does until the garbage collector runs.
        KEPT_ENVIRONS.append(environ)
        return respond(start_response, b"kept")
    if path == "/hog":
        # Takes every file descriptor the worker has left (tests of running out of them).
        try:
            while True:
                HOGGED.append(open(os.devnull, "rb"))  # noqa: SIM115 - held on purpose
        except OSError:
            pass
        return respond(start_response, str(len(HOGGED)).encode())
    if path == "/unhog":
        while HOGGED:
            HOGGED.pop().close()
        return respond(start_response, b"released")
    if path == "/chunks":
        n, size = int(query.get("n", "10")), int(query.get("size", "65536"))

        def chunks():
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            try:
                for i in range(n):
                    yield bytes([i % 256]) * size
            finally:
                CLOSED["count"] += 1

        return chunks()
    if path == "/big":
        size = int(query.get("size", "1048576"))
        return respond(start_response, b"z" * size)
    return respond(start_response, b"not found", status="404 Not Found")
