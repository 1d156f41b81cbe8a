"""Static files from disk: headers, conditional requests, ranges, HEAD, methods, content types,
directories, precompressed variants, caching headers, the refusal of every path that could
escape a mount, and wsgi.file_wrapper sent by Rust. Real files made here, real clients (httpx,
curl, raw sockets for what clients would normalise)."""

import contextlib
import gzip
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import parse_responses, raw_exchange

CSS = "body { color: #123456; }\n" * 200
SECRET = "TOP SECRET: outside the mount"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    static = root / "static"
    (static / "docs").mkdir(parents=True)
    (static / "empty-dir").mkdir()
    (static / "css").mkdir()
    (static / "css" / "app.css").write_text(CSS)
    (static / "app.3f2a9c1b7e4d.css").write_text(CSS)
    (static / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (static / "script.js").write_text("console.log('hi');\n" * 50)
    (static / "font.woff2").write_bytes(b"wOF2" + b"\0" * 100)
    (static / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (static / "data.unknownext").write_bytes(b"???")
    (static / "docs" / "index.html").write_text("<h1>docs index</h1>")
    (static / ".env").write_text("PASSWORD=hunter2")
    (static / "big.bin").write_bytes(bytes(range(256)) * (12 * 1024))  # 3 MiB: not cached
    # Random bytes, so a byte sent from the wrong offset cannot go unnoticed; over 1 MiB, so
    # it goes out as several sendfile regions.
    (static / "random.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    (root / "secret.txt").write_text(SECRET)
    (static / "escape.txt").symlink_to(root / "secret.txt")
    (root / "shared").mkdir()
    (root / "shared" / "allowed.txt").write_text("shared through static-safe")
    (static / "shared-link.txt").symlink_to(root / "shared" / "allowed.txt")
    (root / "media").mkdir()
    (root / "media" / "photo.png").write_bytes(b"\x89PNG-media")
    (root / "favicon.ico").write_bytes(b"\0\0\1\0favicon")
    # The real subcommand writes .br and .gz siblings.
    out = subprocess.run(
        [sys.executable, "-m", "dragoman", "compress", str(static)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "compressed file(s) written" in out.stdout
    return root


@pytest.fixture(scope="module")
def server(tree, tmp_path_factory):
    from conftest import APPS, DRAGOMAN, Server, _env

    log = tmp_path_factory.mktemp("static-log") / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *DRAGOMAN,
                "--http",
                "127.0.0.1:0",
                "rules:application",
                "--static-map",
                f"/static={tree}/static",
                "--static-map",
                f"/media={tree}/media",
                "--static-map",
                f"/favicon.ico={tree}/favicon.ico",
                "--static-index",
                "index.html",
                "--static-safe",
                f"{tree}/shared",
                "--static-expires-uri",
                r"^/media/.*\.png 600",
            ],
            cwd=APPS,
            env=_env(None),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    s = Server(proc, log)
    s.wait_ready()
    yield s
    s.stop()


def get(server, path, headers=None, **kw):
    """A GET that asks for the file as it is on disk, unless the test names an encoding
    (httpx would otherwise accept br and gzip, and dragoman would send those)."""
    return httpx.get(
        f"{server.url}{path}", headers={"Accept-Encoding": "identity", **(headers or {})}, **kw
    )


def test_a_file_with_its_headers(server, tree):
    r = get(server, "/static/css/app.css")
    assert r.status_code == 200
    assert r.text == CSS
    assert r.headers["content-type"] == "text/css; charset=utf-8"
    assert r.headers["content-length"] == str(len(CSS))
    assert r.headers["accept-ranges"] == "bytes"
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', r.headers["etag"])
    mtime = (tree / "static" / "css" / "app.css").stat().st_mtime
    assert r.headers["last-modified"] == time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime)
    )
    assert r.headers["server"].startswith("dragoman/")


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("script.js", "text/javascript; charset=utf-8"),
        ("logo.png", "image/png"),
        ("font.woff2", "font/woff2"),
        ("icon.svg", "image/svg+xml"),
        ("docs/index.html", "text/html; charset=utf-8"),
        ("data.unknownext", "application/octet-stream"),
    ],
)
def test_content_types(server, name, content_type):
    r = get(server, f"/static/{name}")
    assert r.status_code == 200 and r.headers["content-type"] == content_type


def test_conditional_requests_give_304(server):
    r = get(server, "/static/css/app.css")
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f"W/{etag}"},
        {"If-None-Match": f'"nope", {etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
    ):
        r304 = get(server, "/static/css/app.css", headers=headers)
        assert r304.status_code == 304, headers
        assert r304.content == b"" and r304.headers["etag"] == etag
    assert (
        get(server, "/static/css/app.css", headers={"If-None-Match": '"other"'}).status_code == 200
    )
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert get(server, "/static/css/app.css", headers={"If-Modified-Since": old}).status_code == 200
    # If-None-Match wins over If-Modified-Since.
    both = {"If-None-Match": '"other"', "If-Modified-Since": modified}
    assert get(server, "/static/css/app.css", headers=both).status_code == 200


@pytest.mark.parametrize(
    "path", ["/static/css/app.css", "/static/big.bin"], ids=["cached", "from-disk"]
)
def test_ranges(server, path):
    full = get(server, path).content
    n = len(full)
    r = get(server, path, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == full[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{n}"
    assert r.headers["content-length"] == "10"
    assert get(server, path, headers={"Range": "bytes=-5"}).content == full[-5:]
    assert get(server, path, headers={"Range": f"bytes={n - 3}-"}).content == full[-3:]
    r = get(server, path, headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{n}"
    # If-Range: honoured only while the validator matches.
    etag = get(server, path).headers["etag"]
    assert get(server, path, headers={"Range": "bytes=0-0", "If-Range": etag}).status_code == 206
    r = get(server, path, headers={"Range": "bytes=0-0", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == full


def test_several_ranges_are_multipart_byteranges(server):
    full = get(server, "/static/big.bin").content
    r = get(server, "/static/big.bin", headers={"Range": "bytes=0-9, 1000-1019, -5"})
    assert r.status_code == 206
    boundary = re.fullmatch(
        r"multipart/byteranges; boundary=(\S+)", r.headers["content-type"]
    ).group(1)
    parts = r.content.split(f"--{boundary}".encode())
    bodies = []
    for part in parts[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        assert b"Content-Range: bytes" in head and b"Content-Type: application/octet-stream" in head
        bodies.append(data[:-2] if data.endswith(b"\r\n") else data)
    assert bodies == [full[0:10], full[1000:1020], full[-5:]]
    assert parts[-1].startswith(b"--")
    assert int(r.headers["content-length"]) == len(r.content)


def test_curl_range_and_head(server):
    out = subprocess.run(
        ["curl", "-s", "-r", "0-3", f"{server.url}/static/css/app.css"],
        capture_output=True,
        check=True,
    )
    assert out.stdout == b"body"
    head = subprocess.run(
        ["curl", "-sI", f"{server.url}/static/logo.png"], capture_output=True, text=True, check=True
    ).stdout
    assert head.startswith("HTTP/1.1 200 OK")
    assert "content-type: image/png" in head.lower()
    assert f"content-length: {8 + 1024}" in head.lower()


def test_head_is_headers_only(server):
    get_headers = get(server, "/static/big.bin").headers
    data = raw_exchange(
        server.host,
        server.port,
        b"HEAD /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    head, after = parse_responses(data, methods=["HEAD", "GET"])
    assert head.status == 200 and head.body == b""
    for name in ("content-length", "content-type", "etag", "last-modified"):
        assert head.header(name) == get_headers[name]
    assert after.body.isdigit()


def test_other_methods_get_405_and_allow(server):
    r = httpx.post(f"{server.url}/static/css/app.css", content=b"x")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert httpx.delete(f"{server.url}/static/css/app.css").status_code == 405
    # A static path with no file behind it belongs to the application.
    r = httpx.post(f"{server.url}/static/no-such-file.css", content=b"x")
    assert r.status_code == 404 and r.text == "not found"


def test_missing_files_fall_through_to_the_app(server):
    r = get(server, "/static/missing.css")
    assert r.status_code == 404 and r.text == "not found"  # the rules app's own 404
    assert get(server, "/static/empty-dir/").text == "not found"


def test_directories_and_index(server):
    r = get(server, "/static/docs?x=1")
    assert r.status_code == 301 and r.headers["location"] == "/static/docs/?x=1"
    r = get(server, "/static/docs/")
    assert r.status_code == 200 and r.text == "<h1>docs index</h1>"


def test_single_file_mount_and_second_mount(server):
    assert get(server, "/favicon.ico").content == b"\0\0\1\0favicon"
    r = get(server, "/media/photo.png")
    assert r.content == b"\x89PNG-media"
    assert r.headers["cache-control"] == "public, max-age=600"
    expires = time.mktime(time.strptime(r.headers["expires"], "%a, %d %b %Y %H:%M:%S GMT"))
    assert 590 <= expires - time.mktime(time.gmtime()) <= 610


def test_hashed_names_are_immutable_others_not(server):
    r = get(server, "/static/app.3f2a9c1b7e4d.css")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "cache-control" not in get(server, "/static/css/app.css").headers


def test_precompressed_variants(server, tree):
    plain = get(server, "/static/css/app.css", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    gz = httpx.get(f"{server.url}/static/css/app.css", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"
    assert gz.text == CSS  # httpx decodes it
    raw_gz = (tree / "static" / "css" / "app.css.gz").read_bytes()
    assert gzip.decompress(raw_gz).decode() == CSS
    assert int(gz.headers["content-length"]) == len(raw_gz)
    br = get(server, "/static/css/app.css", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert br.headers["content-encoding"] == "br"  # the smallest acceptable
    assert (
        int(br.headers["content-length"]) == (tree / "static" / "css" / "app.css.br").stat().st_size
    )
    tags = {plain.headers["etag"], gz.headers["etag"], br.headers["etag"]}
    assert len(tags) == 3
    no_br = get(server, "/static/css/app.css", headers={"Accept-Encoding": "br;q=0, gzip;q=0.5"})
    assert no_br.headers["content-encoding"] == "gzip"
    # The variant's own tag validates the variant.
    assert (
        get(
            server,
            "/static/css/app.css",
            headers={"Accept-Encoding": "gzip", "If-None-Match": gz.headers["etag"]},
        ).status_code
        == 304
    )


def test_zstd_variant_is_chosen_when_smallest(tree, dragoman):
    """Any coding the manifest vouches for is served, the smallest acceptable first. (dragoman
    compress writes br and gz; a zstd variant recorded in the same format is served too.)"""
    d = tree / "zst"
    d.mkdir(exist_ok=True)
    files = {"x.txt": b"x" * 1000, "x.txt.gz": b"g" * 50, "x.txt.zst": b"z" * 20}
    for name, data in files.items():
        (d / name).write_bytes(data)

    def digest(data: bytes) -> str:
        return f"{len(data)} {hashlib.sha256(data).hexdigest()}"

    (d / ".dragoman-variants").write_text(
        "".join(
            f"x.txt {coding} {digest(files['x.txt'])} {digest(files['x.txt' + suffix])}\n"
            for coding, suffix in (("gzip", ".gz"), ("zstd", ".zst"))
        )
    )
    server = dragoman("rules:application", "--static-map", f"/z={d}")

    def raw_get(accept: str):
        # The sibling files are stand-ins, not real compressed data: read them undecoded.
        with httpx.stream("GET", f"{server.url}/z/x.txt", headers={"Accept-Encoding": accept}) as r:
            return r.headers["content-encoding"], b"".join(r.iter_raw())

    assert raw_get("gzip, zstd") == ("zstd", b"z" * 20)
    assert raw_get("gzip") == ("gzip", b"g" * 50)


TRAVERSALS = [
    b"/static/../secret.txt",
    b"/static/css/../../secret.txt",
    b"/static/%2e%2e/secret.txt",
    b"/static/%2E%2E/secret.txt",
    b"/static/.%2e/secret.txt",
    b"/static/%2e%2e%2fsecret.txt",
    b"/static/..%2fsecret.txt",
    b"/static/..%2Fsecret.txt",
    b"/static/..%5csecret.txt",
    b"/static/..%5Csecret.txt",
    b"/static/..\\secret.txt",
    b"/static/%00../secret.txt",
    b"/static/css%00.css",
    b"/static/escape.txt",
    b"/static/" + b"a/" * 2500 + b"x",
    b"/static/" + b"x" * 300,
    b"/static/.env",
    b"/static/%2eenv",
]


@pytest.mark.parametrize(
    "path", TRAVERSALS, ids=[p[:40].decode(errors="replace") for p in TRAVERSALS]
)
def test_paths_that_could_escape_are_refused(server, path):
    data = raw_exchange(server.host, server.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 404), data[:200]
    assert SECRET.encode() not in data and b"hunter2" not in data


def test_a_symlink_into_static_safe_is_served(server):
    assert get(server, "/static/shared-link.txt").text == "shared through static-safe"


def test_dotfiles_when_asked_for(tree, dragoman):
    server = dragoman(
        "rules:application", "--static-map", f"/static={tree}/static", "--static-dotfiles"
    )
    assert get(server, "/static/.env").text == "PASSWORD=hunter2"


def test_check_static_and_static_map2(tree, dragoman):
    public = tree / "public"
    (public / "robots").mkdir(parents=True, exist_ok=True)
    (public / "robots.txt").write_text("User-agent: *\n")
    server = dragoman(
        "rules:application", "--check-static", str(public), "--static-map2", f"/media={tree}"
    )
    assert get(server, "/robots.txt").text == "User-agent: *\n"
    assert get(server, "/pid").text.isdigit()  # everything else reaches the app
    assert get(server, "/media/photo.png").content == b"\x89PNG-media"  # from {tree}/media


def test_a_changed_file_is_served_within_a_second(tree, dragoman):
    d = tree / "changing"
    d.mkdir(exist_ok=True)
    (d / "v.txt").write_text("one")
    server = dragoman("rules:application", "--static-map", f"/c={d}")
    assert get(server, "/c/v.txt").text == "one"
    (d / "v.txt").write_text("two, longer")
    deadline = time.monotonic() + 5
    while get(server, "/c/v.txt").text != "two, longer":
        assert time.monotonic() < deadline, "the change was not noticed"
        time.sleep(0.1)


def open_files(pid: int) -> list[str]:
    fds = Path(f"/proc/{pid}/fd")
    out = []
    for fd in fds.iterdir():
        try:
            out.append(os.readlink(fd))
        except FileNotFoundError:
            pass
    return out


def test_a_large_file_is_opened_once_and_its_replacement_and_deletion_noticed(
    tree, dragoman, tmp_path
):
    """A file sent with sendfile keeps its descriptor in the cache: repeated requests open it
    once. A file renamed over it is served within a second; a deleted one falls through to the
    app and its descriptor is closed, so the disk space is not held."""
    d = tree / "kept"
    d.mkdir(exist_ok=True)
    first = os.urandom(64 * 1024)
    (d / "v.bin").write_bytes(first)
    server = dragoman("rules:application", "--static-map", f"/k={d}")
    (pid,) = server.worker_pids()
    trace = tmp_path / "trace"
    with strace(pid, "openat", trace), httpx.Client() as c:
        for _ in range(5):
            assert c.get(f"{server.url}/k/v.bin").content == first
    opens = [line for line in trace.read_text().splitlines() if "v.bin" in line]
    assert len(opens) == 1, opens

    second = os.urandom(70 * 1024)
    (d / "v.new").write_bytes(second)
    os.rename(d / "v.new", d / "v.bin")
    deadline = time.monotonic() + 5
    while (body := get(server, "/k/v.bin").content) != second:
        assert body == first, "neither the old file nor the new one"
        assert time.monotonic() < deadline, "the replacement was not noticed"
        time.sleep(0.1)

    os.unlink(d / "v.bin")
    deadline = time.monotonic() + 5
    while (r := get(server, "/k/v.bin")).status_code != 404:
        assert r.content == second
        assert time.monotonic() < deadline, "the deletion was not noticed"
        time.sleep(0.1)
    assert r.text == "not found"  # the app's 404
    held = [f for f in open_files(pid) if "v.bin" in f or "v.new" in f]
    assert held == [], held


def test_static_files_never_reach_python(server):
    before = int(get(server, "/closed").text)
    for _ in range(20):
        get(server, "/static/logo.png")
    assert int(get(server, "/closed").text) == before
    stats_before = get(server, "/pid").text
    assert stats_before.isdigit()


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("threads", [1, 4])
def test_file_wrapper_streams_a_gib_from_rust_and_frees_the_app(dragoman, tmp_path, threads):
    """Django's FileResponse path: the app returns wsgi.file_wrapper(file); Rust sends it.
    A 1 GiB download leaves the worker's peak RSS within 50 MB, and while it streams (the
    client is not reading), the app serves other requests even with one thread."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(1024 * 1024 * 1024)  # sparse: quick to make, real bytes to send
        f.seek(512 * 1024 * 1024)
        f.write(b"MIDDLE")
    server = dragoman("rules:application", "--threads", str(threads))
    (pid,) = server.worker_pids()
    get(server, "/pid")
    before = rss_peak_kib(pid)
    with (
        httpx.Client(timeout=60) as c,
        c.stream("GET", f"{server.url}/file-wrapper", params={"file": str(big)}) as r,
    ):
        assert r.headers["content-type"] == "application/octet-stream"
        stream = r.iter_raw(1024 * 1024)
        first = next(stream)
        received = len(first)
        # The download is paused; the application is free for the next request.
        started = time.monotonic()
        assert httpx.get(f"{server.url}/pid", timeout=10).text == str(pid)
        assert time.monotonic() - started < 2
        # The bytes around the marker at 512 MiB (they may straddle two chunks).
        mark = 512 * 1024 * 1024
        around = b""
        nonzero_elsewhere = any(first)
        for chunk in stream:
            lo, hi = max(mark - received, 0), min(mark + 6 - received, len(chunk))
            if lo < hi:
                around += chunk[lo:hi]
            elif any(chunk):
                nonzero_elsewhere = True
            received += len(chunk)
    assert received == 1024 * 1024 * 1024
    assert around == b"MIDDLE" and not nonzero_elsewhere
    grown = (rss_peak_kib(pid) - before) / 1024
    assert grown < 50, f"peak RSS grew by {grown:.0f} MiB during a 1 GiB download"
    deadline = time.monotonic() + 5
    while get(server, "/file-closed").text != "True":
        assert time.monotonic() < deadline, "close() was not called after the transfer"
        time.sleep(0.05)


def test_file_wrapper_over_a_non_file_is_iterated(dragoman, tmp_path):
    server = dragoman("rules:application")
    r = get(server, "/file-wrapper-bytesio")
    assert r.status_code == 200 and r.content == b"in memory " * 1000


def test_concurrent_clients_get_whole_files(server):
    full = get(server, "/static/big.bin").content
    results = []

    def fetch():
        with httpx.Client() as c:
            for _ in range(5):
                results.append(c.get(f"{server.url}/static/big.bin").content == full)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 30 and all(results)


def tracer_attached(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return line.split()[1] != "0"
    return False


@contextlib.contextmanager
def strace(pid: int, calls: str, out: Path) -> Iterator[None]:
    """Traces `calls` of the worker into `out` while the block runs (attached first)."""
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", f"trace={calls}", "-o", str(out), "-p", str(pid)]
    )
    try:
        deadline = time.monotonic() + 10
        while not tracer_attached(pid):
            assert time.monotonic() < deadline, "strace did not attach"
            time.sleep(0.05)
        yield
    finally:
        tracer.terminate()
        tracer.wait(10)


def test_large_files_go_out_with_sendfile(server, tree, tmp_path):
    """A file above the in-memory size goes from the page cache to the socket with sendfile
    (no copy through the worker's memory): strace on the worker sees the calls, and they
    carry exactly the file's bytes, which the client gets whole."""
    want = (tree / "static" / "random.bin").read_bytes()
    (pid,) = server.worker_pids()
    trace = tmp_path / "trace"
    with strace(pid, "sendfile", trace):
        assert get(server, "/static/random.bin").content == want
    text = trace.read_text()
    sent = [
        int(n) for n in re.findall(r"sendfile\(\d+, \d+, \[\d+\] => \[\d+\], \d+\) = (\d+)", text)
    ]
    assert sent, f"no sendfile call traced:\n{text[:2000]}"
    assert sum(sent) == len(want)


def test_pipelined_files_read_slowly_arrive_whole_and_in_order(server, tree):
    """One connection, requests pipelined: a large file, a small cached one, a range, a HEAD
    and a multipart range of the large one, read through a small receive buffer, slowly at
    first, so the server's writes block part-way, again and again. Every body is exact."""
    big = (tree / "static" / "random.bin").read_bytes()
    paths = [
        ("GET", "/static/random.bin", ""),
        ("GET", "/static/css/app.css", ""),
        ("GET", "/static/random.bin", "Range: bytes=1000-2000999\r\n"),
        ("HEAD", "/static/random.bin", ""),
        ("GET", "/static/random.bin", "Range: bytes=0-9, 3000000-3000099\r\n"),
        ("GET", "/static/random.bin", ""),
    ]
    data = b"".join(
        f"{m} {p} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n{extra}\r\n".encode()
        for m, p, extra in paths
    )
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect((host, int(port)))
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096 if len(chunks) < 300 else 1 << 20)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if len(chunks) < 300:
                time.sleep(0.002)
    responses = parse_responses(b"".join(chunks), [m for m, _, _ in paths])
    assert [r.status for r in responses] == [200, 200, 206, 200, 206, 200]
    assert responses[0].body == big and responses[5].body == big
    assert responses[1].body == CSS.encode()
    assert responses[2].body == big[1000:2001000]
    assert responses[3].body == b"" and responses[3].header("content-length") == str(len(big))
    assert big[0:10] in responses[4].body and big[3000000:3000100] in responses[4].body
    assert int(responses[4].header("content-length")) == len(responses[4].body)
