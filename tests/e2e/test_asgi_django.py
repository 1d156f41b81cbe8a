"""The example Django site under ASGI (examples/mysite/mysite/asgi.py): its own dragoman.ini
with `--asgi mysite.asgi:application` instead of the ini's `module`, the one line a site
changes. The browser-like tests of test_django.py run again here (the admin login with CSRF,
the guestbook, uploads, downloads, JSON, a view that raises, HEAD, static files, the admin in
headless Chromium), and the async side: an async view on the worker's event loop, an async
streaming view, a WebSocket echo beside Django, and lifespan."""

import asyncio
import time

import httpx
import pytest
import websockets
from test_django import (  # noqa: F401 - the tests run here too, against the ASGI site
    SITE,
    site_env,
    test_a_view_that_raises_gives_500_and_a_traceback,
    test_admin_login_in_headless_chromium_loads_every_asset,
    test_admin_login_page,
    test_file_response_download,
    test_file_upload,
    test_guestbook_form_post,
    test_head_of_a_page,
    test_json_endpoint,
    test_real_login_with_csrf_and_a_cookie_session,
    test_static_files_come_from_static_map_not_django,
)


def serve(dragoman, env, *args):
    return dragoman(
        "--ini",
        str(SITE / "dragoman.ini"),
        *args,
        "--static-map",
        f"/static={env['DJANGO_STATIC_ROOT']}",
        "--static-map",
        f"/media={env['DJANGO_MEDIA_ROOT']}",
        env=env,
        workers=2,
        cwd=SITE,
    )


@pytest.fixture
def site(dragoman, site_env):  # noqa: F811 - the ASGI site for the imported tests
    server = serve(dragoman, site_env, "--asgi", "mysite.asgi:application")
    assert "serving mysite.asgi:application as an ASGI application" in server.log()
    return server


def test_the_async_view_runs_on_the_workers_event_loop(site):
    r = httpx.get(f"{site.url}/async/")
    assert r.status_code == 200
    data = r.json()
    assert data["interface"] == "asgi"
    assert data["loop"] == "uvloop"
    assert isinstance(data["messages"], int)


def test_the_async_streaming_view_streams(site):
    arrivals = []
    with httpx.stream("GET", f"{site.url}/async-stream/?chunks=5&delay=0.3", timeout=10) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        body = b""
        for chunk in r.iter_raw():
            arrivals.append(time.monotonic())
            body += chunk
    assert body.decode().splitlines() == [f"line {i}" for i in range(5)]
    assert arrivals[-1] - arrivals[0] > 0.6


def test_a_websocket_echo_beside_django(site):
    async def talk():
        async with websockets.connect(f"ws://{site.host}:{site.port}/ws/echo/") as ws:
            await ws.send("hello Django")
            text = await ws.recv()
            await ws.send(b"\x01\x02")
            data = await ws.recv()
            return text, data

    assert asyncio.run(asyncio.wait_for(talk(), 30)) == ("hello Django", b"\x01\x02")


def test_lifespan_ran_in_every_worker_and_ends_with_them(site):
    assert site.log().count("serving mysite.asgi:application as an ASGI application") == 2
    assert site.stop() == 0
    assert site.log().count("ASGI lifespan: shutdown complete") == 2


def test_the_same_site_under_wsgi_runs_the_async_view_too(dragoman, site_env):  # noqa: F811
    server = serve(dragoman, site_env)
    r = httpx.get(f"{server.url}/async/")
    assert r.status_code == 200 and r.json()["interface"] == "wsgi"
