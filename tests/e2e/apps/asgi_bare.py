"""An ASGI application that imports nothing: dragoman imports threading, asyncio and the event
loop itself (uvloop once believed its thread was the main one, and stopped)."""


async def application(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"bare"})
