"""pgo/train.py, the traffic the release build is profiled on (pgo/build.py): it must still
drive the server it trains, every scenario answered as it checks, and stop it cleanly, or the
profile-guided build of `make run` and `make bench` fails."""

import subprocess
import sys

from conftest import REPO

SCENARIOS = [
    "GET / (one connection)",
    "GET / (many connections)",
    "GET / (a browser's head)",
    "HEAD /",
    "GET / HTTP/1.0",
    "GET /, Connection: close",
    "POST /echo (4 KiB JSON)",
    "POST /echo (chunked)",
    "GET /stream (1 MiB)",
    "GET /static/small.css",
    "GET /static/large.js",
    "GET /static/large.js (gzip)",
    "GET /static/small.css (If-None-Match)",
    "GET /static/large.js (Range)",
    "GET / over the uwsgi protocol",
]


def test_the_training_run_drives_every_scenario_and_stops_cleanly():
    done = subprocess.run(
        [sys.executable, str(REPO / "pgo" / "train.py"), "--scale", "0.02"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for scenario in SCENARIOS:
        assert any(line.strip().startswith(f"{scenario}: ") for line in lines), (
            f"{scenario!r} missing from:\n{done.stdout}"
        )
    threaded = lines.index(next(line for line in lines if "--threads 2" in line))
    assert lines[threaded + 1].strip().startswith("GET /: ")
    assert "training done" in lines[-1]


def test_a_wrong_answer_fails_the_training_run(tmp_path):
    # The same driver against an app that answers GET / with another body: the run must stop
    # and say which answer was wrong, not train the build on errors.
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "hello.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '7')])\n"
        "    return [b'Goodbye']\n"
    )
    done = subprocess.run(
        [sys.executable, str(REPO / "pgo" / "train.py"), "--scale", "0.02", "--apps", str(apps)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "GET /: a body of 7 bytes that is not the expected 13" in done.stderr
