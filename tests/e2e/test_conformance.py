"""The HTTP/1.1 request corpora from gunicorn and llhttp (../shared/conformance), replayed
over TCP against the echo application, one connection per case.

Every case runs and is asserted. The verdict is the corpus's, except for the cases listed in
DEVIATIONS, where dragoman's verdict and the reason are given (docs/http-conformance.md lists them):
- "accept": every expected request is answered 200 and reached the app with the expected
  method, path, query, singleton headers and body;
- "reject": at most the corpus's complete requests get a 2xx, then a 4xx/5xx or a close;
- "wait": the input ends mid-request, so the server answers what is complete and waits.

HTTP/1.1 requests without Host are rejected with 400 (RFC 9112 §3.2 says MUST). Many llhttp
cases have no Host because llhttp does not check it; those cases run twice: as written
(expected: 400) and with `Host: x` added after each request line (expected: the corpus's
verdict), so their parsing is still tested.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
from conftest import APPS, Server

# Copied from the shared corpora with their licenses (see tests/conformance/README.md).
CORPORA = Path(__file__).resolve().parents[1] / "conformance"

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "content-length",
}

# Cases where dragoman's verdict differs from the corpus: name -> (verdict, reason).
DEVIATIONS: dict[str, tuple[str, str]] = {
    # Stricter than the corpus.
    "gunicorn:valid/014": (
        "reject",
        'the http crate refuses `"` in the request target (RFC 3986 does not allow it; clients percent-encode it)',
    ),
    "llhttp:uri/quotes-in-uri": (
        "reject",
        'the http crate refuses `"` in the request target (RFC 3986 does not allow it; clients percent-encode it)',
    ),
    "gunicorn:valid/009": (
        "reject",
        "Transfer-Encoding that does not end in chunked is refused (RFC 9112 §6.1 allows it; no ambiguity about the body)",
    ),
    "gunicorn:valid/rfc9112_target_authority_connect_01": (
        "reject",
        "CONNECT gets 501: dragoman is an origin server, not a forward proxy",
    ),
    "gunicorn:valid/rfc9112_target_authority_ipv6_01": (
        "reject",
        "CONNECT gets 501: dragoman is an origin server, not a forward proxy",
    ),
    "llhttp:method/m-search-request": (
        "reject",
        "the request target * is only allowed with OPTIONS (RFC 9112 §3.2.4)",
    ),
    "llhttp:method/source-request-with-ice": (
        "reject",
        "only HTTP/1.0 and HTTP/1.1 are served on an HTTP/1 listener, not ICE or RTSP",
    ),
    "llhttp:method/options-request-with-rtsp": (
        "reject",
        "only HTTP/1.0 and HTTP/1.1 are served on an HTTP/1 listener, not ICE or RTSP",
    ),
    "llhttp:method/announce-request-with-rtsp": (
        "reject",
        "only HTTP/1.0 and HTTP/1.1 are served on an HTTP/1 listener, not ICE or RTSP",
    ),
    "llhttp:method/pri-request-http2": (
        "reject",
        "the HTTP/2 preface is refused on an HTTP/1 listener (HTTP/2 is not served yet)",
    ),
    "llhttp:sample/no-http-version": ("reject", "HTTP/0.9 requests are refused"),
    "gunicorn:valid/031compat": (
        "reject",
        "needs gunicorn's casefold_http_method (dragoman keeps methods as sent: they are case-sensitive, RFC 9110 §9.1); as written it has no Host, so 400",
    ),
    "llhttp:connection/resetting-flags-when-keep-alive-is-off-1-0-lenient": (
        "reject-after-1",
        "the HTTP/1.0 request is answered and the connection closed; the bytes after it are not read",
    ),
    "llhttp:sample/prefix-newline": (
        "reject",
        "an empty line before the request line is refused (RFC 9112 §2.2 says SHOULD ignore; hyper does not)",
    ),
    "llhttp:sample/request-starting-with-crlf": (
        "reject",
        "an empty line before the request line is refused (RFC 9112 §2.2 says SHOULD ignore; hyper does not)",
    ),
    # More lenient than the corpus.
    "gunicorn:invalid/041": (
        "accept",
        "a repeated Content-Type reaches the app joined with ', ' (RFC 9110 §5.3); the body framing is unaffected",
    ),
    "gunicorn:invalid/rfc9110_trailer_forbidden_cl_01": (
        "accept",
        "trailer fields are read and dropped, never given to the app, so a forbidden one changes nothing",
    ),
    "gunicorn:invalid/rfc9110_trailer_forbidden_host_01": (
        "accept",
        "trailer fields are read and dropped, never given to the app, so a forbidden one changes nothing",
    ),
    "gunicorn:invalid/rfc9110_trailer_forbidden_te_01": (
        "accept",
        "trailer fields are read and dropped, never given to the app, so a forbidden one changes nothing",
    ),
    "llhttp:invalid/http-protocol-and-announce-method": (
        "accept",
        "any token is a method (RFC 9110 §9.1); the application decides what it supports",
    ),
    "llhttp:uri/disallow-utf-8-in-uri-path-in-strict-mode": (
        "accept",
        "raw bytes above 0x7F in the target reach the app as latin-1 in PATH_INFO, like gunicorn and uWSGI",
    ),
    # Limits: dragoman's defaults differ from gunicorn's (4094-byte request line, 8190-byte
    # fields); the cases that set gunicorn's limits run with dragoman's equivalent options.
    "gunicorn:invalid/006": (
        "accept",
        "dragoman's default request-line limit (limit-request-line) is 8190 bytes, gunicorn's 4094",
    ),
    "gunicorn:invalid/007": (
        "accept",
        "dragoman limits the whole request head (buffer-size, 32 KiB by default), not each field (gunicorn: 8190 bytes)",
    ),
    "gunicorn:invalid/008": (
        "accept",
        "dragoman limits the whole request head (buffer-size, 32 KiB by default), not each field (gunicorn: 8190 bytes)",
    ),
    # Cases that need a gunicorn setting dragoman does not have: dragoman answers with its defaults.
    "gunicorn:invalid/012": (
        "accept",
        "needs gunicorn's limit_request_field_size = 98; dragoman limits the whole head (buffer-size), not each field",
    ),
    "gunicorn:invalid/040": (
        "accept",
        "needs gunicorn's header_map = refuse; dragoman drops names with '_' (gunicorn's default, 'drop')",
    ),
    "gunicorn:invalid/limit_header_default_01": (
        "accept",
        "needs gunicorn's limit_request_field_size = 0; dragoman limits the whole head (buffer-size), not each field",
    ),
    "gunicorn:valid/028": (
        "reject",
        "needs gunicorn's strip_header_spaces; whitespace before ':' is refused (RFC 9112 §5.1 MUST)",
    ),
    "gunicorn:valid/compat_obs_fold": (
        "reject",
        "needs gunicorn's permit_obsolete_folding; obsolete line folding is refused (RFC 9112 §5.2 allows a 400)",
    ),
    "gunicorn:valid/compat_obs_fold_huge": (
        "reject",
        "needs gunicorn's permit_obsolete_folding; obsolete line folding is refused (RFC 9112 §5.2 allows a 400)",
    ),
    "gunicorn:valid/099": (
        "wait-0",
        "its body is shorter than its Content-Length; over a kept-alive connection the server waits for the rest (see the corpus README)",
    ),
}


def load_cases() -> list[tuple[str, dict]]:
    cases = []
    for corpus in ("gunicorn", "llhttp"):
        data = json.loads((CORPORA / f"{corpus}-requests.json").read_text())
        cases += [(f"{corpus}:{case['name']}", case) for case in data["cases"]]
    return cases


CASES = load_cases()


TWINS = {f"{n.split(':')[0]}:{c['name']}": c for n, c in CASES}


def corpus_verdict(name: str, case: dict) -> str:
    if case.get("lenient_only"):
        # A strict RFC 9112 server is not expected to accept these: the requests its strict
        # twin completes may be answered, nothing after.
        twin = TWINS.get(f"llhttp:{case.get('strict_twin')}")
        return f"reject-after-{twin['complete_requests_before_error'] if twin else 0}"
    outcome = case.get("outcome")
    if outcome == "incomplete":
        return "wait"
    if outcome == "upgrade":
        return "upgrade"
    return "accept" if case["valid"] else "reject"


def needs_host(request: dict) -> bool:
    has_host = any(name.lower() == "host" for name, _ in request["headers"])
    return request["version"] == "HTTP/1.1" and not has_host


def add_host(raw: bytes, requests: list[dict]) -> bytes:
    """Inserts `Host: x` after the request line of each HTTP/1.1 request that has none."""
    out, pos = b"", 0
    for request in requests:
        line = f"{request['method']} {request['uri']} {request['version']}".encode("latin-1")
        at = raw.find(line, pos)
        if at < 0:
            return raw
        end = raw.index(b"\n", at) + 1
        out += raw[pos:end] + (b"Host: x\r\n" if needs_host(request) else b"")
        pos = end
    return out + raw[pos:]


def start_echo(tmp_path_factory, *args: str) -> Server:
    log_path = tmp_path_factory.mktemp("conformance") / "dragoman.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dragoman", "--http", "127.0.0.1:0", *args, "echo:application"],
            cwd=APPS,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, log_path)
    server.wait_ready()
    server.pid_at_start = server.worker_pids()
    return server


# gunicorn settings a case may ask for, as dragoman options (the others have no equivalent:
# those cases are judged with dragoman's defaults and listed in DEVIATIONS when that differs).
GUNICORN_SETTINGS = {
    "proxy_protocol": lambda on: ["--proxy-protocol"] if on else [],
    "limit_request_fields": lambda n: ["--limit-request-fields", str(n)],
    "limit_request_line": lambda n: ["--limit-request-line", str(n)],
}


def options_for(case: dict) -> tuple[str, ...]:
    args: list[str] = []
    for name, value in sorted(case["config"].items()):
        if name in GUNICORN_SETTINGS:
            args += GUNICORN_SETTINGS[name](value)
    return tuple(args)


@pytest.fixture(scope="module")
def echo_servers(tmp_path_factory):
    """Echo servers by options, started when a case first needs them; () is the default one."""
    servers: dict[tuple[str, ...], Server] = {}

    def get(args: tuple[str, ...] = ()) -> Server:
        if args not in servers:
            servers[args] = start_echo(tmp_path_factory, *args)
        return servers[args]

    get.servers = servers
    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def echo(echo_servers):
    return echo_servers()


def proxy_source(raw: bytes) -> str | None:
    """The client a PROXY header names (v1 text or v2 TCP), decoded independently."""
    if raw.startswith(b"PROXY TCP"):
        return raw.split(b" ")[2].decode()
    if raw.startswith(b"\r\n\r\n\x00\r\nQUIT\n"):
        family = raw[13] >> 4
        if family == 1:
            return str(ipaddress.IPv4Address(raw[16:20]))
        if family == 2:
            return str(ipaddress.IPv6Address(raw[16:32]))
    return None


def requests_of(case: dict) -> list[dict]:
    """The requests of a case in order: the complete ones and a partial one with a known
    request line."""
    requests = (
        case["expected"]
        if isinstance(case["expected"], list)
        else case.get("completed_requests", [])
    )
    partial = case.get("incomplete_request_partial")
    if partial and "version" in partial:
        requests = [*requests, partial]
    return requests


def exchange(server: Server, raw: bytes, want: int, idle: float, methods: list[str] = ()) -> list:
    """Sends the raw bytes; returns the parsed responses once `want` arrived, or the server
    closed, or it stayed idle. Each item is (status, headers, body); a close is the end."""
    responses: list = []
    with socket.create_connection((server.host, server.port), timeout=idle) as s:
        s.sendall(raw)
        buf = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            buf, complete = take_responses(buf, methods[len(responses) :])
            responses += complete
            if len(responses) >= want or any(st >= 400 for st, _, _ in responses):
                break
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                buf, complete = take_responses(buf, methods[len(responses) :])
                responses += complete
                break
            buf += chunk
    return responses


def take_responses(buf: bytes, methods: list[str]) -> tuple[bytes, list]:
    """Parses as many complete responses as `buf` holds (Content-Length framed, as the echo
    and the server's error pages are; no body for HEAD)."""
    out = []
    while True:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            return buf, out
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
        }
        is_head = len(out) < len(methods) and methods[len(out)] == "HEAD"
        length = 0 if is_head else int(headers.get("content-length", "0"))
        if len(rest) < length:
            return buf, out
        out.append((status, headers, rest[:length]))
        buf = rest[length:]


def check_accept(responses: list, expected: list[dict], added_host: bool) -> None:
    assert len(responses) >= len(expected), (
        f"{len(responses)} responses for {len(expected)} requests: {responses}"
    )
    for (status, _, body), want in zip(responses, expected):
        assert status == 200, (status, body)
        if want["method"] == "HEAD":
            continue
        env = json.loads(body)
        assert env["REQUEST_METHOD"] == want["method"]
        assert env["QUERY_STRING"] == want["query"]
        assert base64.b64decode(env["body_base64"]) == base64.b64decode(want["body_base64"])
        if want["uri"].startswith("/"):  # origin form: REQUEST_URI is the target as sent
            assert env["REQUEST_URI"] == want["uri"].split("#", 1)[0]
        if want["path"]:
            assert env["PATH_INFO"] == unquote_to_bytes(want["path"].encode("latin-1")).decode(
                "latin-1"
            )
        names = [name.lower() for name, _ in want["headers"]]
        for name, value in want["headers"]:
            lname = name.lower()
            if names.count(lname) != 1 or lname in HOP_BY_HOP or "_" in lname:
                continue
            if lname == "host" and added_host:
                continue
            key = (
                "CONTENT_TYPE"
                if lname == "content-type"
                else "HTTP_" + lname.upper().replace("-", "_")
            )
            assert env.get(key) == value.rstrip(" \t"), (key, env.get(key), value)


def check_reject(responses: list, allowed_ok: int) -> None:
    ok = 0
    for status, _, body in responses:
        if 200 <= status < 300 and ok < allowed_ok:
            ok += 1
            continue
        assert status >= 400, f"accepted a request the verdict rejects: {status} {body[:200]!r}"
        return


def run_case(
    server: Server, case: dict, verdict: str, raw: bytes, added_host: bool = False
) -> None:
    remote = proxy_source(raw) if case["config"].get("proxy_protocol") else None
    requests = requests_of(case)
    complete = (
        case["expected"]
        if isinstance(case["expected"], list)
        else case.get("completed_requests", [])
    )
    methods = [r["method"] for r in requests]
    if verdict == "accept":
        responses = exchange(server, raw, len(complete), 2.0, methods)
        check_accept(responses, complete, added_host)
        for (_, _, body), method in zip(responses[: len(complete)], methods):
            if method != "HEAD":
                assert json.loads(body)["REMOTE_ADDR"] == (remote or "127.0.0.1")
    elif verdict.startswith("wait"):
        answered = int(verdict[5:]) if verdict != "wait" else len(complete)
        responses = exchange(server, raw, answered + 1, 0.5, methods)
        assert [st for st, _, _ in responses] == [200] * answered, responses
        check_accept(responses, complete[:answered], added_host)
    elif verdict == "upgrade":
        # A WSGI server answers the request itself; the app sees Upgrade as a header.
        responses = exchange(server, raw, 1, 0.5, methods)
        assert responses and responses[0][0] == (501 if methods[0] == "CONNECT" else 200), responses
    else:
        if verdict.startswith("reject-after-"):
            allowed = int(verdict.rsplit("-", 1)[1])
        else:
            allowed = 0 if case["valid"] else case.get("complete_requests_before_error", 0)
        check_reject(exchange(server, raw, allowed + 1, 0.5, methods), allowed)


@pytest.mark.parametrize(("name", "case"), CASES, ids=[n for n, _ in CASES])
def test_case(echo_servers, name, case):
    echo = echo_servers(options_for(case))
    raw = base64.b64decode(case["raw_request_base64"])
    verdict = DEVIATIONS.get(name, (corpus_verdict(name, case), ""))[0]
    requests = requests_of(case)
    if not verdict.startswith("reject") and any(needs_host(r) for r in requests):
        # As written: a 400 for the first request without Host, after those before it.
        first_missing = next(i for i, r in enumerate(requests) if needs_host(r))
        methods = [r["method"] for r in requests]
        check_reject(exchange(echo, raw, first_missing + 1, 0.5, methods), first_missing)
        raw = add_host(raw, requests)
        run_case(echo, case, verdict, raw, added_host=True)
    else:
        run_case(echo, case, verdict, raw)


def test_deviations_name_real_cases_and_give_reasons():
    names = {n for n, _ in CASES}
    assert set(DEVIATIONS) <= names, set(DEVIATIONS) - names
    assert all(reason for _, reason in DEVIATIONS.values())


def test_the_worker_survived_every_case(echo_servers):
    """Run last (file order): no case killed or replaced a worker."""
    assert len(echo_servers.servers) >= 2, "the cases with gunicorn settings ran"
    for echo in echo_servers.servers.values():
        check_survived(echo)


def check_survived(echo: Server) -> None:
    assert echo.worker_pids() == echo.pid_at_start
    with socket.create_connection((echo.host, echo.port), timeout=5) as s:
        s.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert not re.search(r"\[ERROR\]", echo.log()), echo.log()


def test_the_docs_list_every_deviation_with_its_reason():
    doc = (Path(__file__).parents[2] / "docs" / "http-conformance.md").read_text()
    table = doc.split("<!-- deviations:", 1)[1].split("<!-- end of deviations -->", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(DEVIATIONS)
    for row in rows:
        name = row.split("`", 2)[1]
        assert name in DEVIATIONS, name
        assert DEVIATIONS[name][1].replace("|", "\\|") in row, name
    assert f"{len(CASES)} cases, {len(CASES) - len(DEVIATIONS)} with the corpus" in doc
