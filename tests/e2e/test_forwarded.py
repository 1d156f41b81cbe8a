"""`forwarded-allow-ips`: from trusted proxies only, X-Forwarded-For/-Proto/-Host/-Port and
RFC 7239 Forwarded set REMOTE_ADDR, wsgi.url_scheme, HTTP_HOST and SERVER_PORT; the client is
the first untrusted address from the right (a spoofed left-most entry is never it); from
anyone else the headers reach the application untouched. Loopback addresses 127.0.0.2,
127.0.0.3, ... are distinct peers (the whole 127/8 is local on Linux)."""

import json
import tempfile
from pathlib import Path

import httpx
from conftest import run_dragoman
from ops import RawClient


def environ(client: RawClient, headers: list[tuple[str, str]], host: str = "backend:8000"):
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    status, _, body = client.request(
        f"GET /environ HTTP/1.1\r\nHost: {host}\r\n{lines}\r\n".encode()
    )
    assert status == 200, body
    return json.loads(body)


def test_trusted_and_untrusted_peers(dragoman):
    server = dragoman("ops_app:application", "--forwarded-allow-ips", "127.0.0.2, 127.0.0.3/32")
    proxy = RawClient(server.host, server.port, source="127.0.0.2")
    full = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "shop.example.com"),
        ("X-Forwarded-Port", "8443"),
    ]
    env = environ(proxy, full)
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert env["REMOTE_PORT"] == "0"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "shop.example.com:8443"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("shop.example.com", "8443")
    # The headers themselves still reach the application.
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"

    # A client that wrote its own X-Forwarded-For before the proxy appended: the left-most
    # entry is the client's word, never believed.
    env = environ(proxy, [("X-Forwarded-For", "6.6.6.6, 203.0.113.7")])
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    # Two trusted proxies in a row (127.0.0.3 appended the first one's peer).
    env = environ(proxy, [("X-Forwarded-For", "6.6.6.6, 203.0.113.8, 127.0.0.3")])
    assert env["REMOTE_ADDR"] == "203.0.113.8"
    # Several header lines are one list, in order.
    env = environ(
        proxy, [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.9, 127.0.0.3")]
    )
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    # Proxies that append the scheme too: the scheme of the hop where the client was found.
    env = environ(
        proxy,
        [
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 127.0.0.3"),
            ("X-Forwarded-Proto", "http, https, http"),
        ],
    )
    assert env["wsgi.url_scheme"] == "https"
    assert (env["HTTP_HOST"], env["SERVER_PORT"]) == ("backend:8000", "8000")
    # The same keep-alive connection, a request with no forwarding header: the peer again
    # (what one request's proxy said does not stay with the connection).
    env = environ(proxy, [])
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.2", "http")
    assert (env["HTTP_HOST"], env["SERVER_NAME"], env["SERVER_PORT"]) == (
        "backend:8000",
        "backend",
        "8000",
    )
    # RFC 7239.
    env = environ(
        proxy,
        [("Forwarded", 'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https;host=shop.example.com')],
    )
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::7", "4711")
    assert (env["wsgi.url_scheme"], env["HTTP_HOST"], env["SERVER_PORT"]) == (
        "https",
        "shop.example.com",
        "443",
    )
    # Values that are not what they claim are ignored.
    env = environ(
        proxy,
        [
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "javascript"),
            ("X-Forwarded-Host", "evil.example/path"),
        ],
    )
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert (env["wsgi.url_scheme"], env["HTTP_HOST"]) == ("http", "backend:8000")
    proxy.close()

    # An untrusted peer: every header passes untouched, nothing is believed.
    stranger = RawClient(server.host, server.port, source="127.0.0.4")
    env = environ(stranger, [*full, ("Forwarded", "for=6.6.6.6;proto=https")])
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.4", "http")
    assert (env["HTTP_HOST"], env["SERVER_PORT"]) == ("backend:8000", "8000")
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"
    assert env["HTTP_FORWARDED"] == "for=6.6.6.6;proto=https"
    stranger.close()
    # 127.0.0.1 is not in this list either.
    local = RawClient(server.host, server.port)
    assert environ(local, full)["REMOTE_ADDR"] == "127.0.0.1"
    local.close()


def test_by_default_loopback_and_unix_socket_proxies_are_trusted(dragoman):
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "app.sock"
        server = dragoman("ops_app:application", "--http", str(sock))
        # The TCP listener (127.0.0.1:0) and the unix socket both take a local proxy's word.
        local = RawClient(server.host, server.port)
        assert environ(local, [("X-Forwarded-For", "203.0.113.7")])["REMOTE_ADDR"] == "203.0.113.7"
        local.close()
        other = RawClient(server.host, server.port, source="127.0.0.9")
        assert environ(other, [("X-Forwarded-For", "203.0.113.7")])["REMOTE_ADDR"] == "203.0.113.7"
        other.close()
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=transport) as c:
            env = c.get(
                "http://backend/environ",
                headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
            ).json()
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("203.0.113.7", "https")


def test_an_empty_list_trusts_no_one(dragoman):
    server = dragoman("ops_app:application", "--forwarded-allow-ips=")
    local = RawClient(server.host, server.port)
    env = environ(local, [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")])
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.1", "http")
    local.close()


def test_a_bad_entry_is_named():
    r = run_dragoman("ops_app:application", "--forwarded-allow-ips", "10.0.0.0/8, proxy.local")
    assert r.returncode == 2
    assert "option 'forwarded-allow-ips' expects addresses and networks" in r.stderr
    assert '"proxy.local" is no address' in r.stderr


def test_ipv6_peers(dragoman):
    server = dragoman("ops_app:application", http="[::1]:0")
    proxy = RawClient("::1", server.port)
    env = environ(proxy, [("X-Forwarded-For", "2001:db8::9")])
    assert env["REMOTE_ADDR"] == "2001:db8::9"
    proxy.close()


def test_asgi_scope_takes_a_trusted_proxys_client_and_scheme(dragoman, tmp_path):
    marks = tmp_path / "marks"
    marks.write_text("")
    server = dragoman(
        "--asgi",
        "asgi_app:app",
        "--forwarded-allow-ips",
        "127.0.0.2",
        env={"ASGI_MARKS": str(marks)},
    )
    headers = "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
    for source, client, scheme in [
        ("127.0.0.2", ["203.0.113.7", 0], "https"),
        ("127.0.0.3", ["127.0.0.3", None], "http"),
    ]:
        conn = RawClient(server.host, server.port, source=source)
        status, _, body = conn.request(
            f"GET /scope HTTP/1.1\r\nHost: backend\r\n{headers}\r\n".encode()
        )
        conn.close()
        assert status == 200, body
        scope = json.loads(body)["scope"]
        assert scope["scheme"] == scheme
        assert scope["client"][0] == client[0]
        if client[1] is not None:
            assert scope["client"][1] == client[1]
        # The headers themselves still reach the application.
        assert ["x-forwarded-for", "203.0.113.7"] in scope["headers"]


def test_the_access_log_names_the_client_a_trusted_proxy_named(dragoman):
    server = dragoman("ops_app:application", "--forwarded-allow-ips", "127.0.0.2")
    spoof = [("X-Forwarded-For", "198.51.100.1, 203.0.113.7")]
    environ(RawClient(server.host, server.port, source="127.0.0.2"), spoof)
    environ(RawClient(server.host, server.port, source="127.0.0.3"), spoof)
    # The trusted proxy's word: the right-most address it did not add itself.
    server.wait_for_log(r'\[worker 1\] 203\.0\.113\.7 "GET /environ HTTP/1\.1" 200')
    # An untrusted peer is logged as itself, whatever its header says.
    server.wait_for_log(r'\[worker 1\] 127\.0\.0\.3 "GET /environ HTTP/1\.1" 200')
    assert "198.51.100.1" not in server.log()
