"""`cheaper`: an adaptive worker count between a floor and `processes`, with uWSGI's default
(spare) algorithm: workers are added while all are busy for `cheaper-overload` cycles, and
removed, one every `cheaper-overload` cycles, while more than one idles."""

import re
import threading
import time

import httpx


def wait_until(predicate, timeout: float = 30.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def serving(server) -> int:
    return len(server.worker_pids())


class SlowLoad:
    """`clients` threads that each keep one slow request in flight, until stopped (bounded).
    A new connection for each request: a keep-alive connection stays with the worker that
    accepted it, and new workers would get none of this load."""

    def __init__(self, url: str, clients: int, seconds: float = 60):
        self.stop_at = time.monotonic() + seconds
        self.done = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(url,)) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, url: str) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.done.is_set() and time.monotonic() < self.stop_at:
                try:
                    r = client.get(url, headers={"Connection": "close"})
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append(str(r.status_code))
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))

    def stop(self) -> None:
        self.done.set()
        for t in self.threads:
            t.join(30)


def test_workers_are_added_under_load_and_removed_when_idle(dragoman):
    server = dragoman(
        "master_app:application",
        "--processes",
        "4",
        "--cheaper",
        "1",
        "--cheaper-overload",
        "1",
        "--cheaper-step",
        "1",
    )
    # Only the floor starts (cheaper-initial defaults to cheaper).
    time.sleep(1.5)
    assert serving(server) == 1, server.log()
    assert "worker 2" not in server.log()
    load = SlowLoad(server.url + "/sleep?t=0.3", clients=6)
    try:
        wait_until(lambda: serving(server) == 4, message="4 workers under load")
        text = server.log()
        assert re.search(r"cheaper: all \d worker\(s\) busy", text), text
        # Never more than processes.
        time.sleep(2)
        assert serving(server) == 4
    finally:
        load.stop()
    assert load.failed == [], load.failed[:5]
    # Idle: one worker less per cycle, down to the floor.
    wait_until(lambda: serving(server) == 1, message="back to 1 worker")
    assert len(re.findall(r"cheaper: .*stopping worker \d", server.log())) >= 3
    assert httpx.get(server.url).status_code == 200


def test_cheaper_initial_and_spare_state(dragoman):
    server = dragoman(
        "master_app:application",
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-initial",
        "3",
        "--cheaper-overload",
        "2",
        workers=3,
    )
    assert serving(server) == 3
    # Idle, one removal every 2 cycles: 3 -> 1 takes about 4 s, not 2.
    t0 = time.monotonic()
    wait_until(lambda: serving(server) == 1, message="back to the floor")
    assert time.monotonic() - t0 > 2.5
    assert httpx.get(server.url).status_code == 200


def test_cheaper_must_be_below_processes(dragoman):
    server = dragoman("echo:application", "--processes", "2", "--cheaper", "2", wait=False)
    assert server.proc.wait(30) == 2
    assert "cheaper (2) must be lower than processes (2)" in server.log()


def test_an_unknown_cheaper_algo_falls_back_to_spare_with_a_warning(dragoman):
    server = dragoman(
        "echo:application",
        "--processes",
        "2",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "busyness",
    )
    assert re.search(r"cheaper-algo.*busyness.*spare", server.log()), server.log()
