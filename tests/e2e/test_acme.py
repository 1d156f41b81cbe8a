"""Certificates by ACME, against Debian's pebble (a real ACME CA for tests) and
pebble-challtestsrv (its DNS, resolving every name the tests use to 127.0.0.1), both started
here on loopback. pebble's validations really connect back to dragoman: its HTTP-01 and
TLS-ALPN-01 ports are set to the test's dragoman listeners. Certificates are then checked
with real TLS clients against pebble's own root."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from tls_certs import Authority

APP = "tls_app:application"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout}s")


class Pebble:
    """pebble and its DNS, validating on `http_port` and `tls_port` of 127.0.0.1."""

    def __init__(
        self,
        folder: Path,
        ca: Authority,
        http_port: int,
        tls_port: int,
        *,
        validity: int = 3600,
        env: dict[str, str] | None = None,
        config: dict | None = None,
    ):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = ca
        server = ca.issue(f"pebble-{os.getpid()}-{free_port()}", ("localhost",))
        self.port = free_port()
        self.management = free_port()
        dns = free_port()
        settings = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management}",
            "certificate": str(server.cert),
            "privateKey": str(server.key),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": validity,
        }
        settings.update(config or {})
        config_path = folder / "pebble.json"
        config_path.write_text(json.dumps({"pebble": settings}))
        self.log_path = folder / "pebble.log"
        self.dns_log = folder / "challtestsrv.log"
        self.procs = []
        with open(self.dns_log, "wb") as log:
            self.procs.append(
                subprocess.Popen(
                    [
                        "pebble-challtestsrv",
                        "-defaultIPv4",
                        "127.0.0.1",
                        "-defaultIPv6",
                        "",
                        "-http01",
                        "",
                        "-https01",
                        "",
                        "-tlsalpn01",
                        "",
                        "-dns01",
                        f"127.0.0.1:{dns}",
                        "-management",
                        f"127.0.0.1:{free_port()}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        pebble_env = dict(os.environ)
        # Fast and deterministic unless a test asks otherwise: no random validation sleeps,
        # no rejected nonces, no reused authorizations.
        pebble_env.update(
            {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
        )
        pebble_env.update(env or {})
        with open(self.log_path, "wb") as log:
            self.procs.append(
                subprocess.Popen(
                    ["pebble", "-config", str(config_path), "-dnsserver", f"127.0.0.1:{dns}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=pebble_env,
                )
            )
        wait_for(lambda: "Listening on" in self.log(), 15, f"pebble listening:\n{self.log()}")

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def orders(self) -> int:
        """How many orders pebble took."""
        return len(re.findall(r"Added order", self.log()))

    def root(self) -> Path:
        """pebble's issuing root (a new one each run), to verify what it issued."""
        path = self.folder / "pebble-root.pem"
        if not path.exists():
            r = httpx.get(
                f"https://127.0.0.1:{self.management}/roots/0",
                verify=ssl.create_default_context(cafile=str(self.ca.path)),
            )
            assert r.status_code == 200, r.text
            path.write_text(r.text)
        return path

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Authority:
    return Authority(tmp_path_factory.mktemp("pki"), name="pebble listener CA")


@pytest.fixture
def pebbles(tmp_path, ca):
    """Starts pebbles; all are stopped when the test ends."""
    started: list[Pebble] = []

    def start(http_port: int, tls_port: int, **kwargs) -> Pebble:
        p = Pebble(tmp_path / f"pebble-{len(started)}", ca, http_port, tls_port, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def acme_args(pebble: Pebble, cache: Path, *names: str, challenge: str | None = None):
    args = ["--acme-directory", pebble.directory, "--acme-ca-root", str(pebble.ca.path)]
    args += ["--acme-cache", str(cache)]
    for name in names:
        args += ["--acme-domain", name]
    if challenge:
        args += ["--acme-challenge", challenge]
    return args


def start_site(dragoman, http_port, https_port, *args, wait=True):
    return dragoman(
        APP,
        "--https",
        f"127.0.0.1:{https_port}",
        *args,
        http=f"127.0.0.1:{http_port}",
        wait=wait,
    )


def https_get(port: int, name: str, root: Path, path: str = "/") -> tuple[int, bytes, bytes]:
    """GET over a new TLS connection to 127.0.0.1:port for `name`, verified against `root`:
    (status, body, the server certificate's DER)."""
    context = ssl.create_default_context(cafile=str(root))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body, der


def handshake_refusal(port: int, name: str) -> str:
    """The error a TLS client gets from 127.0.0.1:port asking for `name` (no verification)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=name):
                return ""
        except ssl.SSLError as e:
            return str(e)


def issued(server, name: str, timeout: float = 40) -> None:
    """Waits until the workers serve the certificate of `name`."""
    server.wait_for_log(rf"ACME: {re.escape(name)}: certificate issued", timeout)
    server.wait_for_log(r"TLS: worker \d+: acme " + re.escape(name) + r": /CN=", 15)


def test_http01_first_issuance(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    cache = tmp_path / "cache"
    server = start_site(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, cache, "a.test,www.a.test", challenge="http-01"),
        "--acme-email",
        "admin@a.test",
    )
    issued(server, "a.test,www.a.test")
    assert "certificate issued (http-01" in server.log()
    # pebble's validations came to dragoman's plain listener, for both names.
    for name in ("a.test", "www.a.test"):
        url = f"http://{name}:{http_port}/.well-known/acme-challenge/"
        assert f"Attempting to validate w/ HTTP: {url}" in pebble.log()
    for name in ("a.test", "www.a.test"):
        status, body, der = https_get(https_port, name, pebble.root())
        assert status == 200 and b"https" in body
        cert = x509.load_der_x509_certificate(der)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert set(sans.value.get_values_for_type(x509.DNSName)) == {"a.test", "www.a.test"}
    # Plain HTTP still serves, and the challenge files are gone.
    assert httpx.get(f"http://127.0.0.1:{http_port}/").status_code == 200
    assert not any((cache / "challenges" / "http-01").iterdir())
    # The cache is private: the directory 0700, the key files 0600.
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    pem = next(cache.glob("*/certificates/a.test.pem"))
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    account = json.loads(next(cache.glob("*/account.json")).read_text())
    assert account["email"] == "admin@a.test"
    assert pebble.orders() == 1


def test_tls_alpn01_first_issuance(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    server = start_site(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, tmp_path / "cache", "b.test", challenge="tls-alpn-01"),
    )
    issued(server, "b.test")
    log = server.log()
    assert "certificate issued (tls-alpn-01" in log
    # pebble's validation was a handshake on dragoman's https listener, with acme-tls/1.
    assert "answered the ACME TLS-ALPN-01 challenge for b.test" in log
    status, body, _ = https_get(https_port, "b.test", pebble.root())
    assert status == 200 and b"https" in body
    # A plain client asking for acme-tls/1 with no challenge under way gets nothing.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["acme-tls/1"])
    with (
        socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
        context.wrap_socket(raw, server_hostname="other.test"),
    ):
        pass


def test_a_restart_reuses_the_cache(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    args = acme_args(pebble, tmp_path / "cache", "c.test", challenge="http-01")
    first = start_site(dragoman, http_port, https_port, *args)
    issued(first, "c.test")
    _, _, der_first = https_get(https_port, "c.test", pebble.root())
    assert first.stop() == 0
    assert pebble.orders() == 1
    second = start_site(dragoman, http_port, https_port, *args)
    # The worker serves the cached certificate from its start: no order, no wait.
    status, _, der_second = https_get(https_port, "c.test", pebble.root())
    assert status == 200 and der_second == der_first
    second.wait_for_log(r"ACME: c\.test: certificate valid until", 20)
    time.sleep(1)
    assert pebble.orders() == 1
    assert "ordering a certificate" not in second.log()
    assert "account created" not in second.log()


def test_renewal_swaps_the_certificate_while_clients_keep_coming(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    # 30-second certificates: renewed when 10 seconds are left.
    pebble = pebbles(http_port, https_port, validity=30)
    server = start_site(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, tmp_path / "cache", "d.test", challenge="http-01"),
    )
    issued(server, "d.test")
    root = pebble.root()
    serials: list[int] = []
    failures: list[str] = []
    requests = 0
    deadline = time.monotonic() + 45
    # New connections, so each handshake gets the certificate served at that moment; until
    # two renewals were seen served (or the deadline).
    while time.monotonic() < deadline and len(set(serials)) < 3:
        try:
            status, _, der = https_get(https_port, "d.test", root)
            requests += 1
            if status != 200:
                failures.append(f"status {status}")
            serial = x509.load_der_x509_certificate(der).serial_number
            if not serials or serials[-1] != serial:
                serials.append(serial)
        except (OSError, ssl.SSLError) as e:
            failures.append(repr(e))
        time.sleep(0.05)
    assert failures == [], failures[:5]
    assert len(set(serials)) == 3, (serials, server.log())
    assert requests > 100
    assert len(re.findall(r"d\.test: certificate issued", server.log())) >= 3
    assert "due for renewal" in server.log()


def test_two_instances_sharing_a_cache_order_once(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    other_http, other_https = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    cache = tmp_path / "shared"
    args = acme_args(pebble, cache, "e.test", challenge="http-01")
    # Started together: both find no certificate; one orders under the lock, and if the
    # other took the lock, its challenge is answered by the first one's listener (pebble
    # validates on its port) from the shared cache.
    one = start_site(dragoman, http_port, https_port, *args, wait=False)
    two = start_site(dragoman, other_http, other_https, *args, wait=False)
    one.wait_ready()
    two.wait_ready()
    root = pebble.root()
    for port in (https_port, other_https):
        wait_for(lambda p=port: serves(p, "e.test", root), 40, f"e.test served on {port}")
    time.sleep(2)
    assert pebble.orders() == 1, (one.log(), two.log())
    logs = one.log() + two.log()
    assert len(re.findall(r"e\.test: certificate issued", logs)) == 1
    assert len(re.findall(r"account created", logs)) == 1
    assert not list(cache.glob("*/locks/*.lock"))


def serves(port: int, name: str, root: Path) -> bool:
    try:
        return https_get(port, name, root)[0] == 200
    except (OSError, ssl.SSLError):
        return False


def test_rejected_nonces_are_retried(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    # A quarter of good nonces rejected: instant-acme tries each request three times, and
    # dragoman tries the order (or the account) again when all three were.
    pebble = pebbles(http_port, https_port, env={"PEBBLE_WFE_NONCEREJECT": "25"})
    names = [f"n{i}.test" for i in range(6)]
    server = start_site(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, tmp_path / "cache", *names, challenge="http-01"),
    )
    # One back-off (a minute) fits, in the rare case that an order failed three times.
    for name in names:
        issued(server, name, timeout=100)
    assert "Configured to reject 25% of good nonces" in pebble.log()
    # The requests made once each when none is rejected: the account, then for each name
    # its order, its challenge, its finalization and its certificate. More were sent: the
    # rejected ones, sent again.
    once = ("/sign-me-up", "/order-plz", "/chalZ", "/finalize-order", "/certZ")
    sent = sum(len(re.findall(rf"POST {p}", pebble.log())) for p in once)
    assert sent > 1 + 4 * len(names), sent
    for name in names:
        assert https_get(https_port, name, pebble.root())[0] == 200


def failing(dragoman, http_port, https_port, *args):
    """A site whose ACME fails: returns the server once it has started."""
    return start_site(dragoman, http_port, https_port, *args)


def keeps_serving(server, http_port: int, https_port: int, name: str) -> None:
    """Plain HTTP serves; HTTPS for a name with no certificate is refused with an alert."""
    r = httpx.get(f"http://127.0.0.1:{http_port}/", timeout=10)
    assert r.status_code == 200 and r.json()["wsgi.url_scheme"] == "http"
    why = handshake_refusal(https_port, name)
    assert "ACCESS_DENIED" in why.upper(), why
    server.wait_for_log(rf"no certificate for {re.escape(name)} yet", 5)
    assert server.proc.poll() is None


def one_line(server, pattern: str, settle: float = 3.0) -> str:
    """The one ERROR line matching `pattern` (waited for, then no second one comes)."""
    server.wait_for_log(pattern, 20)
    time.sleep(settle)
    lines = [ln for ln in server.log().splitlines() if re.search(pattern, ln)]
    assert len(lines) == 1, lines
    assert "[ERROR]" in lines[0], lines[0]
    return lines[0]


def test_unreachable_directory(dragoman, ca, tmp_path):
    http_port, https_port = free_port(), free_port()
    nothing = free_port()
    server = failing(
        dragoman,
        http_port,
        https_port,
        "--acme-domain",
        "h.test",
        "--acme-directory",
        f"https://127.0.0.1:{nothing}/dir",
        "--acme-ca-root",
        str(ca.path),
        "--acme-cache",
        str(tmp_path / "cache"),
    )
    line = one_line(server, "cannot reach the ACME directory")
    assert f"https://127.0.0.1:{nothing}/dir" in line
    assert "onnection refused" in line and "trying again in 60s" in line
    keeps_serving(server, http_port, https_port, "h.test")


def test_a_refused_domain_does_not_block_the_others(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port, config={"domainBlocklist": ["blocked.test"]})
    server = failing(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, tmp_path / "cache", "blocked.test", "fine.test", challenge="http-01"),
    )
    line = one_line(server, r"ordering blocked\.test: the CA answered")
    assert "rejectedIdentifier" in line and "check acme-domain" in line
    issued(server, "fine.test")
    assert https_get(https_port, "fine.test", pebble.root())[0] == 200
    keeps_serving(server, http_port, https_port, "blocked.test")


def test_an_email_the_ca_refuses(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    server = failing(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, tmp_path / "cache", "i.test"),
        "--acme-email",
        "john..doe@i.test",
    )
    line = one_line(server, "creating the ACME account: the CA answered")
    assert "invalidContact" in line and "fix acme-email" in line
    keeps_serving(server, http_port, https_port, "i.test")
    # A syntactically broken address is refused at startup instead, naming the option.
    from conftest import run_dragoman

    r = run_dragoman(APP, "--acme-domain", "i.test", "--acme-email", "john", timeout=30)
    assert r.returncode == 2
    assert "option 'acme-email' expects an email address" in r.stderr


def test_an_unwritable_cache(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    # A file where a directory should be: no user can write there, root included.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    server = failing(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, blocker / "cache", "j.test"),
    )
    line = one_line(server, "cannot write in the cache directory")
    assert str(blocker / "cache") in line and "acme-cache" in line
    keeps_serving(server, http_port, https_port, "j.test")
    # Nothing was ordered that could not be kept.
    assert pebble.orders() == 0


def test_a_damaged_cache_file(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    cache = tmp_path / "cache"
    directory = cache / f"127.0.0.1-{pebble.port}-dir"
    (directory / "certificates").mkdir(parents=True)
    damaged = directory / "certificates" / "k.test.pem"
    damaged.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"
    )
    (directory / "account.json").write_text("{ half a file")
    server = failing(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, cache, "k.test", challenge="http-01"),
    )
    line = one_line(server, r"the account file .* is damaged", settle=0.5)
    assert "a new account is made" in line
    assert (directory / "account.json.damaged").exists()
    line = one_line(server, r"k\.test: the cached certificate .* does not load", settle=0.5)
    assert str(damaged) in line and "ordering a new one" in line
    issued(server, "k.test")
    assert https_get(https_port, "k.test", pebble.root())[0] == 200


def test_an_untrusted_directory_certificate(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    stranger = Authority(tmp_path / "stranger", name="some other CA")
    server = failing(
        dragoman,
        http_port,
        https_port,
        "--acme-domain",
        "l.test",
        "--acme-directory",
        pebble.directory,
        "--acme-ca-root",
        str(stranger.path),
        "--acme-cache",
        str(tmp_path / "cache"),
    )
    line = one_line(server, "is not trusted")
    assert pebble.directory in line and "set acme-ca-root" in line
    keeps_serving(server, http_port, https_port, "l.test")


def test_external_account_binding(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    pebble = pebbles(
        http_port,
        https_port,
        config={
            "externalAccountBindingRequired": True,
            "externalAccountMACKeys": {"kid-1": hmac},
        },
    )
    # Without the binding: the CA's problem, said once.
    without = failing(
        dragoman, http_port, https_port, *acme_args(pebble, tmp_path / "none", "m.test")
    )
    line = one_line(without, "creating the ACME account: the CA answered")
    assert "externalAccountRequired" in line and "acme-eab-kid" in line
    assert without.stop() == 0
    server = start_site(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, tmp_path / "cache", "m.test", challenge="http-01"),
        "--acme-eab-kid",
        "kid-1",
        "--acme-eab-hmac",
        hmac,
    )
    issued(server, "m.test")
    assert https_get(https_port, "m.test", pebble.root())[0] == 200


def test_the_manager_is_supervised_and_stops_with_the_master(dragoman, pebbles, tmp_path):
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    server = start_site(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, tmp_path / "cache", "n.test", challenge="http-01"),
    )
    issued(server, "n.test")
    pid = int(server.wait_for_log(r"ACME certificate manager started \(pid (\d+)\)").group(1))
    os.kill(pid, 9)
    server.wait_for_log(rf"ACME certificate manager \(pid {pid}\) was killed by SIGKILL", 10)
    again = server.wait_for_log(rf"ACME certificate manager started \(pid (?!{pid}\))(\d+)\)", 10)
    new_pid = int(again.group(1))
    # The new one finds the certificate in the cache: no second order.
    wait_for(
        lambda: len(re.findall(r"n\.test: certificate valid until", server.log())) >= 2,
        15,
        "the restarted manager's look",
    )
    assert pebble.orders() == 1
    # A reload starts it again with the configuration just read, at once.
    os.kill(server.proc.pid, signal.SIGHUP)
    server.wait_for_log(rf"ACME certificate manager \(pid {new_pid}\) stopped for the reload", 10)
    third = server.wait_for_log(
        rf"ACME certificate manager started \(pid (?!(?:{pid}|{new_pid})\))(\d+)\)", 10
    )
    last_pid = int(third.group(1))
    assert server.stop() == 0
    # It stopped with the master.
    for gone in (new_pid, last_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(gone, 0)


def test_answers_only_challenges_under_way(dragoman, pebbles, tmp_path):
    # A token the cache does not have goes on to the application (a site's own challenge
    # files keep working).
    http_port, https_port = free_port(), free_port()
    pebble = pebbles(http_port, https_port)
    server = start_site(
        dragoman,
        http_port,
        https_port,
        *acme_args(pebble, tmp_path / "cache", "o.test", challenge="http-01"),
    )
    issued(server, "o.test")
    r = httpx.get(f"http://127.0.0.1:{http_port}/.well-known/acme-challenge/unknown-token")
    assert r.status_code == 200 and "acme-challenge/unknown-token" in r.text
    token_dir = tmp_path / "cache" / "challenges" / "http-01"
    (token_dir / "made-up").write_text("made-up.thumbprint")
    r = httpx.get(f"http://127.0.0.1:{http_port}/.well-known/acme-challenge/made-up")
    assert r.status_code == 200 and r.text == "made-up.thumbprint"
    # Only tokens name files: nothing beside the answers is read.
    (token_dir.parent / "secret").write_text("SECRET")
    r = httpx.get(f"http://127.0.0.1:{http_port}/.well-known/acme-challenge/..%2fsecret")
    assert r.status_code == 200 and "SECRET" not in r.text
