"""
ASGI config for the dragoman demo project: Django's own ASGI handler behind a small router,
with no Channels.

- HTTP goes to Django (its async views run on the worker's event loop; its sync views in
  asgiref's thread, as Django arranges);
- ``/ws/echo/`` is a WebSocket echo, answered here (Django itself speaks no WebSocket);
- lifespan events are answered here too, since Django's handler refuses the lifespan
  scope: startup warms Django's URL resolver, and leaves a note in the lifespan ``state``
  that every request's scope gets a copy of.

dragoman loads it with ``asgi = mysite.asgi:application`` (one line changed from
``module = mysite.wsgi:application`` in dragoman.ini), or ``dragoman --asgi mysite.asgi``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

django_application = get_asgi_application()


async def websocket_echo(scope, receive, send):
    """Echoes every message back until the client closes."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            from django.urls import get_resolver

            get_resolver().url_patterns  # noqa: B018 - imports every view module now
            scope["state"]["started_by"] = "mysite.asgi"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


WEBSOCKETS = {"/ws/echo/": websocket_echo}


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    if scope["type"] == "websocket":
        handler = WEBSOCKETS.get(scope["path"])
        if handler is None:
            await receive()
            await send({"type": "websocket.close", "code": 1000})
            return
        return await handler(scope, receive, send)
    return await django_application(scope, receive, send)
