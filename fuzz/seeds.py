"""Writes the seed inputs of each fuzz target into fuzz/corpus/<target>/seed-*.

Seeds are what real traffic and configs look like (the HTTP request corpora of gunicorn and
llhttp, the ini files in the repository, nginx's uwsgi packets); libFuzzer grows the corpora
from them with inputs named by their hash. Run from the repository root: python3 fuzz/seeds.py
"""

import base64
import hashlib
import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"


def write(target: str, items: list[bytes]) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*"):
        old.unlink()
    for data in items:
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        (folder / name).write_bytes(data)


def requests() -> list[bytes]:
    out = []
    for corpus in ("gunicorn", "llhttp"):
        data = json.loads((ROOT / "tests" / "conformance" / f"{corpus}-requests.json").read_text())
        out += [base64.b64decode(case["raw_request_base64"]) for case in data["cases"]]
    return out


def packet(variables: list[tuple[str, str]], modifier1: int = 0) -> bytes:
    data = b""
    for key, value in variables:
        for s in (key.encode("latin-1"), value.encode("latin-1")):
            data += struct.pack("<H", len(s)) + s
    return struct.pack("<BHB", modifier1, len(data), 0) + data


NGINX = [
    ("QUERY_STRING", "a=1"),
    ("REQUEST_METHOD", "POST"),
    ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
    ("CONTENT_LENGTH", "11"),
    ("REQUEST_URI", "/app/login/?a=1"),
    ("PATH_INFO", "/app/login/"),
    ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "https"),
    ("HTTPS", "on"),
    ("REMOTE_ADDR", "203.0.113.9"),
    ("REMOTE_PORT", "41000"),
    ("SERVER_PORT", "443"),
    ("SERVER_NAME", "example.com"),
    ("SCRIPT_NAME", "/app"),
    ("HTTP_HOST", "example.com"),
    ("HTTP_COOKIE", "csrftoken=abc; sessionid=def"),
    ("HTTP_X_FORWARDED_FOR", "10.0.0.1"),
    ("HTTP_TRANSFER_ENCODING", "chunked"),
]

ini_files = [p.read_bytes() for p in ROOT.glob("examples/**/*.ini")]
ini_files += [
    b"[uwsgi]\nhttp = :8000\nmodule = mysite.wsgi\nhome = /srv/venv  # the virtualenv\n",
    b"[uwsgi]\nbase = /srv/site\nchdir = %(base)\nstatic-map = /static=%(base)/static\n",
    b"[uwsgi]\nsocket = $(SOCK)\nenv = A=%d\nlogto = %n.log\n; comment\n# comment\nmaster\n",
    b"[other]\nx = 1\n[uwsgi]\nprocesses = 4\nthreads = 2\n",
    b"no section = here\nvacuum = true\n",
    b"[uwsgi]\nkey = %(missing\nother = $(UNCLOSED\n",
]
write("ini", ini_files)

write(
    "uwsgi",
    [
        packet(NGINX),
        packet(NGINX, modifier1=30),
        packet([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/a b/\xe9"), ("QUERY_STRING", "q=1")]),
        packet([("REQUEST_METHOD", "GET"), ("HTTP_X", "a\r\nb")]),
        packet([("PATH_INFO", "/")]),
        packet(NGINX) + b"hello world",
        struct.pack("<BHB", 0, 4, 0) + b"\x09\x00AB",
        b"\x00\x00\x00\x00",
    ],
)


def sized(length: int, header: bytes) -> bytes:
    return struct.pack("<Q", length) + header


write(
    "range",
    [
        sized(1000, b"bytes=0-499"),
        sized(1000, b"bytes=500-"),
        sized(1000, b"bytes=-200"),
        sized(1000, b"bytes=0-0,-1"),
        sized(1000, b"bytes=0-10,5-20,100-200,150-160"),
        sized(1000, b"bytes=2000-3000"),
        sized(0, b"bytes=0-"),
        sized(1000, b"items=0-5"),
        sized(10**12, b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(40))),
        # The edge of u64 (and past it): a last position of 2^64-1 once overflowed `l + 1`.
        sized(1000, b"bytes=1-18446744073709551615"),
        sized(2**40 - 1, b"bytes=0-18446744073709551615"),
        sized(1000, b"bytes=1-18446744073709551616"),
        sized(1000, b"bytes=18446744073709551615-18446744073709551615"),
        sized(1000, b"bytes=18446744073709551614-"),
        sized(1000, b"bytes=-18446744073709551615"),
        sized(1000, b"bytes=0-0,2-18446744073709551615"),
        sized(2**64 - 1, b"bytes=9-18446744073709551615"),
    ],
)

write(
    "accept_encoding",
    [
        bytes([200, 90, 95, 120]) + b"gzip, deflate, br, zstd",
        bytes([200, 90, 95, 120]) + b"br;q=0, gzip;q=0.5",
        bytes([200, 90, 95, 120]) + b"*;q=0, identity",
        bytes([50, 90, 95, 120]) + b"gzip",
        bytes([200, 90, 95, 120]) + b"x-gzip, *;q=0.1",
        bytes([200, 90, 95, 120]) + b"identity;q=0",
        bytes([200, 90, 95, 120]) + b"GZIP;Q=1.0, br;q=NaN",
    ],
)

write(
    "static_path",
    [
        b"\x00css/app.3f2a9c1b7e4d.css",
        b"\x00docs/",
        b"\x00../etc/passwd",
        b"\x00%2e%2e/%2e%2e/etc/passwd",
        b"\x00a%2fb",
        b"\x00a\\b",
        b"\x00.env",
        b"\x01.well-known/x",
        b"\x00a%00b",
        b"\x00caf%C3%A9.txt",
        b"\x00" + b"a/" * 3000,
    ],
)

V2 = b"\r\n\r\n\x00\r\nQUIT\n"
write(
    "proxy",
    [
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n\r\n",
        b"PROXY TCP6 2001:db8::1 ::1 40000 443\r\n",
        b"PROXY UNKNOWN\r\n",
        b"PROXY TCP4 192.168.0.1 192.16...\r\n",
        V2 + b"\x21\x11\x00\x0c\xc0\xa8\x01\x0a\xc0\xa8\x01\x01\x30\x39\x01\xbbGET /",
        V2 + b"\x21\x21\x00\x24" + bytes(16) + bytes(16) + b"\x00\x50\x01\xbb",
        V2 + b"\x20\x00\x00\x00",
        V2 + b"\x21\x11\x00\x11" + bytes(12) + b"\x04\x00\x01x",
        b"GET / HTTP/1.1\r\n\r\n",
    ],
)

http = requests()
write("framing", [bytes([i % 17]) + r for i, r in enumerate(http)])
# The tracker against hyper: the requests whole, and the disagreements it is there to catch.
CHUNKED = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
write(
    "framing_hyper",
    http
    + [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc" + NEXT,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc" + NEXT,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        + NEXT,
        CHUNKED + b"0\r\nA: b\nGET /x HTTP/1.1\r\nHost: y\r\n\r\n" + NEXT,
        CHUNKED + b"3;\x01\r\nabc\r\n0\r\n\r\n" + NEXT,
        CHUNKED + b"2;\r\nab\r\n0\r\n\r\n" + NEXT,
        CHUNKED + b"3\nabc\r\n0\r\n\r\n" + NEXT,
        CHUNKED + b"3\r\nabc\n0\r\n\r\n" + NEXT,
        CHUNKED + b'3 ;a="q\\"" ; b\r\nabc\r\n0\r\nT: 1\r\n\r\n' + NEXT,
        b"GET / HTTP/1.1\r\nHost: x\r\nDummy: x\nContent-Length: 5\r\n\r\nhello" + NEXT,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"0\r\n\r\n"
        + NEXT,
    ],
)
# The own HTTP/1 path's reader: the requests, and small bodies at the edges it decides on.
write(
    "h1_head",
    http
    + [
        b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + NEXT,
        b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel",
        b"DELETE /f HTTP/1.1\r\nHost: x\r\nContent-Length:  0 \r\n\r\n" + NEXT,
        b"PATCH /f HTTP/1.0\r\nContent-Length: 16384\r\n\r\n" + b"b" * 16384,
        b"POST /f HTTP/1.1\r\nContent-Length: 16385\r\n\r\n" + b"b" * 16385,
        b"POST /f HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nab",
        b"GET /f HTTP/1.1\r\nContent-Length: 1\r\n\r\na",
    ],
)
write("environ", http)
print("seeds written to", CORPUS)
