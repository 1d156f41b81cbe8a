"""HTTPS: dragoman terminates TLS itself (rustls). Certificates are made by the tests (a CA of
their own); clients are real (curl, httpx, openssl s_client, raw sockets for what clients do not
send). HTTP/1.1 over TLS here; HTTP/2 in test_http2.py."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import test_django
from conftest import run_dragoman
from cryptography.x509.oid import NameOID
from tls_certs import DAY, NOW, Authority

# The example site's fixture and browser flags, for the Django test over HTTPS.
site_env = test_django.site_env
CHROMIUM_ARGS = test_django.CHROMIUM_ARGS
SITE = test_django.SITE

# What tests/e2e/apps/tls_app.py streams at /stream.
STREAM = b"".join(bytes([i % 251]) * 16384 for i in range(64))


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Authority:
    return Authority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(ca):
    return ca.issue("site", ("localhost", "www.example.test"))


def https_address(server) -> tuple[str, int]:
    m = server.wait_for_log(r"listening on https://(\S+)")
    host, port = m.group(1).rsplit(":", 1)
    return host.strip("[]"), int(port)


def start(dragoman, cert, *args, app="tls_app:application", workers=1, env=None):
    server = dragoman(
        app,
        "--https",
        f"127.0.0.1:0,{cert.cert},{cert.key}",
        *args,
        http=None,
        workers=workers,
        env=env,
    )
    return server, https_address(server)


def curl(
    ca: Authority, url: str, *args: str, resolve: str | None = None
) -> subprocess.CompletedProcess:
    argv = ["curl", "-sS", "--max-time", "20", "--cacert", str(ca.path), *args, url]
    if resolve:
        argv[1:1] = ["--resolve", resolve]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False)


def client_hello(server_name: str = "localhost") -> bytes:
    """The bytes of a real ClientHello (Python's ssl over memory buffers)."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_https_http11_the_app_sees_https(dragoman, ca, site):
    server, (host, port) = start(dragoman, site)
    out = curl(
        ca, f"https://localhost:{port}/path?q=1", "--http1.1", resolve=f"localhost:{port}:{host}"
    )
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", str(port))
    assert env["PATH_INFO"] == "/path" and env["QUERY_STRING"] == "q=1"
    assert "HTTPS_DN" not in env  # no client certificate asked for
    # Keep-alive over one TLS connection: the same worker, many requests, bodies both ways.
    body = os.urandom(300_000)
    with httpx.Client(verify=ca.context(), http2=False) as client:
        for i in range(20):
            r = client.post(
                f"https://localhost:{port}/echo/{i}", content=body if i % 5 == 0 else b""
            )
            assert r.status_code == 200 and r.http_version == "HTTP/1.1"
            got = r.json()
            assert got["PATH_INFO"] == f"/echo/{i}"
            if i % 5 == 0:
                assert base64.b64decode(got["body_base64"]) == body
    log = server.log()
    assert "TLS: https listener 1: /CN=localhost" in log, log
    # This kernel has no kTLS: said once, with what it means for static files.
    assert re.search(r"TLS: (no kernel TLS offload|the kernel offers TLS offload)", log), log


@pytest.mark.parametrize(
    "key_type,key_format",
    [("ec", "pkcs8"), ("ec", "sec1"), ("rsa", "pkcs1"), ("rsa", "pkcs8")],
)
def test_every_key_format_is_read(dragoman, ca, key_type, key_format):
    cert = ca.issue(f"k-{key_type}-{key_format}", key_type=key_type, key_format=key_format)
    marker = {
        "pkcs8": b"BEGIN PRIVATE KEY",
        "sec1": b"BEGIN EC PRIVATE KEY",
        "pkcs1": b"BEGIN RSA PRIVATE KEY",
    }
    assert marker[key_format] in cert.key.read_bytes()
    _, (host, port) = start(dragoman, cert)
    out = curl(ca, f"https://localhost:{port}/", resolve=f"localhost:{port}:{host}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["HTTPS"] == "on"


def test_an_encrypted_key_with_its_password(dragoman, ca):
    cert = ca.issue("enc", key_format="pkcs8", password=b"s3cret pass")
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in cert.key.read_bytes()
    _, (host, port) = start(dragoman, cert, "--ssl-key-password", "s3cret pass")
    out = curl(ca, f"https://localhost:{port}/", resolve=f"localhost:{port}:{host}")
    assert out.returncode == 0, out.stderr


def test_the_separate_options_and_an_ini_file(dragoman, ca, site, tmp_path):
    ini = tmp_path / "site.ini"
    ini.write_text(
        "[uwsgi]\n"
        "module = tls_app:application\n"
        "https = 127.0.0.1:0\n"
        f"ssl-certificate = {site.cert}\n"
        f"ssl-key = {site.key}\n"
    )
    server = dragoman("--ini", str(ini), http=None)
    host, port = https_address(server)
    out = curl(ca, f"https://localhost:{port}/", resolve=f"localhost:{port}:{host}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["wsgi.url_scheme"] == "https"


def refusal(args: list[str]) -> str:
    out = run_dragoman("tls_app:application", *args, timeout=60)
    assert out.returncode != 0, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("dragoman: error:")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def test_bad_certificates_refuse_to_start_with_one_line_naming_file_and_problem(ca, site, tmp_path):
    other = ca.issue("other")
    expired = ca.issue("expired", not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    future = ca.issue("future", not_before=NOW + DAY, not_after=NOW + 30 * DAY)
    encrypted = ca.issue("encrypted", password=b"right")
    legacy = ca.issue("legacy", key_type="rsa", key_format="legacy", password=b"right")
    missing = tmp_path / "missing.crt"
    a_directory = tmp_path / "a-directory.crt"
    a_directory.mkdir()
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("this is not a certificate\n")

    def https(cert, key, *more):
        return ["--https", f"127.0.0.1:0,{cert},{key}", *more]

    cases = [
        (https(missing, site.key), str(missing), "cannot read the certificate", "No such file"),
        (
            https(a_directory, site.key),
            str(a_directory),
            "cannot read the certificate",
            "directory",
        ),
        (
            https(site.cert, other.key),
            str(other.key),
            "does not match the certificate",
            str(site.cert),
        ),
        (https(expired.cert, expired.key), str(expired.cert), "expired on", "renew it"),
        (https(future.cert, future.key), str(future.cert), "is not valid yet", "clock"),
        (
            https(site.key, site.key),
            str(site.key),
            "no certificate in this file",
            "private key only",
        ),
        (
            https(garbage, site.key),
            str(garbage),
            "no certificate in this file",
            "BEGIN CERTIFICATE",
        ),
        (https(site.cert, garbage), str(garbage), "no private key in this file", "key file"),
        (
            https(encrypted.cert, encrypted.key),
            str(encrypted.key),
            "is encrypted",
            "ssl-key-password",
        ),
        (
            https(encrypted.cert, encrypted.key, "--ssl-key-password", "wrong"),
            str(encrypted.key),
            "does not decrypt the key",
            "wrong password",
        ),
        (
            https(legacy.cert, legacy.key, "--ssl-key-password", "right"),
            str(legacy.key),
            "legacy format",
            "openssl pkcs8",
        ),
        (
            https(site.cert, site.key, "--ssl-client-ca", str(garbage)),
            str(garbage),
            "no CA certificate in this file",
            "",
        ),
        (
            ["--https", f"127.0.0.1:0,{site.cert},{site.key},RC4-SHA"],
            "RC4-SHA",
            "is offered by dragoman",
            "",
        ),
    ]
    for args, file, problem, fix in cases:
        line = refusal(args)
        assert file in line and problem in line and fix in line, (args, line)
        # The setting that named the file, too.
        assert "command line option --https" in line, line


def test_static_files_over_tls_byte_for_byte(dragoman, ca, site, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    data = os.urandom(1024 * 1024 + 17)
    (static / "big.bin").write_bytes(data)
    small = b"small file " * 100
    (static / "small.txt").write_bytes(small)
    server, (host, port) = start(dragoman, site, "--static-map", f"/static={static}")
    with httpx.Client(verify=ca.context(), http2=False) as client:
        url = f"https://localhost:{port}/static"
        for _ in range(3):  # the second and third from the worker's cache or the file again
            r = client.get(f"{url}/big.bin")
            assert r.status_code == 200 and r.content == data
            assert client.get(f"{url}/small.txt").content == small
        r = client.get(f"{url}/big.bin", headers={"Range": "bytes=1000-400000"})
        assert r.status_code == 206 and r.content == data[1000:400001]
        r = client.get(f"{url}/big.bin", headers={"Range": "bytes=5-9,-3"})
        assert r.status_code == 206 and data[5:10] in r.content and data[-3:] in r.content
    # curl too (its own TLS stack), to a file.
    out_file = tmp_path / "got.bin"
    out = curl(
        ca,
        f"https://localhost:{port}/static/big.bin",
        "-o",
        str(out_file),
        resolve=f"localhost:{port}:{host}",
    )
    assert out.returncode == 0, out.stderr
    assert out_file.read_bytes() == data
    assert "zero-copy send" not in server.log()


def test_a_streamed_response_over_tls(dragoman, ca, site):
    _, (_, port) = start(dragoman, site)
    with httpx.Client(verify=ca.context(), http2=False) as client:
        r = client.get(f"https://localhost:{port}/stream")
        assert r.headers.get("transfer-encoding") == "chunked"
        assert r.content == STREAM


def test_plain_http_to_the_https_port_gets_a_400_that_says_so(dragoman, ca, site):
    server, (host, port) = start(dragoman, site)
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"HTTPS port" in answer and b"https://" in answer
    # Garbage that is neither: closed without a word; the worker serves on.
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"\x00\x01\x02garbage" * 10)
        s.settimeout(5)
        assert s.recv(4096) == b""
    # A TLS record that is not a valid ClientHello: an alert, then closed.
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")
        s.settimeout(5)
        got = s.recv(4096)
        assert got == b"" or got[0] == 0x15, got  # 0x15: a TLS alert
    out = curl(ca, f"https://localhost:{port}/", resolve=f"localhost:{port}:{host}")
    assert out.returncode == 0, out.stderr
    assert "plain HTTP to an https listener" in server.log()


def test_stalled_handshakes_cost_only_their_connections(dragoman, ca, site):
    """Half a ClientHello, a whole one and silence, and a slow trickle: each is closed at
    header-timeout (the handshake counts against it), while other clients are served at once."""
    server, (host, port) = start(
        dragoman, site, "--header-timeout", "2", "--max-connections", "500"
    )
    hello = client_hello()
    stalled = []
    for i in range(300):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(hello[: 10 + i % 40] if i % 2 else hello)
        stalled.append(s)
    try:
        # Served promptly meanwhile, by a single worker.
        for _ in range(5):
            t0 = time.monotonic()
            out = curl(ca, f"https://localhost:{port}/", resolve=f"localhost:{port}:{host}")
            assert out.returncode == 0, out.stderr
            assert time.monotonic() - t0 < 1.5
        # Each stalled one closed by the server within header-timeout (and the sweep's lag).
        deadline = time.monotonic() + 8
        for s in stalled:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:  # the ServerHello for the whole ones comes first, then the close
                    break
    finally:
        for s in stalled:
            s.close()
    assert time.monotonic() < deadline, "some stalled handshakes were not closed in time"
    # A trickle: a byte every 300 ms of a ClientHello is cut at header-timeout too.
    with socket.create_connection((host, port), timeout=10) as s:
        t0 = time.monotonic()
        closed = False
        for b in hello[:30]:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.3)
        if not closed:
            s.settimeout(5)
            try:
                closed = s.recv(100) == b""
            except ConnectionResetError:
                closed = True
        assert closed and time.monotonic() - t0 < 6
    assert server.proc.poll() is None


def test_many_full_handshakes_at_once(dragoman, ca, site):
    """A burst of complete handshakes (each a new connection and request) from several threads:
    all succeed, with 2 workers, and the server is not the worse for it."""
    _, (host, port) = start(dragoman, site, "--processes", "2", workers=2)
    context = ssl.create_default_context(cafile=str(ca.path))
    failures: list[str] = []
    done = [0]

    def client():
        for _ in range(40):
            try:
                with (
                    socket.create_connection((host, port), timeout=10) as raw,
                    context.wrap_socket(raw, server_hostname="localhost") as s,
                ):
                    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                    assert data.startswith(b"HTTP/1.1 200"), data[:100]
                    done[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:5]
    assert done[0] == 320


def test_openssl_s_client_negotiates_tls13_and_tls12(dragoman, ca, site):
    _, (host, port) = start(dragoman, site, "--http2=false")
    for version, expected in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
        out = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"{host}:{port}",
                "-servername",
                "localhost",
                "-CAfile",
                str(ca.path),
                "-alpn",
                "h2,http/1.1",
                "-ign_eof",
                version,
            ],
            input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            capture_output=True,
            timeout=20,
            check=False,
        )
        text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
        assert f"New, {expected}, Cipher is" in text, text
        assert "Verify return code: 0 (ok)" in text, text
        # http2 = false: only http/1.1 is offered.
        assert "ALPN protocol: http/1.1" in text, text
        assert "HTTP/1.1 200 OK" in text, text


def test_ssl_min_version_refuses_older_clients(dragoman, ca, site):
    _, (host, port) = start(dragoman, site, "--ssl-min-version", "1.3")
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{host}:{port}",
            "-servername",
            "localhost",
            "-CAfile",
            str(ca.path),
            "-tls1_2",
            "-brief",
        ],
        input=b"",
        capture_output=True,
        timeout=20,
        check=False,
    )
    text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
    assert out.returncode != 0 and "Protocol version: TLSv1.2" not in text, text
    out = curl(ca, f"https://localhost:{port}/", "--tlsv1.3", resolve=f"localhost:{port}:{host}")
    assert out.returncode == 0, out.stderr


def peer_der(
    host: str, port: int, ca: Authority, name: str | None = "localhost", cert=None
) -> bytes:
    """The certificate the server shows a client asking for `name`."""
    context = ssl.create_default_context(cafile=str(ca.path))
    context.check_hostname = False
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as s,
    ):
        return s.getpeercert(binary_form=True)


def test_sni_chooses_the_certificate_exact_then_wildcard_then_default(dragoman, ca, site):
    www = ca.issue("www", ("www.example.test",))
    wild = ca.issue("wild", ("*.wild.test",))
    _, (host, port) = start(
        dragoman,
        site,
        "--sni",
        f"www.example.test,{www.cert},{www.key}",
        "--sni",
        f"*.wild.test,{wild.cert},{wild.key}",
    )
    assert peer_der(host, port, ca, "www.example.test") == www.der
    assert peer_der(host, port, ca, "WWW.Example.Test") == www.der
    assert peer_der(host, port, ca, "api.wild.test") == wild.der
    assert peer_der(host, port, ca, "a.b.wild.test") == site.der  # one label only
    assert peer_der(host, port, ca, "wild.test") == site.der
    assert peer_der(host, port, ca, "other.test") == site.der
    assert peer_der(host, port, ca, None) == site.der  # no SNI (an IP address)
    # curl verifies each name against what it is given.
    for name in ("www.example.test", "api.wild.test", "localhost"):
        out = curl(ca, f"https://{name}:{port}/", resolve=f"{name}:{port}:{host}")
        assert out.returncode == 0, (name, out.stderr)
        assert json.loads(out.stdout)["SERVER_NAME"] == name


def test_client_certificates_required_and_optional(dragoman, ca, site, tmp_path):
    clients = Authority(tmp_path / "clients", "client CA")

    one = clients.issue(
        "one",
        client=True,
        chain=False,
        subject=[
            (NameOID.COUNTRY_NAME, "FR"),
            (NameOID.ORGANIZATION_NAME, "Test Org"),
            (NameOID.COMMON_NAME, "client one"),
        ],
    )
    stranger = Authority(tmp_path / "strangers", "other CA").issue("x", client=True, chain=False)

    def get(port, host, cert=None):
        args = ["--cert", str(cert.cert), "--key", str(cert.key)] if cert else []
        return curl(
            ca,
            f"https://localhost:{port}/",
            *args,
            resolve=f"localhost:{port}:{host}",
        )

    # Required ("!" in front of the CA, uWSGI's syntax).
    _, (host, port) = start(
        dragoman,
        site,
        "--ssl-client-ca",
        f"!{clients.path}",
        "--https-export-cert",
    )
    assert get(port, host).returncode != 0
    assert get(port, host, stranger).returncode != 0
    out = get(port, host, one)
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["HTTPS_DN"] == "/C=FR/O=Test Org/CN=client one"
    assert env["HTTPS_CC"] == (tmp_path / "clients" / "one.crt").read_text()
    # Optional: no certificate is fine, a bad one is not.
    server = dragoman(
        "tls_app:application",
        "--https",
        f"127.0.0.1:0,{site.cert},{site.key},,{clients.path}",
        http=None,
    )
    host, port = https_address(server)
    out = get(port, host)
    assert out.returncode == 0, out.stderr
    assert "HTTPS_DN" not in json.loads(out.stdout)
    assert get(port, host, stranger).returncode != 0
    out = get(port, host, one)
    env = json.loads(out.stdout)
    assert env["HTTPS_DN"] == "/C=FR/O=Test Org/CN=client one"
    assert "HTTPS_CC" not in env  # without https-export-cert


def test_http_to_https_redirects_with_308_but_acme_challenges(dragoman, ca, site):
    server = dragoman(
        "tls_app:application",
        "--https",
        f"127.0.0.1:0,{site.cert},{site.key}",
        "--http-to-https",
        "127.0.0.1:0,8443",
        "--hsts",
        "63072000",
        "--hsts-include-subdomains",
        http=None,
    )
    m = server.wait_for_log(r"listening on (\S+) \(http-to-https\)")
    redirect = m.group(1)
    r = httpx.post(
        f"http://{redirect}/a/b?c=d", headers={"Host": "www.example.test:80"}, content=b"x"
    )
    assert r.status_code == 308
    assert r.headers["location"] == "https://www.example.test:8443/a/b?c=d"
    assert "strict-transport-security" not in r.headers  # not over plain HTTP
    r = httpx.get(f"http://{redirect}/.well-known/acme-challenge/token123")
    assert r.status_code == 200 and r.json()["PATH_INFO"] == "/.well-known/acme-challenge/token123"
    with socket.create_connection(tuple(redirect.rsplit(":", 1)), timeout=5) as s:  # type: ignore[arg-type]
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.0 400")
    host, port = https_address(server)
    out = curl(ca, f"https://localhost:{port}/", "-i", resolve=f"localhost:{port}:{host}")
    assert (
        b"strict-transport-security: max-age=63072000; includeSubDomains"
        in out.stdout.lower().replace(b"includesubdomains", b"includeSubDomains")
    ), out.stdout[:300]


def reused(host: str, port: int, ca: Authority, session: Path, version: str) -> tuple[bool, int]:
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{host}:{port}",
            "-servername",
            "localhost",
            "-CAfile",
            str(ca.path),
            version,
            "-sess_in",
            str(session),
            "-ign_eof",
        ],
        input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        capture_output=True,
        timeout=20,
        check=False,
    )
    text = out.stdout.decode(errors="replace")
    pid = int(re.search(r'"pid": (\d+)', text).group(1))
    return "Reused, TLSv1." in text, pid


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_sessions_resume_on_every_worker(dragoman, ca, site, tmp_path, version):
    """Ticket keys come from the master: a session from one worker resumes on the other."""
    server, (host, port) = start(dragoman, site, "--processes", "2", workers=2)
    session = tmp_path / "session.pem"
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{host}:{port}",
            "-servername",
            "localhost",
            "-CAfile",
            str(ca.path),
            version,
            "-sess_out",
            str(session),
            "-ign_eof",
        ],
        input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert session.exists() and b"Verify return code: 0" in out.stdout, out.stdout[-500:]
    first = int(re.search(rb'"pid": (\d+)', out.stdout).group(1))
    pids = {first}
    for _ in range(30):
        ok, pid = reused(host, port, ca, session, version)
        assert ok, "a session was not resumed"
        pids.add(pid)
        if len(pids) == 2:
            break
    assert pids == set(server.worker_pids()), "never resumed on the other worker"


def test_certificates_reload_when_their_files_change(dragoman, ca, tmp_path):
    first = ca.issue("reload")
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    server = dragoman("tls_app:application", "--https", f"127.0.0.1:0,{cert},{key}", http=None)
    host, port = https_address(server)
    assert peer_der(host, port, ca) == first.der
    # A connection kept open across the change.
    context = ssl.create_default_context(cafile=str(ca.path))
    raw = socket.create_connection((host, port), timeout=10)
    kept = context.wrap_socket(raw, server_hostname="localhost")
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    kept.sendall(request)
    assert kept.recv(65536).startswith(b"HTTP/1.1 200")
    second = ca.issue("reload2")
    cert.write_bytes(second.cert.read_bytes())
    key.write_bytes(second.key.read_bytes())
    server.wait_for_log(r"worker 1: .*live.crt changed; certificates reloaded", timeout=15)
    assert peer_der(host, port, ca) == second.der
    kept.sendall(request)
    assert kept.recv(65536).startswith(b"HTTP/1.1 200"), "the open connection was dropped"
    kept.close()
    # A new pair that does not load (the key of another certificate): the last good one stays.
    key.write_bytes(first.key.read_bytes())
    server.wait_for_log(
        r"does not load, so the previous certificates stay: .*does not match", timeout=15
    )
    assert peer_der(host, port, ca) == second.der
    assert server.proc.poll() is None


def test_sighup_rereads_certificates_and_keeps_the_old_when_the_new_fail(dragoman, ca, tmp_path):
    first = ca.issue("hup1")
    cert, key = tmp_path / "hup.crt", tmp_path / "hup.key"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    server = dragoman(
        "tls_app:application", "--https", f"127.0.0.1:0,{cert},{key}", "--threads", "2", http=None
    )
    host, port = https_address(server)
    # A request in flight over TLS while the reload happens: answered.
    context = ssl.create_default_context(cafile=str(ca.path))
    raw = socket.create_connection((host, port), timeout=10)
    busy = context.wrap_socket(raw, server_hostname="localhost")
    busy.sendall(b"GET /slow?2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    time.sleep(0.3)
    second = ca.issue("hup2")
    cert.write_bytes(second.cert.read_bytes())
    key.write_bytes(second.key.read_bytes())
    server.proc.send_signal(signal.SIGHUP)
    busy.settimeout(10)
    answer = busy.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"slow done\n"), answer
    busy.close()
    server.wait_for_log(r"reload finished")
    assert peer_der(host, port, ca) == second.der
    # A broken certificate at the next SIGHUP: the reload goes on with the previous one.
    cert.write_text("broken\n")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log(r"TLS: keeping the previous certificates: .*hup.crt: no certificate")
    time.sleep(1.5)
    assert peer_der(host, port, ca) == second.der
    assert server.proc.poll() is None


def test_django_login_over_https_in_headless_chromium(dragoman, ca, site, site_env):
    """The example site over HTTPS in a real browser: Django's CSRF check on an HTTPS POST
    compares the Origin with https://HOST (request.is_secure()), so the login only passes when
    the application sees the request as HTTPS."""
    from playwright.sync_api import sync_playwright

    server = dragoman(
        "--ini",
        str(SITE / "dragoman.ini"),
        "--https",
        f"127.0.0.1:0,{site.cert},{site.key}",
        "--static-map",
        f"/static={site_env['DJANGO_STATIC_ROOT']}",
        "--hsts",
        "600",
        env=site_env,
        cwd=SITE,
    )
    _, port = https_address(server)
    failed, statuses = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            page.on("requestfailed", lambda req: failed.append(req.url))
            page.on("response", lambda resp: statuses.append((resp.url, resp.status)))
            page.goto(
                f"https://localhost:{port}/admin/login/?next=/admin/", wait_until="networkidle"
            )
            page.fill("#id_username", "admin")
            page.fill("#id_password", "dragoman-demo")
            with page.expect_navigation(wait_until="networkidle"):
                page.click("input[type=submit]")
            assert page.url == f"https://localhost:{port}/admin/", page.url
            assert "Site administration" in page.content()
            cookies = {c["name"]: c for c in context.cookies()}
            protocol = page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol"
            )
        finally:
            browser.close()
    assert "sessionid" in cookies and "csrftoken" in cookies, cookies
    assert failed == [], failed
    assert all(status < 400 for _, status in statuses), statuses
    assert protocol == "h2", protocol  # Chromium chose HTTP/2 by ALPN
    assert any(url.startswith(f"https://localhost:{port}/static/") for url, _ in statuses)
