"""`health-check = /healthz`: answered by dragoman before static files and the application;
503 while workers start, 200 once every worker accepts, 503 from SIGTERM on while the
listeners still accept for `shutdown-delay` (so a load balancer stops sending before they
close); `dragoman --health-check [URL]` asks once and exits 0 or 1."""

import shutil
import signal
import socket
import threading
import time

import httpx
from conftest import APPS, run_dragoman
from ops import wait_until


def health(server, path="/healthz", timeout=2.0):
    return httpx.get(f"{server.url}{path}", timeout=timeout)


def test_starting_then_ready_then_draining_before_the_listener_closes(dragoman, tmp_path):
    shutil.copy(APPS / "ops_app.py", tmp_path)
    shutil.copy(APPS / "slow_boot.py", tmp_path)
    # Each worker takes 2 s to import the app, and the first boots alone: while the second
    # imports, the first accepts and answers for the server.
    server = dragoman(
        "slow_boot:application",
        "--processes",
        "2",
        "--health-check",
        "/healthz",
        "--shutdown-delay",
        "3",
        cwd=tmp_path,
        env={"BOOT_SECONDS": "2"},
        wait=False,
    )
    server.wait_ready(workers=1, timeout=30)
    answers = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = health(server)
        answers.append((r.status_code, r.text))
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert answers[0] == (503, "starting\n"), answers[:3]
    assert answers[-1] == (200, "ok\n"), answers[-3:]
    assert "all 2 worker(s) ready" in server.log()
    r = health(server)
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-type"].startswith("text/plain")

    # SIGTERM: the health check fails at once, while new connections are still accepted and
    # served for the shutdown delay; only then do the listeners close.
    server.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    turned = wait_until(
        lambda: health(server).status_code == 503 and time.monotonic(), message="503"
    )
    r = health(server)
    assert (r.status_code, r.text) == (503, "draining\n")
    assert r.headers["connection"] == "close"
    served_after_turn = 0
    closed_at = None
    while time.monotonic() < sent + 20:
        try:
            with httpx.Client() as c:  # a new connection each time
                r = c.get(f"{server.url}/", timeout=2)
            assert r.status_code == 200
            served_after_turn += 1
        except httpx.TransportError:
            closed_at = time.monotonic()
            break
        time.sleep(0.1)
    assert closed_at is not None, "the listener never closed"
    assert served_after_turn >= 10, served_after_turn
    assert turned - sent < 1.0, "the health check turned late"
    assert closed_at - turned >= 2.5, (closed_at - turned, "the listeners closed too soon")
    assert server.proc.wait(20) == 0
    log = server.log()
    assert "the health check answers 503 from now on" in log
    assert "shutdown-delay is over: stopping gracefully" in log


def test_sigint_and_a_second_sigterm_do_not_wait(dragoman):
    args = ("ops_app:application", "--health-check", "/healthz", "--shutdown-delay", "60")
    server = dragoman(*args)
    assert health(server).status_code == 200
    server.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: health(server).status_code == 503, message="draining")
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    assert time.monotonic() - t0 < 10
    # SIGINT (a person at a terminal) stops at once; so does a server with no health check.
    server = dragoman(*args)
    t0 = time.monotonic()
    assert server.stop(signal.SIGINT) == 0
    assert time.monotonic() - t0 < 10
    server = dragoman("ops_app:application")
    t0 = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 10


def test_answered_before_static_files_and_the_application(dragoman, tmp_path):
    public = tmp_path / "public"
    public.mkdir()
    (public / "healthz").write_text("a file that must not be served\n")
    (public / "index.html").write_text("<h1>index</h1>\n")
    server = dragoman(
        "ops_app:application",
        "--check-static",
        str(public),
        "--health-check",
        "/healthz",
    )
    r = health(server)
    assert (r.status_code, r.text) == (200, "ok\n")
    assert health(server, "/healthz?verbose=1").status_code == 200
    head = httpx.head(f"{server.url}/healthz")
    assert head.status_code == 200 and head.content == b""
    post = httpx.post(f"{server.url}/healthz")
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    # Other paths are the static files' and the application's as before.
    assert httpx.get(f"{server.url}/index.html").text == "<h1>index</h1>\n"
    assert httpx.get(f"{server.url}/healthz/more").status_code == 404
    assert httpx.get(f"{server.url}/hello").text == "hello, world\n"


def test_the_one_shot_probe(dragoman, tmp_path):
    shutil.copy(APPS / "ops_app.py", tmp_path)
    server = dragoman(
        "ops_app:application",
        "--health-check",
        "/healthz",
        "--shutdown-delay",
        "30",
        cwd=tmp_path,
    )
    url = f"{server.url}/healthz"
    ok = run_dragoman("--health-check", url, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "200 OK" in ok.stdout
    # From the configuration: its first HTTP listener and its health-check path.
    ini = tmp_path / "site.ini"
    ini.write_text(
        f"[uwsgi]\nmodule = ops_app\nhttp = 0.0.0.0:{server.port}\nhealth-check = /healthz\n"
    )
    ok = run_dragoman("--health-check", "--ini", str(ini), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert f"http://127.0.0.1:{server.port}/healthz: HTTP/1.1 200 OK" in ok.stdout
    # A path that is not the health check: the application's 404.
    missing = run_dragoman("--health-check", f"{server.url}/nothing", cwd=tmp_path)
    assert missing.returncode == 1 and "404" in missing.stderr
    # Draining: 503, exit 1.
    server.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: health(server).status_code == 503, message="draining")
    draining = run_dragoman("--health-check", url, cwd=tmp_path)
    assert draining.returncode == 1
    assert "503 Service Unavailable" in draining.stderr
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(15)
    # Nothing listening.
    gone = run_dragoman("--health-check", url, cwd=tmp_path)
    assert gone.returncode == 1 and "refused" in gone.stderr.lower(), gone.stderr
    # A configuration with no health check says what to set.
    ini.write_text(f"[uwsgi]\nmodule = ops_app\nhttp = 127.0.0.1:{server.port}\n")
    unset = run_dragoman("--health-check", "--ini", str(ini), cwd=tmp_path)
    assert unset.returncode == 1
    assert "set `health-check = /healthz`" in unset.stderr


def test_a_probe_that_gets_no_answer_gives_up(tmp_path):
    # A listener that accepts and never answers: the probe times out and fails.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    held = []
    t = threading.Thread(target=lambda: held.append(listener.accept()), daemon=True)
    t.start()
    t0 = time.monotonic()
    r = run_dragoman("--health-check", f"http://127.0.0.1:{port}/healthz", timeout=30)
    assert r.returncode == 1
    assert 4 < time.monotonic() - t0 < 20
    listener.close()
