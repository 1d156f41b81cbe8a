"""Static files against hostile requests and hostile disks: Range numbers at the edge of u64,
request paths spelled many ways, files replaced behind the server's back with the same mtime
and size, dates outside what HTTP can carry, `//host` redirects, and a worker out of file
descriptors. Real dragoman processes, real files, real clients (httpx, raw sockets)."""

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from conftest import APPS, DRAGOMAN, Server, _env, parse_responses, raw_exchange

U64_MAX = 2**64 - 1


def get(server, path, headers=None, **kw):
    """A GET for the file as it is on disk (no precompressed variant)."""
    return httpx.get(
        f"{server.url}{path}", headers={"Accept-Encoding": "identity", **(headers or {})}, **kw
    )


def raw_get(server, target: bytes, headers: bytes = b"") -> list:
    data = raw_exchange(
        server.host,
        server.port,
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n"
        + headers
        + b"\r\n",
    )
    return parse_responses(data, ["GET"])


@pytest.mark.parametrize("size", [1000, 100_000], ids=["in-memory", "sendfile"])
def test_ranges_at_the_edge_of_u64(dragoman, tmp_path, size):
    """`bytes=1-18446744073709551615` is a range to the end of the file (RFC 9110 §14.1.2: a
    last position past the end means the end), never a panic or a bogus 206; the worker that
    answered keeps serving."""
    d = tmp_path / "r"
    d.mkdir()
    full = os.urandom(size)
    (d / "f.bin").write_bytes(full)
    server = dragoman("rules:application", "--static-map", f"/r={d}")
    (pid,) = server.worker_pids()
    assert get(server, "/r/f.bin").content == full  # cached now (in memory or its descriptor)
    for spec, start in (
        (f"bytes=1-{U64_MAX}", 1),
        (f"bytes=0-{U64_MAX}", 0),
        (f"bytes=1-{U64_MAX + 1}", 1),  # past u64 too: still "to the end"
        (f"bytes=-{U64_MAX}", 0),
        (f"bytes={size - 5}-{U64_MAX - 1}", size - 5),
    ):
        (r,) = raw_get(server, b"/r/f.bin", f"Range: {spec}\r\n".encode())
        assert r.status == 206, (spec, r)
        assert r.header("content-range") == f"bytes {start}-{size - 1}/{size}", spec
        assert r.body == full[start:], spec
    (r,) = raw_get(server, b"/r/f.bin", f"Range: bytes={U64_MAX}-{U64_MAX}\r\n".encode())
    assert r.status == 416 and r.header("content-range") == f"bytes */{size}"
    (r,) = raw_get(server, b"/r/f.bin", f"Range: bytes=0-0, 2-{U64_MAX}\r\n".encode())
    assert r.status == 206 and r.header("content-type").startswith("multipart/byteranges")
    assert full[2:] in r.body
    assert server.worker_pids() == [pid]
    assert "panicked" not in server.log()


@pytest.mark.parametrize("size", [1000, 100_000], ids=["in-memory", "sendfile"])
def test_a_replacement_with_the_same_mtime_and_size_is_noticed(dragoman, tmp_path, size):
    """What `rsync -a` does: the new file is written under a temporary name, given the old
    file's modification time, and renamed over it. Same mtime, same size: the new inode (and
    ctime) tell it apart. Served within a second, and the old file's descriptor is not kept."""
    d = tmp_path / "r"
    d.mkdir()
    old, new = os.urandom(size), os.urandom(size)
    target = d / "v.bin"
    target.write_bytes(old)
    server = dragoman("rules:application", "--static-map", f"/r={d}")
    (pid,) = server.worker_pids()
    with httpx.Client() as c:
        for _ in range(3):
            assert c.get(f"{server.url}/r/v.bin").content == old
    st = target.stat()
    tmp = d / ".v.bin.XXXX"
    tmp.write_bytes(new)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(tmp, target)
    assert target.stat().st_mtime_ns == st.st_mtime_ns and target.stat().st_size == size
    deadline = time.monotonic() + 5
    while (body := get(server, "/r/v.bin").content) != new:
        assert body == old, "neither the old file nor the new one"
        assert time.monotonic() < deadline, "the replacement was not noticed"
        time.sleep(0.1)
    deleted = [f for f in open_files(pid) if "v.bin" in f and "(deleted)" in f]
    assert deleted == [], deleted


def test_a_size_the_read_contradicts_is_not_trusted(dragoman):
    """The size fstat gives is not the truth when the read says otherwise: sysfs files say
    4096 bytes and hold a few (a file that shrank between the stat and the read looks the
    same), procfs files say 0 and hold more. Served with the bytes read, never a panic."""
    cpu, kernel = Path("/sys/devices/system/cpu"), Path("/proc/sys/kernel")
    assert (cpu / "online").stat().st_size == 4096 and (kernel / "ostype").stat().st_size == 0
    server = dragoman(
        "rules:application",
        "--static-map",
        f"/cpu={cpu}",
        "--static-map",
        f"/kernel={kernel}",
    )
    (pid,) = server.worker_pids()
    for url, path in (("/cpu/online", cpu / "online"), ("/kernel/ostype", kernel / "ostype")):
        want = path.read_bytes()
        for _ in range(2):
            r = get(server, url)
            assert r.status_code == 200 and r.content == want, (url, r)
            assert r.headers["content-length"] == str(len(want))
        (r,) = raw_get(server, url.encode(), b"Range: bytes=1-\r\n")
        assert r.status == 206 and r.body == want[1:], (url, r)
    assert server.worker_pids() == [pid]
    assert "panicked" not in server.log()


def open_files(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            out.append(os.readlink(fd))
    return out


def http_date(text: str) -> float:
    return parsedate_to_datetime(text).timestamp()


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A directory on tmpfs, which keeps 64-bit file times (ext4 stops at 2446)."""
    if not Path("/dev/shm").is_dir():
        pytest.fail("/dev/shm is needed for a file dated past year 9999")
    d = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="dragoman-test-"))
    yield d
    shutil.rmtree(d)


def test_dates_outside_what_http_can_carry(dragoman, tmp_path, shm_dir):
    """A file modified in year 11476 (tmpfs allows it), one from 1969, and a static-expires
    of more years than HTTP dates have: each is served, with dates an HTTP client can parse
    (RFC 9110 §8.8.2.1: a Last-Modified in the future is replaced by the time of the
    response), never a panic."""
    (shm_dir / "future.txt").write_text("from the future")
    os.utime(shm_dir / "future.txt", (300_000_000_000, 300_000_000_000))
    (shm_dir / "past.txt").write_text("from before the epoch")
    os.utime(shm_dir / "past.txt", (-1_000_000, -1_000_000))
    (shm_dir / "forever.txt").write_text("cached forever")
    (shm_dir / "longest.txt").write_text("cached longer than forever")
    server = dragoman(
        "rules:application",
        "--static-map",
        f"/d={shm_dir}",
        "--static-expires-uri",
        r"forever\.txt 400000000000",
        "--static-expires-uri",
        rf"longest\.txt {U64_MAX}",
    )
    (pid,) = server.worker_pids()
    for name, text in (
        ("future.txt", "from the future"),
        ("past.txt", "from before the epoch"),
        ("forever.txt", "cached forever"),
        ("longest.txt", "cached longer than forever"),
    ):
        r = get(server, f"/d/{name}")
        assert r.status_code == 200 and r.text == text, name
        assert http_date(r.headers["last-modified"]) <= http_date(r.headers["date"]) + 1, name
        if "expires" in r.headers:
            assert http_date(r.headers["expires"]) >= time.time(), name
    r = get(server, "/d/forever.txt")
    assert r.headers["expires"] == "Fri, 31 Dec 9999 23:59:59 GMT"
    assert r.headers["cache-control"] == "public, max-age=400000000000"
    # The dates a client saw validate: a 304, not a panic or a 200.
    for name in ("future.txt", "past.txt"):
        modified = get(server, f"/d/{name}").headers["last-modified"]
        assert get(server, f"/d/{name}", {"If-Modified-Since": modified}).status_code == 304
    assert server.worker_pids() == [pid]
    assert "panicked" not in server.log()


@pytest.mark.parametrize("mount", ["check-static", "static-map"])
def test_a_directory_redirect_never_leaves_the_site(dragoman, tmp_path, mount):
    """With a mount at `/` and static-index, `GET //evil.example` must not answer
    `Location: //evil.example/` (a protocol-relative URL: another site). The Location is
    built from the normalised path."""
    root = tmp_path / "root"
    (root / "evil.example").mkdir(parents=True)
    (root / "evil.example" / "index.html").write_text("<h1>a local directory</h1>")
    (root / "sub dir").mkdir()
    (root / "sub dir" / "index.html").write_text("<h1>sub</h1>")
    args = (
        ["--check-static", str(root)] if mount == "check-static" else ["--static-map", f"/={root}"]
    )
    server = dragoman("rules:application", *args, "--static-index", "index.html")
    for target, location in (
        (b"//evil.example", "/evil.example/"),
        (b"///evil.example", "/evil.example/"),
        (b"//evil.example?next=1", "/evil.example/?next=1"),
        (b"/evil.example", "/evil.example/"),
        (b"//sub%20dir", "/sub%20dir/"),
    ):
        (r,) = raw_get(server, target)
        assert r.status == 301, (target, r)
        assert r.header("location") == location, target
    r = get(server, "/evil.example", follow_redirects=True)
    assert r.status_code == 200 and r.text == "<h1>a local directory</h1>"


def test_one_path_spelled_many_ways_is_loaded_once(dragoman, tmp_path):
    """The cache is keyed by the resolved path, not the raw request path: `/s/x.css`,
    `/s//x.css` and `/s/%78.css` are one file, opened and read once (strace on the worker)."""
    from test_static import strace

    d = tmp_path / "s"
    d.mkdir()
    (d / "x.css").write_text("body{}\n" * 10)
    server = dragoman("rules:application", "--static-map", f"/s={d}")
    (pid,) = server.worker_pids()
    trace = tmp_path / "trace"
    with strace(pid, "openat,open,statx,stat,newfstatat", trace):
        for target in (b"/s/x.css", b"/s//x.css", b"/s/%78.css", b"/s///%78%2Ecss", b"/s/x.css"):
            (r,) = raw_get(server, target)
            assert r.status == 200 and r.body == b"body{}\n" * 10, target
    opens = [
        line for line in trace.read_text().splitlines() if re.search(r"\bopen(at)?\(.*x\.css", line)
    ]
    assert len(opens) == 1, opens


def start_with_nofile(tmp_path: Path, limit: int, *args: str) -> Server:
    """dragoman under RLIMIT_NOFILE = limit (soft and hard: raising the soft limit to the hard
    one at startup cannot take the test's point away)."""

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    log = tmp_path / "nofile.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*DRAGOMAN, "--http", "127.0.0.1:0", *args],
            cwd=APPS,
            env=_env(None),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lower,  # noqa: PLW1509 - only setrlimit, before exec
        )
    server = Server(proc, log)
    try:
        server.wait_ready()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise
    return server


def read_response(sock: socket.socket, deadline: float) -> bytes:
    """Reads one response with a Content-Length body (what these requests get)."""
    data = b""
    while time.monotonic() < deadline:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if m and len(rest) >= int(m.group(1)):
                return data
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def test_out_of_descriptors_is_503_never_404(tmp_path):
    """A worker out of file descriptors asked for a static file that exists answers 503 with
    Retry-After, never 404: a CDN would cache that. Once descriptors are free again the file
    is served. (Idle connections cannot exhaust a worker: max-connections is kept inside the
    descriptor limit. So the application takes them, as a leaky one would.)"""
    d = tmp_path / "s"
    d.mkdir()
    (d / "small.css").write_text("body{}\n" * 100)
    (d / "large.bin").write_bytes(os.urandom(100_000))
    server = start_with_nofile(tmp_path, 64, "rules:application", "--static-map", f"/s={d}")
    try:
        exhaust_and_fetch(server, d)
    finally:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(10)


def exhaust_and_fetch(server: Server, d: Path) -> None:
    # One keep-alive connection for everything: with no descriptor left, no new one can be
    # accepted.
    with socket.create_connection((server.host, server.port), timeout=5) as conn:

        def ask(target: str):
            conn.sendall(
                f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n".encode()
            )
            (r,) = parse_responses(read_response(conn, time.monotonic() + 10), ["GET"])
            return r

        assert int(ask("/hog").body) > 0
        for name in ("small.css", "large.bin"):
            r = ask(f"/s/{name}")
            assert r.status == 503, (name, r)
            assert r.header("retry-after") == "1", r
        assert ask("/unhog").body == b"released"
        assert ask("/s/small.css").body == (d / "small.css").read_bytes()
        assert ask("/s/large.bin").body == (d / "large.bin").read_bytes()
