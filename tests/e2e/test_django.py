"""The example Django site (examples/mysite) served by its own dragoman.ini, driven like a
browser would: the admin login page, a real login with CSRF through a cookie session, the
guestbook form POST, a file upload, the streaming view, the FileResponse download, the JSON
endpoint, and a view that raises."""

import hashlib
import os
import re
import subprocess
import sys
import time

import httpx
import pytest
from conftest import REPO

SITE = REPO / "examples" / "mysite"


def csrf_token(html: str) -> str:
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


@pytest.fixture(scope="module")
def site_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("mysite")
    env = {
        "DJANGO_DB_PATH": str(base / "db.sqlite3"),
        "DJANGO_STATIC_ROOT": str(base / "static"),
        "DJANGO_MEDIA_ROOT": str(base / "media"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    manage = [sys.executable, "manage.py"]
    full = {**os.environ, **env}
    for args in (
        ["migrate", "--noinput", "-v", "0"],
        ["collectstatic", "--noinput", "-v", "0"],
        ["ensure_demo_user"],
    ):
        subprocess.run(
            manage + args, cwd=SITE, env=full, check=True, capture_output=True, timeout=120
        )
    assert (base / "static" / "admin" / "css" / "base.css").is_file()
    return env


@pytest.fixture
def site(dragoman, site_env):
    # The example's own ini, with a free port instead of :8000 and the static files this test
    # collected (the command line wins over the ini for those options).
    return dragoman(
        "--ini",
        str(SITE / "dragoman.ini"),
        "--static-map",
        f"/static={site_env['DJANGO_STATIC_ROOT']}",
        "--static-map",
        f"/media={site_env['DJANGO_MEDIA_ROOT']}",
        env=site_env,
        workers=2,
        cwd=SITE,
    )


def test_admin_login_page(site):
    r = httpx.get(f"{site.url}/admin/login/")
    assert r.status_code == 200
    assert "Django administration" in r.text
    assert "csrftoken" in r.cookies


def test_real_login_with_csrf_and_a_cookie_session(site):
    with httpx.Client(base_url=site.url) as c:
        page = c.get("/admin/login/?next=/admin/")
        r = c.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": csrf_token(page.text),
                "username": "admin",
                "password": "dragoman-demo",
                "next": "/admin/",
            },
        )
        assert r.status_code == 302, r.text[:500]
        assert r.headers["location"] == "/admin/"
        assert "sessionid" in c.cookies
        home = c.get("/admin/")
        assert home.status_code == 200
        assert "Site administration" in home.text
        assert "Messages" in home.text
        # A wrong password stays on the login page.
        c.cookies.clear()
        page = c.get("/admin/login/")
        bad = c.post(
            "/admin/login/",
            data={
                "csrfmiddlewaretoken": csrf_token(page.text),
                "username": "admin",
                "password": "wrong",
            },
        )
        assert bad.status_code == 200 and "Please enter the correct username" in bad.text


def test_guestbook_form_post(site):
    with httpx.Client(base_url=site.url) as c:
        page = c.get("/")
        assert page.status_code == 200 and "dragoman demo" in page.text
        token = csrf_token(page.text)
        r = c.post(
            "/",
            data={"csrfmiddlewaretoken": token, "name": "Ada", "text": "Hello from the test suite"},
        )
        assert r.status_code == 302
        after = c.get("/")
        assert "Hello from the test suite" in after.text
        assert (
            c.post("/", data={"csrfmiddlewaretoken": token, "name": "", "text": ""}).status_code
            == 400
        )
    # Without the token, Django's CSRF protection answers 403.
    assert httpx.post(f"{site.url}/", data={"name": "x", "text": "y"}).status_code == 403


@pytest.mark.parametrize("size", [10_000, 3 * 1024 * 1024])
def test_file_upload(site, size):
    content = bytes((i * 7) % 256 for i in range(size))
    with httpx.Client(base_url=site.url) as c:
        token = csrf_token(c.get("/upload/").text)
        r = c.post(
            "/upload/", data={"csrfmiddlewaretoken": token}, files={"file": ("data.bin", content)}
        )
    assert r.status_code == 200, r.text[:500]
    info = r.json()
    assert info["size"] == size
    assert info["sha256"] == hashlib.sha256(content).hexdigest()


def test_streaming_view_streams(site):
    arrivals = []
    with httpx.stream("GET", f"{site.url}/stream/?chunks=5&delay=0.3", timeout=10) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        body = b""
        for chunk in r.iter_raw():
            arrivals.append(time.monotonic())
            body += chunk
    assert body.decode().splitlines() == [f"line {i}" for i in range(5)]
    # The lines arrived as the view produced them, not all at the end.
    assert arrivals[-1] - arrivals[0] > 0.6


def test_file_response_download(site):
    r = httpx.get(f"{site.url}/download/?size=1048576", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-length"] == "1048576"
    assert "attachment" in r.headers["content-disposition"]
    assert r.content == bytes(range(256)) * 4096


def test_json_endpoint(site):
    r = httpx.get(f"{site.url}/api/?a=1&a=2&b=x")
    assert r.status_code == 200
    data = r.json()
    assert data["method"] == "GET" and data["server"] == "dragoman-demo"
    # No REVISION file in the checkout: the release is "dev" (tests/fleet writes one).
    assert data["release"] == "dev"
    r = httpx.post(f"{site.url}/api/", json={"hello": ["world", 1]})
    assert r.json() == {"method": "POST", "received": {"hello": ["world", 1]}}
    assert (
        httpx.post(
            f"{site.url}/api/", content=b"{nope", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )


def test_a_view_that_raises_gives_500_and_a_traceback(site):
    r = httpx.get(f"{site.url}/boom/")
    assert r.status_code == 500
    site.wait_for_log(
        r"(?s)Traceback \(most recent call last\).*boom: deliberate failure for testing"
    )
    assert httpx.get(f"{site.url}/api/").status_code == 200


def test_head_of_a_page(site):
    get = httpx.get(f"{site.url}/admin/login/")
    head = httpx.head(f"{site.url}/admin/login/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_static_files_come_from_static_map_not_django(site):
    r = httpx.get(f"{site.url}/static/admin/css/base.css")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/css; charset=utf-8"
    assert "etag" in r.headers and "last-modified" in r.headers
    assert "--header-bg" in r.text


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_admin_login_in_headless_chromium_loads_every_asset(site):
    from playwright.sync_api import sync_playwright

    failed, statuses = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("requestfailed", lambda req: failed.append(req.url))
            page.on("response", lambda resp: statuses.append((resp.url, resp.status)))
            page.goto(f"{site.url}/admin/login/", wait_until="networkidle")
            header_bg = page.evaluate(
                "getComputedStyle(document.querySelector('#header')).backgroundColor"
            )
            sheets = page.evaluate(
                "Array.from(document.styleSheets).map(s => [s.href, s.cssRules.length])"
            )
        finally:
            browser.close()
    assert failed == [], failed
    assert all(status < 400 for _, status in statuses), statuses
    static = [url for url, _ in statuses if "/static/" in url]
    assert any(u.endswith(".css") for u in static) and any(u.endswith(".js") for u in static), (
        static
    )
    assert len(static) >= 4, static
    # Every stylesheet loaded and parsed.
    assert sheets and all(href and rules > 0 for href, rules in sheets), sheets
    # A style only the admin CSS sets: the header's colour (--header-bg, #417690).
    assert header_bg == "rgb(65, 118, 144)", header_bg
