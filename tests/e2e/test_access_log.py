"""The access log and the logging options: a line per request (application, static file,
failed request) in dragoman's format, as JSON and in a uWSGI logformat taken from a real
uwsgi.ini; disable-logging and uWSGI's conditions; logto, req-logger, log-master, rotation and
reopening after logrotate renamed the file; the application's own output marked with its
worker. Real dragoman processes, real clients."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest
from conftest import APPS, REPO, raw_exchange

APP = "logging_app:application"
CORPUS = REPO / "tests" / "uwsgi-inis"
STAMP = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000\]"


def access_lines(text: str) -> list[str]:
    """dragoman's request lines: after the worker mark, an address and a quoted request."""
    return [
        line
        for line in text.splitlines()
        if re.match(rf'{STAMP} \[\d+\] \[worker \d+\] \S+ "', line)
    ]


def wait_until(check, timeout: float = 10.0, message: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{message} not met after {timeout}s")


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def wait_ready_in(server, path: Path, workers: int = 1, timeout: float = 30.0) -> None:
    """Readiness when the log goes to a file of its own (logto): the port comes from the
    stderr part (written before the log file takes over), the workers from the file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = read(path) + server.log()
        if len(re.findall(r"worker \d+ \(pid \d+\) ready", text)) >= workers:
            server.addresses = re.findall(r"listening on http://(\S+)", text)
            return
        if server.proc.poll() is not None:
            raise AssertionError(f"dragoman exited:\n{server.log()}\n{read(path)}")
        time.sleep(0.05)
    raise AssertionError(f"not ready:\n{server.log()}\n{read(path)}")


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    root.mkdir()
    (root / "site.css").write_text("body { color: red }\n")
    return root


def test_a_line_per_request_app_static_and_failed(dragoman, static_dir):
    server = dragoman(APP, "--static-map", f"/static={static_dir}")
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/hello", params={"x": "1"}).text == "hello"
        assert c.get("/static/site.css").status_code == 200
        assert c.get("/static/missing.css").status_code == 200  # falls through to the app
        assert c.get("/boom").status_code == 500
        assert c.post("/status/404", content=b"abc").status_code == 404
        assert c.head("/hello").status_code == 200
    # A head hyper cannot parse is answered 400 by the server itself, and logged too.
    reply = raw_exchange(server.host, server.port, b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400"), reply
    worker = server.worker_pids()[0]
    lines = wait_until(
        lambda: (found := access_lines(server.log())) and len(found) >= 7 and found,
        message="seven request lines",
    )
    timing = r"bytes in \d+\.\d{3} ms"
    expected = [
        rf'"GET /hello\?x=1 HTTP/1\.1" 200 5 {timing}',
        rf'"GET /static/site.css HTTP/1\.1" 200 20 {timing}',
        rf'"GET /static/missing.css HTTP/1\.1" 200 5 {timing}',
        rf'"GET /boom HTTP/1\.1" 500 \d+ {timing}',
        rf'"POST /status/404 HTTP/1\.1" 404 13 {timing}',
        rf'"HEAD /hello HTTP/1\.1" 200 0 {timing}',
        rf'"- - HTTP/1\.1" 400 0 {timing}',
    ]
    for line, tail in zip(lines, expected):
        assert re.fullmatch(rf"{STAMP} \[{worker}\] \[worker 1\] 127\.0\.0\.1 {tail}", line), (
            line,
            tail,
        )
    # The traceback of the 500 is in the same stream, marked with the worker too.
    assert re.search(
        rf"\[{worker}\] \[worker 1\] \[ERROR\] .*\n(.*\n)*.*boom, as asked", server.log()
    )


def test_json_lines(dragoman, static_dir):
    server = dragoman(APP, "--log-format", "json", "--static-map", f"/static={static_dir}")
    with httpx.Client(base_url=server.url) as c:
        c.get("/hello?a=%22q%22", headers={"Referer": 'http://ref.test/"x"', "User-Agent": "t/1"})
        c.get("/static/site.css")
        c.get("/boom")
    records = wait_until(
        lambda: (
            (found := [json.loads(x) for x in server.log().splitlines() if x.startswith("{")])
            and len(found) >= 3
            and found
        ),
        message="three JSON lines",
    )
    app, static, failed = records
    worker = server.worker_pids()[0]
    assert app["method"] == "GET" and app["uri"] == "/hello?a=%22q%22"
    assert (app["status"], app["size"], app["proto"]) == (200, 5, "HTTP/1.1")
    assert app["referer"] == 'http://ref.test/"x"' and app["uagent"] == "t/1"
    assert app["addr"] == "127.0.0.1" and app["host"] == f"127.0.0.1:{server.port}"
    assert (app["pid"], app["worker"]) == (worker, 1)
    assert isinstance(app["micros"], int) and app["msecs"] == app["micros"] // 1000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", app["time"])
    assert (static["uri"], static["status"], static["size"]) == ("/static/site.css", 200, 20)
    assert static["referer"] is None
    assert (failed["uri"], failed["status"]) == ("/boom", 500)


def corpus_log_format(name: str) -> str:
    """The log-format line of a corpus file, as the file has it."""
    for line in (CORPUS / name).read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("log-format", "logformat"):
            return value.strip()
    raise AssertionError(f"{name} has no log-format")


def test_a_uwsgi_logformat_from_a_real_ini_works_unchanged(dragoman, tmp_path):
    # NYPL-Simplified/library_registry's production image: Apache's combined format and more.
    fmt = corpus_log_format("NYPL-Simplified--library_registry--docker--uwsgi.ini")
    assert "%(referer)" in fmt and "%(ltime)" in fmt
    ini = tmp_path / "site.ini"
    ini.write_text(f"[uwsgi]\nmodule = {APP}\nlog-format = {fmt}\n")
    server = dragoman("--ini", str(ini))
    with httpx.Client(base_url=server.url) as c:
        c.get("/size/42?q=1", headers={"Referer": "http://a.test/", "User-Agent": "agent/2"})
        c.get("/status/503")
    line, second = wait_until(
        lambda: (
            (found := [x for x in server.log().splitlines() if x.startswith("127.0.0.1 - - [")])
            and len(found) >= 2
            and found
        ),
        message="the two uWSGI-format lines",
    )
    m = re.fullmatch(
        r"127\.0\.0\.1 - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
        r'"GET /size/42\?q=1 HTTP/1\.1" 200 (\d+) "http://a\.test/" "agent/2" '
        rf"host_hdr=127\.0\.0\.1:{server.port} req_time_elapsed=(\d+)",
        line,
    )
    assert m, line
    # %(size) is uWSGI's: the body and the head.
    assert int(m.group(2)) > 42 + 50, line
    # An absent header is `-`, as uWSGI writes it.
    assert re.fullmatch(
        r'.*"GET /status/503 HTTP/1\.1" 503 \d+ "-" "python-httpx/[\d.]+" .*', second
    )


def test_saleors_format_with_memory_figures(dragoman, tmp_path):
    fmt = corpus_log_format("saleor--saleor--saleor--wsgi--uwsgi.ini")
    ini = tmp_path / "site.ini"
    ini.write_text(f"[uwsgi]\nmodule = {APP}\nmemory-report = true\nlog-format = {fmt}\n")
    server = dragoman("--ini", str(ini))
    httpx.get(f"{server.url}/hello")
    worker = server.worker_pids()[0]
    m = server.wait_for_log(
        r'UWSGI uwsgi "GET /hello HTTP/1\.1" 200 (\d+) (\d+)ms '
        rf"\[PID:{worker}:Worker-1\] \[RSS:(\d+)MB\]"
    )
    assert 5 <= int(m.group(3)) < 4096, m.group(0)


def test_disable_logging_and_the_conditions_that_still_log(dragoman):
    quiet = dragoman(APP, "--disable-logging")
    httpx.get(f"{quiet.url}/hello")
    httpx.get(f"{quiet.url}/boom")
    time.sleep(0.5)  # past the flush interval: a line would be there
    assert access_lines(quiet.log()) == [], quiet.log()

    server = dragoman(
        APP, "--disable-logging", "--log-4xx", "--log-5xx", "--log-slow", "300", "--log-big", "5000"
    )
    with httpx.Client(base_url=server.url) as c:
        for path in ("/hello", "/status/302", "/slow/10", "/size/4999"):
            c.get(path)  # none of these is logged
        for path in ("/status/404", "/boom", "/slow/400", "/size/5000", "/status/410"):
            c.get(path)
    lines = wait_until(
        lambda: (found := access_lines(server.log())) and "/status/410" in found[-1] and found,
        message="the line of the last request",
    )
    logged = [re.search(r'"GET (\S+) ', line).group(1) for line in lines]
    assert logged == ["/status/404", "/boom", "/slow/400", "/size/5000", "/status/410"], lines


def test_static_files_can_be_left_out(dragoman, static_dir):
    server = dragoman(APP, "--static-map", f"/static={static_dir}", "--log-static=false")
    httpx.get(f"{server.url}/static/site.css")
    httpx.get(f"{server.url}/after")
    lines = wait_until(lambda: access_lines(server.log()), message="a line")
    assert len(lines) == 1 and '"GET /after ' in lines[0], lines


def test_the_applications_output_is_marked_with_its_worker(dragoman):
    server = dragoman(APP, "--processes", "2", workers=2)
    httpx.get(f"{server.url}/talk")
    pids = server.worker_pids()
    text = server.log()
    for said in ("printed by the application", "logged by the application"):
        m = server.wait_for_log(rf"{STAMP} \[(\d+)\] \[worker ([12])\] {said}\n")
        assert int(m.group(1)) in pids, text
    m = server.wait_for_log(
        rf"{STAMP} \[(\d+)\] \[worker ([12])\] \[ERROR\] written to wsgi\.errors\n"
    )
    assert int(m.group(1)) in pids


def test_x_forwarded_for_and_log_date(dragoman):
    server = dragoman(APP, "--log-x-forwarded-for", "--log-date", "%Y/%m/%d-%H:%M:%S")
    httpx.get(f"{server.url}/hello", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.2"})
    httpx.get(f"{server.url}/hello")
    server.wait_for_log(
        r'\[\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d\] \[\d+\] \[worker 1\] 203\.0\.113\.9, 10\.0\.0\.2 "GET /hello '
    )
    server.wait_for_log(
        r'\[\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d\] \[\d+\] \[worker 1\] 127\.0\.0\.1 "GET '
    )
    # Every line of the server log takes the date format, not only the request lines.
    assert re.search(
        r"\[\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d\] \[\d+\] \[INFO\] listening on", server.log()
    )


def uwsgi_packet(variables: dict[str, str]) -> bytes:
    data = b""
    for key, value in variables.items():
        for s in (key.encode("latin-1"), value.encode("latin-1")):
            data += struct.pack("<H", len(s)) + s
    return struct.pack("<BHB", 0, len(data), 0) + data


def test_uwsgi_requests_log_the_address_nginx_passed(dragoman):
    server = dragoman(
        APP,
        "--socket",
        "127.0.0.1:0",
        "--log-format",
        "%(addr) %(uri) %(var.HTTP_X_TEST) %(status)",
    )
    host, port = server.uwsgi_addresses[0].rsplit(":", 1)
    request = {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": "/via/nginx?z=1",
        "PATH_INFO": "/via/nginx",
        "QUERY_STRING": "z=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.7",
        "REMOTE_PORT": "4444",
        "HTTP_HOST": "a.test",
        "HTTP_X_TEST": "passed",
    }
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(uwsgi_packet(request))
        while s.recv(65536):
            pass
    server.wait_for_log(r"\n198\.51\.100\.7 /via/nginx\?z=1 passed 200\n")


def test_logto_takes_every_line_off_stderr(dragoman, tmp_path):
    log = tmp_path / "site.log"
    server = dragoman(APP, "--logto", str(log), wait=False)
    wait_ready_in(server, log)
    httpx.get(f"{server.url}/talk")
    wait_until(lambda: len(access_lines(read(log))) == 1, message="the request line in the file")
    text = read(log)
    assert "[worker 1] printed by the application" in text
    assert "[INFO] worker 1 (pid" in text
    assert access_lines(server.log()) == [] and "printed by" not in server.log()
    assert log.stat().st_mode & 0o777 == 0o640


def test_req_logger_splits_the_request_lines_off(dragoman, tmp_path):
    log, requests = tmp_path / "server.log", tmp_path / "requests.log"
    server = dragoman(APP, "--logto", str(log), "--req-logger", f"file:{requests}", wait=False)
    wait_ready_in(server, log)
    httpx.get(f"{server.url}/hello")
    wait_until(lambda: len(access_lines(read(requests))) == 1, message="the line in requests.log")
    assert access_lines(read(log)) == []
    assert "ready" in read(log) and "ready" not in read(requests)


def fd_target(pid: int, fd: int) -> str:
    return os.readlink(f"/proc/{pid}/fd/{fd}")


@pytest.mark.parametrize("master", [False, True], ids=["each-process", "log-master"])
def test_reopen_after_logrotate_renamed_the_file(dragoman, tmp_path, master):
    log = tmp_path / "site.log"
    extra = ["--log-master"] if master else []
    server = dragoman(APP, "--logto", str(log), "--processes", "2", *extra, wait=False)
    wait_ready_in(server, log, workers=2)
    with httpx.Client(base_url=server.url) as c:
        c.get("/before")
    wait_until(lambda: "/before" in read(log), message="the first line")
    rotated = tmp_path / "site.log.1"
    log.rename(rotated)
    os.kill(server.proc.pid, signal.SIGUSR1)
    wait_until(lambda: "SIGUSR1: reopened" in read(log), message="the master's reopen")
    if not master:
        # Each worker took the signal and writes to the new file.
        wait_until(
            lambda: all(fd_target(p, 2) == str(log) for p in server.worker_pids()),
            message="every worker's stderr on the new file",
        )
    for _ in range(20):
        httpx.get(f"{server.url}/after", headers={"Connection": "close"})
    httpx.get(f"{server.url}/talk")
    wait_until(
        lambda: len([x for x in access_lines(read(log)) if "/after" in x]) == 20,
        message="the 20 lines in the new file",
    )
    wait_until(lambda: "printed by the application" in read(log), message="print in the new file")
    assert "/after" not in read(rotated) and "/before" in read(rotated)
    assert server.stop() == 0


def test_log_maxsize_rotates_to_the_backup_name(dragoman, tmp_path):
    log, backup = tmp_path / "site.log", tmp_path / "site.log.old"
    server = dragoman(
        APP,
        "--logto",
        str(log),
        "--log-maxsize",
        "3000",
        "--log-backupname",
        str(backup),
        wait=False,
    )
    wait_ready_in(server, log)
    assert log.stat().st_size < 2000, read(log)
    long = "/long/" + "x" * 3000
    with httpx.Client(base_url=server.url) as c:
        c.get(long)  # its line takes the file past 3000 bytes: rotated after it
        wait_until(backup.exists, message="the rotation")
        for i in range(5):
            c.get(f"/after/{i}")
    wait_until(lambda: "/after/4 " in read(log), message="the last line")
    old, new = read(backup), read(log)
    assert f'"GET {long} HTTP/1.1" 200' in old and "ready" in old
    assert re.search(r"\[INFO\] logsize: \d+, triggering rotation to .*site\.log\.old\n$", old)
    assert [re.search(r'"GET (\S+) ', x).group(1) for x in access_lines(new)] == [
        f"/after/{i}" for i in range(5)
    ]
    assert server.stop() == 0


def test_logger_and_bad_loggers(dragoman, tmp_path):
    log = tmp_path / "via-logger.log"
    server = dragoman(
        APP,
        "--logger",
        f"file:{log}",
        "--logger",
        "syslog:myapp",
        "--req-logger",
        "python:x",
        wait=False,
    )
    wait_ready_in(server, log)
    httpx.get(f"{server.url}/hello")
    wait_until(lambda: len(access_lines(read(log))) == 1, message="the line in the logger's file")
    startup = server.log() + read(log)
    assert "the 'syslog' logger is not implemented in dragoman" in startup
    assert "the 'python' req-logger is not implemented in dragoman" in startup


def test_a_log_file_that_cannot_be_opened_stops_startup(tmp_path):
    from conftest import run_dragoman

    ini = tmp_path / "site.ini"
    ini.write_text(f"[uwsgi]\nmodule = {APP}\nlogto = {tmp_path}/missing/dir/site.log\n")
    out = run_dragoman("--ini", str(ini), cwd=APPS)
    assert out.returncode != 0
    assert f"{ini} line 3: cannot open logto's file {tmp_path}/missing/dir/site.log" in out.stderr
