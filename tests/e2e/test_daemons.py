"""Commands the master runs beside the workers: attached daemons (attach-daemon,
smart-attach-daemon, attach-daemon2), cron jobs and hook-master-start. Real processes, real
signals: a daemon killed with -9 comes back, one that keeps dying backs off, their output is in
the log with their name, and they stop with the master; the master serves meanwhile."""

import os
import re
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import APPS

PY = sys.executable
TICKER = str(APPS / "daemon_ticker.py")


def wait_until(predicate, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def started_pids(server, name: str) -> list[int]:
    return [int(p) for p in re.findall(rf"ticker {name} started pid (\d+)", server.log())]


def test_attach_daemon_output_restart_after_kill_9_and_stop_with_the_master(dragoman):
    server = dragoman("master_app:application", "--attach-daemon", f"{PY} {TICKER} one")
    first = wait_until(lambda: started_pids(server, "one"), message="the daemon")[0]
    # Its stdout and stderr are in the log, each line with the daemon's name and pid.
    server.wait_for_log(rf"python daemon_ticker.py one\[{first}\]: ticker one tick 2")
    server.wait_for_log(rf"python daemon_ticker.py one\[{first}\]: ticker one stderr 2")
    assert httpx.get(server.url).status_code == 200
    os.kill(first, signal.SIGKILL)
    second = wait_until(
        lambda: [p for p in started_pids(server, "one") if p != first], message="a new daemon"
    )[0]
    assert re.search(rf"daemon .*one.* \(pid {first}\) was killed by SIGKILL", server.log())
    assert alive(second) and not alive(first)
    assert server.stop() == 0
    # Stopped with the master: SIGTERM, which the daemon says it got.
    assert not alive(second)
    assert "ticker one got SIGTERM" in server.log()


def test_a_daemon_that_keeps_dying_backs_off_and_the_master_serves_meanwhile(dragoman):
    server = dragoman(
        "master_app:application",
        "--attach-daemon",
        f"{PY} {TICKER} crash --ticks 1 --exit 3",
    )
    wait_until(lambda: len(started_pids(server, "crash")) >= 4, timeout=30, message="4 starts")
    text = server.log()
    assert "exited with code 3" in text
    delays = [int(d) for d in re.findall(r"exited with code 3; restarting in (\d+)s", text)]
    # 1 s, then doubling: the waits grow.
    assert delays[:3] == [1, 2, 4], delays
    t0 = time.monotonic()
    assert httpx.get(server.url, timeout=5).status_code == 200
    assert time.monotonic() - t0 < 1


def test_smart_attach_daemon_follows_its_pidfile_and_survives_the_master(dragoman, tmp_path):
    pidfile = tmp_path / "ticker.pid"
    command = f"{pidfile} {PY} {TICKER} smart --daemonize {pidfile}"
    server = dragoman("master_app:application", "--smart-attach-daemon", command)
    first = wait_until(lambda: pidfile.exists() and int(pidfile.read_text()), message="pidfile")
    wait_until(lambda: started_pids(server, "smart"), message="the smart daemon")
    # The master checks the pidfile once a second: it finds the daemon running.
    server.wait_for_log(rf"daemon .*smart.*: running, pid {first}")
    os.kill(first, signal.SIGKILL)
    second = wait_until(
        lambda: pidfile.exists() and int(pidfile.read_text()) != first and int(pidfile.read_text()),
        message="a new smart daemon",
    )
    try:
        assert alive(second)
        assert server.stop() == 0
        # A smart daemon outlives the master (as in uWSGI: memcached, a database).
        time.sleep(0.5)
        assert alive(second)
        # A new master adopts it instead of starting a second one.
        again = dragoman("master_app:application", "--smart-attach-daemon", command)
        again.wait_for_log(rf"found it running \(pid {second}\)")
        time.sleep(1.5)
        assert started_pids(again, "smart") == []
    finally:
        os.kill(second, signal.SIGKILL)


def test_attach_daemon2_keys(dragoman, tmp_path):
    record = tmp_path / "record"
    record.mkdir()
    touched = tmp_path / "restart-me"
    touched.write_text("")
    server = dragoman(
        "master_app:application",
        "--attach-daemon2",
        f"cmd={PY} {TICKER} keys,name=ticker-keys,stopsignal=2,touch={touched}",
        env={"TICKER_RECORD": str(record)},
    )
    first = wait_until(lambda: started_pids(server, "keys"), message="the daemon")[0]
    server.wait_for_log(rf"ticker-keys\[{first}\]: ticker keys tick 1")
    # touch: restarted with its stop signal (2, SIGINT).
    time.sleep(1.1)
    touched.write_text("x")
    second = wait_until(
        lambda: [p for p in started_pids(server, "keys") if p != first], message="a restart"
    )[0]
    assert (record / f"keys.{first}.signal").read_text() == "SIGINT"
    assert server.stop() == 0
    assert (record / f"keys.{second}.signal").read_text() == "SIGINT"
    assert not alive(second)


def test_reload_restarts_plain_daemons_and_signals_those_with_a_reload_signal(dragoman, tmp_path):
    server = dragoman(
        "master_app:application",
        "--attach-daemon",
        f"{PY} {TICKER} plain",
        "--attach-daemon2",
        f"cmd={PY} {TICKER} hup --keep-on-hup,reloadsignal=1",
    )
    plain = wait_until(lambda: started_pids(server, "plain"), message="plain")[0]
    hup = wait_until(lambda: started_pids(server, "hup"), message="hup")[0]
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload finished" in server.log(), message="the reload")
    new_plain = wait_until(
        lambda: [p for p in started_pids(server, "plain") if p != plain], message="plain restart"
    )[0]
    server.wait_for_log("ticker hup got SIGHUP")
    assert started_pids(server, "hup") == [hup] and alive(hup)
    assert alive(new_plain) and not alive(plain)


def test_a_control_daemon_that_dies_stops_the_master(dragoman):
    server = dragoman(
        "master_app:application",
        "--attach-daemon2",
        f"cmd={PY} {TICKER} control --ticks 3 --exit 1,control=true",
    )
    code = server.proc.wait(30)
    assert code == 1, server.log()
    assert re.search(r"control daemon .* exited with code 1", server.log()), server.log()


def test_attach_daemon2_without_a_command_is_refused(dragoman):
    server = dragoman("echo:application", "--attach-daemon2", "pidfile=/tmp/x.pid", wait=False)
    assert server.proc.wait(30) == 2
    assert "attach-daemon2" in server.log() and "cmd=" in server.log(), server.log()


def test_cron_runs_from_the_master_at_matching_times_only(dragoman):
    # The wildcard form runs in the current minute; a minute half an hour away does not.
    away = (time.localtime().tm_min + 30) % 60
    server = dragoman(
        "master_app:application",
        "--cron",
        "-1 -1 -1 -1 -1 echo cron-every-minute; sleep 30",
        "--cron",
        f"{away} -1 -1 -1 -1 echo cron-not-now",
        "--unique-cron",
        "-1 -1 -1 -1 -1 echo unique-cron-ran",
    )
    server.wait_for_log(r"\[\d+\]: cron-every-minute")
    server.wait_for_log(r"\[\d+\]: unique-cron-ran")
    # The job sleeps on; the master does not wait for it.
    t0 = time.monotonic()
    assert httpx.get(server.url, timeout=5).status_code == 200
    assert time.monotonic() - t0 < 1
    time.sleep(1)
    assert "cron-not-now" not in server.log()
    assert server.stop() == 0


def test_hook_master_start_exec(dragoman, tmp_path):
    mark = tmp_path / "hooked"
    server = dragoman(
        "master_app:application",
        "--hook-master-start",
        f"exec:echo hook-said-hello; touch {mark}",
    )
    wait_until(mark.exists, message="the hook's file")
    server.wait_for_log(r"\[\d+\]: hook-said-hello")


def test_a_failing_hook_master_start_stops_dragoman(dragoman):
    server = dragoman("master_app:application", "--hook-master-start", "exec:exit 4", wait=False)
    assert server.proc.wait(30) == 1, server.log()
    assert "hook-master-start" in server.log() and "exited with code 4" in server.log()


def test_hook_master_start_forms_dragoman_does_not_run_are_refused(dragoman):
    server = dragoman(
        "echo:application", "--hook-master-start", "mkdir:/tmp/dragoman-x", wait=False
    )
    assert server.proc.wait(30) == 2
    text = server.log()
    assert "hook-master-start" in text and "mkdir" in text and "exec:" in text, text


def test_unix_signal_hook_makes_sigquit_graceful(dragoman, tmp_path):
    server = dragoman(
        "master_app:application",
        "--hook-master-start",
        "unix_signal:3 gracefully_kill_them_all",
    )
    import threading

    result = {}

    def slow():
        result["r"] = httpx.get(server.url + "/sleep?t=2", timeout=10)

    t = threading.Thread(target=slow)
    t.start()
    server.wait_for_log("app: /sleep started")
    server.proc.send_signal(signal.SIGQUIT)
    t.join(15)
    assert result["r"].status_code == 200
    assert server.proc.wait(15) == 0


@pytest.mark.parametrize("signum", ["15", "2"])
def test_unix_signal_hook_for_what_dragoman_already_does_is_accepted(dragoman, signum):
    server = dragoman(
        "echo:application", "--hook-master-start", f"unix_signal:{signum} gracefully_kill_them_all"
    )
    assert "hook-master-start" in server.log()
    assert server.stop() == 0


def test_daemons_run_with_the_virtualenv_first_on_path(dragoman, tmp_path):
    out = tmp_path / "which"
    server = dragoman(
        "master_app:application",
        "--attach-daemon2",
        f"cmd=command -v python > {out}; sleep 60,name=which",
        env={"PATH": "/usr/bin:/bin"},
    )
    wait_until(lambda: out.exists() and out.read_text().strip(), message="the daemon's output")
    assert Path(out.read_text().strip()).parent == Path(PY).parent
    server.stop()
