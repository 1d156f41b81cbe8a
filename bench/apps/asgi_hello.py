"""The ASGI application the ASGI scenarios of the benchmark serve (bench/asgi_bench.py):

- ``/``: hello world, 200 text/plain ``Hello, world!`` with its Content-Length;
- ``/echo``: the request body (read whole) back as application/json, with its length;
- a WebSocket at any path: every message echoed back.
"""

HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
HELLO_BODY = {"type": "http.response.body", "body": b"Hello, world!"}


async def echo(receive, send):
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def websocket(receive, send):
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        if scope["path"] == "/echo":
            return await echo(receive, send)
        await send(HELLO_START)
        await send(HELLO_BODY)
    elif kind == "websocket":
        await websocket(receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
