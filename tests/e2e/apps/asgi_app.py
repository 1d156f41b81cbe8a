"""An ASGI 3 application for the e2e tests: each path exercises one part of the spec, or
breaks one of its rules. Marks go to the file named by ASGI_MARKS (one line each), so a test
can see what the application saw after the fact (a disconnect, a shutdown)."""

import asyncio
import json
import os
import sys


def mark(line: str) -> None:
    path = os.environ.get("ASGI_MARKS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def jsonable(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


async def lifespan(scope, receive, send):
    message = await receive()
    assert message["type"] == "lifespan.startup"
    mark(f"lifespan startup spec={scope['asgi'].get('spec_version')}")
    if os.environ.get("LIFESPAN") == "raise":
        raise RuntimeError("the lifespan raised on purpose")
    if os.environ.get("LIFESPAN") == "fail":
        await send({"type": "lifespan.startup.failed", "message": "no database on purpose"})
        return
    scope["state"]["started"] = "yes"
    scope["state"]["loop"] = type(asyncio.get_running_loop()).__module__
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    assert message["type"] == "lifespan.shutdown"
    mark("lifespan shutdown")
    await send({"type": "lifespan.shutdown.complete"})


async def read_body(receive):
    body, messages = b"", 0
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        messages += 1
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body, messages


async def respond(send, status=200, body=b"", headers=None, content_type=b"text/plain"):
    h = [(b"content-type", content_type)] + (headers or [])
    await send({"type": "http.response.start", "status": status, "headers": h})
    await send({"type": "http.response.body", "body": body})


def query(scope) -> dict:
    q = scope["query_string"].decode()
    return dict(p.split("=", 1) for p in q.split("&") if "=" in p)


async def http(scope, receive, send):
    path = scope["path"]
    q = query(scope)
    if path.startswith("/scope"):
        await read_body(receive)
        body = json.dumps({"scope": jsonable(scope), "python": sys.version_info[:2]})
        await respond(send, body=body.encode(), content_type=b"application/json")
    elif path == "/echo":
        body, messages = await read_body(receive)
        headers = [(b"x-messages", str(messages).encode())]
        await respond(send, body=body, headers=headers)
    elif path == "/state":
        await respond(send, body=json.dumps(scope.get("state")).encode())
    elif path == "/stream":
        n, size = int(q.get("n", "3")), int(q.get("size", "6"))
        delay = float(q.get("delay", "0"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(n):
            chunk = (b"%d" % (i % 10)) * size
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if delay:
                await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": b""})
        mark(f"stream done {n}")
    elif path == "/produce":
        # As fast as the server lets it: how far it got before the client read anything.
        n, size = int(q["n"]), int(q["size"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * size
        sent = 0
        try:
            for i in range(n):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += 1
                if i % 64 == 0:
                    mark(f"produced {sent}")
            await send({"type": "http.response.body", "body": b""})
            mark(f"produced all {sent}")
        except OSError as e:
            mark(f"send raised {type(e).__name__} after {sent}")
            raise
    elif path == "/until-disconnect":
        # Streams until the client goes; receive() says so.
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})

        async def watch():
            message = await receive()
            mark(f"received {message['type']}")

        watcher = asyncio.ensure_future(watch())
        try:
            for _ in range(600):
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.05)
                if watcher.done():
                    break
        except OSError as e:
            mark(f"send raised {type(e).__name__}")
        await asyncio.wait_for(watcher, 5)
    elif path == "/after-response":
        await read_body(receive)
        await respond(send, body=b"done")
        message = await receive()
        mark(f"after response: {message['type']}")
    elif path == "/trailers":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"trailer", b"x-checksum")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": b"part1 ", "more_body": True})
        await send({"type": "http.response.body", "body": b"part2"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})
    elif path == "/pathsend":
        file = q["file"]
        size = os.path.getsize(file)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(size).encode())],
            }
        )
        await send({"type": "http.response.pathsend", "path": file})
    elif path == "/status":
        await respond(send, status=int(q["code"]), body=b"")
    elif path == "/length":
        headers = [(b"content-length", q["declared"].encode())]
        await respond(send, body=b"x" * int(q["actual"]), headers=headers)
    elif path == "/sleep":
        await asyncio.sleep(float(q.get("s", "1")))
        await respond(send, body=b"slept")
    elif path == "/bad/no-response":
        return
    elif path == "/bad/start-only":
        await send({"type": "http.response.start", "status": 200})
    elif path == "/bad/body-before-start":
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/bad/after-end":
        await respond(send, body=b"complete")
        try:
            await send({"type": "http.response.body", "body": b"more"})
        except RuntimeError:
            mark("after-end raised RuntimeError")
    elif path == "/bad/raise":
        raise ValueError("the view raised on purpose")
    elif path == "/bad/raise-midway":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"begun", "more_body": True})
        raise ValueError("raised after the start on purpose")
    elif path == "/bad/unfinished":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"begun", "more_body": True})
    elif path == "/bad/status":
        await send({"type": "http.response.start", "status": "200 OK", "headers": []})
    elif path == "/bad/header":
        await send({"type": "http.response.start", "status": 200, "headers": [("x", "str")]})
    elif path == "/bad/hop":
        await respond(send, body=b"x", headers=[(b"connection", b"close")])
    elif path == "/bad/unknown":
        await send({"type": "http.response.teapot"})
    else:
        await respond(send, status=404, body=b"no such path")


async def websocket(scope, receive, send):
    path = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect", message
    if path == "/ws/deny":
        await send({"type": "websocket.close"})
        return
    if path == "/ws/deny-response":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"are you?"})
        return
    if path == "/ws/raise-before":
        raise RuntimeError("raised before accepting on purpose")
    if path == "/ws/nothing":
        return
    if path == "/ws/slow-accept":
        await asyncio.sleep(5)
    subprotocol = None
    if path == "/ws/subprotocol":
        subprotocol = scope["subprotocols"][-1]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": subprotocol,
            "headers": [(b"x-accepted", b"yes")],
        }
    )
    if path == "/ws/scope":
        await send({"type": "websocket.send", "text": json.dumps(jsonable(scope))})
    if path == "/ws/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye for now"})
        message = await receive()
        mark(f"ws closed: {message['type']} {message.get('code')}")
        return
    if path == "/ws/raise":
        raise RuntimeError("raised on an open WebSocket on purpose")
    if path == "/ws/return":
        return
    if path == "/ws/burst":
        # Messages faster than the client reads them.
        n = int(query(scope).get("n", "100"))
        try:
            for i in range(n):
                await send({"type": "websocket.send", "bytes": b"%06d" % i + b"x" * 65530})
            mark(f"burst sent {n}")
        except OSError as e:
            mark(f"burst send raised {type(e).__name__}")
        message = await receive()
        mark(f"burst end: {message['type']}")
        return
    if path == "/ws/slow-reader":
        # Reads one message a second: the client's flood must wait.
        received = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                mark(f"slow reader got {received}")
                return
            received += 1
            await asyncio.sleep(0.2)
    # Echo, until the client goes.
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            mark(f"ws disconnect {message['code']} {message.get('reason', '')!r}")
            return
        if message.get("text") is not None:
            text = message["text"]
            if text == "close-me":
                await send({"type": "websocket.close", "code": 1000})
                continue
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(scope, receive, send)
    elif kind == "http":
        await http(scope, receive, send)
    elif kind == "websocket":
        await websocket(scope, receive, send)
