"""Three dragoman hosts behind HAProxy, each in its own network namespace, under a steady load
(fleet.py has the layout, loadgen.py the load; HAProxy speaks HTTP/1.1 to two hosts and HTTP/2,
h2c, to the third). The tests run in order on one fleet:

1. a new release rolled across the hosts one at a time with SIGHUP: no failed request, and the
   new release answers afterwards;
2. another rolled by restarting each host (SIGTERM, shutdown-delay, a new process): no failed
   request; HAProxy takes each host out on its failing health check before it stops listening;
3. one host's master killed with SIGKILL (its workers, told by the kernel, stop gracefully):
   HAProxy ejects it within its check window, only requests in flight there may fail; it is
   started again and gets traffic again;
4. one host crashed (the master, workers and daemon SIGKILLed at once): the same;
5. every host logged the load generator's address (PROXY protocol), not HAProxy's.

Run with `make fleet` (root, ip netns, haproxy); the figures go to tests/fleet/results.md.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fleet import (
    CHECK_TIMEOUT_MS,
    CLIENT_ADDR,
    FALL,
    H2C_HOSTS,
    HOSTS,
    INTER_MS,
    RISE,
    SHUTDOWN_DELAY,
    Fleet,
    Host,
    lb_addr,
    sweep_stale,
)

RESULTS = Path(__file__).with_name("results.md")
CONCURRENCY = 8
RATE = 150.0  # requests a second, in all
LOAD_SECONDS = 120  # the most one phase's load may last
# What HAProxy logs when a host's health check says it is draining.
DRAINED = "Server mysite/{} is DOWN, reason: Layer7 wrong status, code: 503"
# HAProxy marks a host down after FALL failed checks INTER_MS apart, each failing within
# CHECK_TIMEOUT_MS at worst; plus the 20 ms the test's watcher polls at, and scheduling slack.
EJECT_BOUND = (FALL * INTER_MS + CHECK_TIMEOUT_MS) / 1000 + 0.3

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

FIGURES: dict[str, dict] = {}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    stale = sweep_stale()
    if stale:
        print(f"removed what an earlier run left: {stale}")
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    # A SIGTERM (a CI timeout, `timeout make fleet`) interrupts the run the way Ctrl-C does, so
    # the teardown below still runs; a SIGKILL leaves it to the next run's sweep_stale().
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        started = time.monotonic()
        f.start("v1")
        FIGURES["setup"] = {"seconds": time.monotonic() - started}
        yield f
    finally:
        left = f.close()
        signal.signal(signal.SIGTERM, previous)
        write_results()
    assert left == [], f"left behind: {left}"
    assert not [ns for ns in _namespaces() if ns.startswith(f.ns_name(""))]


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


class Load:
    """One phase's load: started, stopped, read back."""

    def __init__(self, fleet: Fleet, name: str):
        self.out = fleet.run_dir / f"load-{name}.jsonl"
        self.proc = fleet.loadgen(self.out, LOAD_SECONDS, CONCURRENCY, RATE)
        self.started = time.monotonic()
        self.records: list[dict] = []

    def stop(self) -> list[dict]:
        assert self.proc.poll() is None, f"the load generator stopped early: {self.log()}"
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        assert self.proc.returncode == 0, self.log()
        self.records = [json.loads(line) for line in self.out.read_text().splitlines()]
        return self.records

    def log(self) -> str:
        path = self.out.with_suffix(".log")
        return path.read_text() if path.exists() else ""

    def failures(self) -> list[dict]:
        return [r for r in self.records if not r["ok"]]

    def served_by(self, host: str, after: float = 0.0) -> list[dict]:
        return [r for r in self.records if r["ok"] and r.get("server") == host and r["t0"] >= after]

    def figures(self) -> dict:
        seconds = max(r["t1"] for r in self.records) - min(r["t0"] for r in self.records)
        return {
            "requests": len(self.records),
            "failed": len(self.failures()),
            "seconds": seconds,
            "rate": len(self.records) / seconds,
        }


def steady(seconds: float) -> None:
    time.sleep(seconds)


def roll_check(load: Load, fleet: Fleet, old: str, new: str, rolled_at: float) -> None:
    records = load.records
    assert len(records) > 300, len(records)
    failed = load.failures()
    assert failed == [], f"{len(failed)} failed requests, the first: {failed[:5]}"
    gets = [r for r in records if r["kind"] == "get"]
    assert {r["release"] for r in gets if r["t1"] < load.started + 1.5} == {old}
    after = [r for r in gets if r["t0"] > rolled_at]
    assert len(after) > 50, len(after)
    assert {r["release"] for r in after} == {new}, {r["release"] for r in after}
    for host in fleet.hosts:
        mine = [r for r in after if r["server"] == host.name]
        assert mine, f"{host.name} answered nothing after the roll"


def test_rolling_reload_with_sighup(fleet: Fleet):
    load = Load(fleet, "sighup")
    steady(2)
    reloads = []
    for host in fleet.hosts:
        done = len(re.findall(r"reload finished", host.log()))
        host.release("v2")
        t = time.monotonic()
        host.signal(signal.SIGHUP)
        host.wait_log(r"reload finished", count=done + 1, timeout=60)
        reloads.append(time.monotonic() - t)
        steady(1)
    rolled_at = time.monotonic()
    steady(2)
    load.stop()
    # HAProxy never saw a host go: a reload keeps serving throughout.
    assert fleet.watcher is not None
    downs = [
        (t, s) for t, s in fleet.watcher.samples if t > load.started and set(s.values()) != {"UP"}
    ]
    assert downs == [], downs[:3]
    roll_check(load, fleet, "v1", "v2", rolled_at)
    FIGURES["sighup"] = {**load.figures(), "reload_seconds": reloads}


def test_rolling_restart(fleet: Fleet):
    assert fleet.watcher is not None
    watcher = fleet.watcher
    load = Load(fleet, "restart")
    steady(2)
    noticed, stopped, rejoined = [], [], []
    drains = {h.name: fleet.haproxy_log_count(DRAINED.format(h.name)) for h in fleet.hosts}
    for host in fleet.hosts:
        host.release("v3")
        t = time.monotonic()
        host.signal(signal.SIGTERM)
        # The health check fails at once; HAProxy must take the host out before dragoman stops
        # listening, SHUTDOWN_DELAY seconds later.
        t_down = watcher.wait(host.name, "DOWN", after=t, timeout=SHUTDOWN_DELAY + 5)
        noticed.append(t_down - t)
        assert t_down - t < SHUTDOWN_DELAY, f"{host.name} taken out after {t_down - t:.2f}s"
        # ... on the health check's 503, not on a refused connection (it is still listening).
        assert host.proc is not None and host.proc.poll() is None
        fleet.haproxy_log_wait(DRAINED.format(host.name), drains[host.name] + 1)
        assert host.wait_exit(30) == 0, host.tail()
        stopped.append(time.monotonic() - t)
        t = time.monotonic()
        host.start()
        t_up = watcher.wait(host.name, "UP", after=t, timeout=60)
        rejoined.append(t_up - t)
    rolled_at = time.monotonic()
    steady(2)
    load.stop()
    roll_check(load, fleet, "v2", "v3", rolled_at)
    FIGURES["restart"] = {
        **load.figures(),
        "taken_out_seconds": noticed,
        "exited_seconds": stopped,
        "back_seconds": rejoined,
    }


def kill_and_rejoin(fleet: Fleet, host: Host, name: str, whole_group: bool) -> dict:
    assert fleet.watcher is not None
    watcher = fleet.watcher
    load = Load(fleet, name)
    steady(3)
    assert host.proc is not None
    assert fleet.haproxy is not None
    before = fleet.haproxy.counters()
    children = host.worker_pids()  # the workers and the attached daemon
    assert len(children) >= 3, children
    t_kill = time.monotonic()
    if whole_group:
        os.killpg(host.proc.pid, signal.SIGKILL)
    else:
        os.kill(host.proc.pid, signal.SIGKILL)
    # Both watched at once: when HAProxy takes the host out, and when its children are gone
    # (they do not outlive their master: PR_SET_PDEATHSIG; SIGTERM, so a graceful stop).
    t_down = t_gone = None
    deadline = t_kill + 15
    while (t_down is None or t_gone is None) and time.monotonic() < deadline:
        if t_gone is None and not any(_alive(pid) for pid in children):
            t_gone = time.monotonic()
        if t_down is None:
            t_down = watcher.first(host.name, "DOWN", after=t_kill)
        time.sleep(0.01)
    assert t_down is not None, f"{host.name} still in the pool 15s after the kill"
    orphans = [pid for pid in children if _alive(pid)]
    assert t_gone is not None, f"{orphans} outlived the master by 15s"
    eject = t_down - t_kill
    assert host.wait_exit(5) == -signal.SIGKILL
    steady(1)
    t_start = time.monotonic()
    host.start()
    t_up = watcher.wait(host.name, "UP", after=t_start, timeout=60)
    steady(3)
    load.stop()
    after = fleet.haproxy.counters()
    errors = {name: {k: after[name][k] - before[name][k] for k in after[name]} for name in after}

    assert eject <= EJECT_BOUND, f"{host.name} ejected {eject:.2f}s after the kill"
    # After HAProxy took it out, nothing went to the dead host.
    late = [r for r in load.records if r.get("server") == host.name and t_down < r["t0"] < t_start]
    assert late == [], late[:3]
    # Only requests in flight on that host may fail: they started before it was ejected and
    # ended after it was killed; each of the load's connections has at most one in flight.
    failed = load.failures()
    outside = [r for r in failed if not (r["t0"] <= t_down and r["t1"] >= t_kill)]
    assert outside == [], outside[:3]
    assert len(failed) <= CONCURRENCY, failed
    wrong_host = [r for r in failed if r.get("server") not in (None, host.name)]
    assert wrong_host == [], wrong_host
    # HAProxy's books agree: each failure is a response that failed on that host (a request
    # in flight there), and the other hosts failed nothing.
    assert len(failed) <= errors[host.name]["eresp"], errors
    others = {name: e for name, e in errors.items() if name != host.name and any(e.values())}
    assert others == {}, others
    # Back in the pool, it gets its share again.
    back = load.served_by(host.name, after=t_up)
    assert len(back) >= 20, f"{host.name} served {len(back)} requests after rejoining"
    first_back = min(r["t1"] for r in back)
    return {
        **load.figures(),
        "in_flight_failed": len(failed),
        "failures": [
            f"{r['kind']}: "
            + (f"{r['status']}, " if "status" in r else "no response, ")
            + r["error"][:120]
            for r in failed
        ],
        "eject_seconds": eject,
        "children_gone_seconds": t_gone - t_kill,
        "rejoin_seconds": t_up - t_start,
        "first_request_back_seconds": first_back - t_start,
        "served_after_rejoin": len(back),
        "haproxy": errors[host.name],
    }


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_sigkill_master(fleet: Fleet):
    FIGURES["sigkill_master"] = kill_and_rejoin(fleet, fleet.hosts[1], "kill-master", False)


def test_host_crash(fleet: Fleet):
    FIGURES["crash"] = kill_and_rejoin(fleet, fleet.hosts[2], "crash", True)


ACCESS = re.compile(r"\] (\S+) \"(GET|POST|HEAD) (\S+) (HTTP/[\d.]+)\" (\d{3}) ")


def test_every_host_logged_the_real_client(fleet: Fleet):
    # The access log is written in batches: wait (bounded) until a request made now shows up.
    counts = {}
    for host in fleet.hosts:
        checked = r"\"GET /healthz HTTP/[\d.]+\" 200"
        host.wait_log(checked, count=len(re.findall(checked, host.log())) + 2, timeout=15)
        app, checks, protocols = [], [], set()
        for m in ACCESS.finditer(host.log()):
            if m.group(3) == "/healthz":
                checks.append(m.group(1))
            else:
                app.append(m.group(1))
                protocols.add(m.group(4))
        # HAProxy passed the load on in what it was told to speak: HTTP/2 to the h2c hosts,
        # HTTP/1.1 to the others (its checks are HTTP/1.0 there).
        assert protocols == {"HTTP/2.0" if host.h2c else "HTTP/1.1"}, (host.name, protocols)
        assert len(app) >= 300, f"{host.name}: {len(app)} request lines"
        assert set(app) == {CLIENT_ADDR}, f"{host.name}: {sorted(set(app))}"
        # HAProxy's own checks carry its address on the link (a PROXY header naming itself).
        assert set(checks) == {lb_addr(host.index)}, f"{host.name}: {sorted(set(checks))}"
        counts[host.name] = len(app)
    # And HAProxy saw the load generator at that address.
    assert fleet.haproxy is not None
    seen = re.findall(r"^(\S+):\d+ \[", fleet.haproxy.log_path.read_text(), re.MULTILINE)
    assert seen and set(seen) == {CLIENT_ADDR}, sorted(set(seen))[:5]
    FIGURES["client_address"] = {"lines_with_client_address": counts}


def write_results() -> None:
    """tests/fleet/results.md: the figures of this run (only when every phase ran)."""
    if not {"sighup", "restart", "sigkill_master", "crash"} <= FIGURES.keys():
        return
    haproxy = subprocess.run(["haproxy", "-v"], check=False, capture_output=True, text=True).stdout
    lines = [
        "# Fleet results",
        "",
        (
            f"`make fleet` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {HOSTS} "
            "dragoman hosts (the example Django site, 2 workers each; HAProxy speaks HTTP/2 to "
            + ", ".join(f"h{i}" for i in sorted(H2C_HOSTS))
            + f", HTTP/1.1 to the others), HAProxy {haproxy.split()[2]} "
            f"(checks every {INTER_MS} ms, fall {FALL}, rise {RISE}, timeout "
            f"{CHECK_TIMEOUT_MS} ms), shutdown-delay {SHUTDOWN_DELAY} s; the load: {CONCURRENCY} "
            f"keep-alive connections paced to {RATE:g} requests/s; {os.cpu_count()} cores, "
            f"{platform.python_implementation()} {platform.python_version()}."
        ),
        "",
        "| phase | requests | failed | seconds | requests/s |",
        "|---|---|---|---|---|",
    ]
    names = {
        "sighup": "rolling reload (SIGHUP), v1 to v2",
        "restart": "rolling restart (SIGTERM, new process), v2 to v3",
        "sigkill_master": "SIGKILL of one master, restarted",
        "crash": "crash of one host (its process group SIGKILLed), restarted",
    }
    for key, label in names.items():
        f = FIGURES[key]
        lines.append(
            f"| {label} | {f['requests']:,} | {f['failed']} | {f['seconds']:.1f} | "
            f"{f['rate']:.0f} |"
        )
    s, r = FIGURES["sighup"], FIGURES["restart"]
    lines += [
        "",
        "Rolling reload: each host's reload took "
        + ", ".join(f"{x:.1f}" for x in s["reload_seconds"])
        + " s (SIGHUP to `reload finished`).",
        "",
        "Rolling restart: HAProxy took each host out "
        + ", ".join(f"{x:.2f}" for x in r["taken_out_seconds"])
        + f" s after its SIGTERM (before its shutdown-delay of {SHUTDOWN_DELAY} s ran out); "
        "each exited "
        + ", ".join(f"{x:.1f}" for x in r["exited_seconds"])
        + " s after it, and was back in the pool "
        + ", ".join(f"{x:.1f}" for x in r["back_seconds"])
        + " s after its new process was started.",
        "",
        (
            "| kill | failed (bound: in flight, at most "
            f"{CONCURRENCY}) | failed responses on the host (HAProxy) | requests HAProxy "
            "redispatched after a refused connection | ejected after (bound: "
            f"{EJECT_BOUND:.1f} s) | its children gone after | back in the pool after its "
            "restart | first request served after its restart |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("sigkill_master", "crash"):
        f = FIGURES[key]
        lines.append(
            f"| {names[key]} | {f['in_flight_failed']} | {f['haproxy']['eresp']} | "
            f"{f['haproxy']['wredis']} | {f['eject_seconds']:.2f} s | "
            f"{f['children_gone_seconds']:.2f} s | {f['rejoin_seconds']:.2f} s | "
            f"{f['first_request_back_seconds']:.2f} s |"
        )
    failures = [
        f"- {names[key]}: `{failure}`"
        for key in names
        if key in ("sigkill_master", "crash")
        for failure in FIGURES[key]["failures"]
    ]
    if failures:
        lines += ["", "The failed requests, as the load generator saw them:", "", *failures]
    if "client_address" in FIGURES:
        counts = FIGURES["client_address"]["lines_with_client_address"]
        lines += [
            "",
            "Access log lines naming the load generator's address "
            f"({CLIENT_ADDR}, through the PROXY protocol): "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
            + "; none named HAProxy's.",
        ]
    lines.append(f"\nSetting up the fleet took {FIGURES['setup']['seconds']:.1f} s.")
    RESULTS.write_text("\n".join(lines) + "\n")
