"""The ASGI scenarios of `make bench` (the `asgi` group; bench/run.py calls `measure`).

- HTTP, with wrk and bench/run.py's machinery (rounds, warm-up, pinning, RSS, CPU per
  request): hello world over 64 connections, the 4 KiB JSON POST echoed back
  (bench/apps/asgi_hello.py), and the async view of the Django example under ASGI
  (examples/mysite/mysite/asgi.py, `/async/`);
- a WebSocket echo: 64 clients, each sending a 32-byte text message and waiting for its echo,
  for --seconds; messages echoed per second (bench/ws_load.py, pinned to the load CPU; it
  offers no compression, so every server echoes plain frames).

Servers, one worker each, pinned to CPU 0: dragoman (`--asgi`), Granian (`--interface asgi`),
uvicorn (httptools and uvloop) and gunicorn's ASGI worker (`-k asgi`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from run import (
    APPS,
    BIN,
    ECHO_BODY,
    HELLO,
    HERE,
    LOAD_CPU,
    MIB,
    MYSITE,
    POST_JSON,
    WARM_UP_SECONDS,
    Scenario,
    Server,
    django_db,
    free_port,
    median_of,
    run_group,
    section,
)

APP = "asgi_hello:application"
WS_LOAD = HERE / "ws_load.py"


def asgi_servers(app: str, cwd: Path, env: dict[str, str], serves: set[str]) -> list[Server]:
    """The ASGI servers, each serving `app` from `cwd` with one worker."""
    labels = frozenset(serves)
    servers = []

    def add(name: str, argv: list[str], port: int) -> None:
        servers.append(Server(name, argv, port, env=env, cwd=cwd, serves=labels))

    chdir = [] if cwd == APPS else ["--chdir", str(cwd)]
    port = free_port()
    add(
        "dragoman",
        [str(BIN / "dragoman"), "--http", f"127.0.0.1:{port}", *chdir, "--asgi", app],
        port,
    )
    port = free_port()
    add(
        "granian",
        [str(BIN / "granian"), "--interface", "asgi", "--workers", "1", "--loop", "uvloop"]
        + ["--host", "127.0.0.1", "--port", str(port), app],
        port,
    )
    port = free_port()
    add(
        "uvicorn (httptools, uvloop)",
        [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port)]
        + ["--http", "httptools", "--loop", "uvloop", "--no-access-log", "--lifespan", "on"],
        port,
    )
    port = free_port()
    add(
        "gunicorn (asgi worker)",
        [str(BIN / "gunicorn"), "-w", "1", "-k", "asgi", "-b", f"127.0.0.1:{port}", app],
        port,
    )
    return servers


def ws_load(port: int, clients: int, seconds: float) -> float:
    """Messages echoed per second by bench/ws_load.py."""
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, sys.executable, str(WS_LOAD), str(port), str(clients)]
        + [str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    return float(out.split()[0])


def websocket_runs(servers: list[Server], args, work: Path) -> tuple[dict, dict, dict]:
    """messages/s, worker RSS after the run, and why a server failed, by server."""
    rates: dict[str, list[float]] = {}
    rss: dict[str, list[int]] = {}
    failed: dict[str, str] = {}
    for server in servers:
        server.log = work / f"ws-{server.name.split()[0]}.log"
    for round_ in range(args.rounds):
        shift = round_ % len(servers)
        for server in servers[shift:] + servers[:shift]:
            if server.name in failed:
                continue
            try:
                server.start("/")
            except RuntimeError as exc:
                failed[server.name] = str(exc)
                continue
            try:
                ws_load(server.port, args.connections, WARM_UP_SECONDS)
                server.settle()
                rate = ws_load(server.port, args.connections, args.seconds)
            except (subprocess.SubprocessError, ValueError, IndexError) as exc:
                failed[server.name] = f"load failed ({exc.__class__.__name__})"
                print(f"round {round_ + 1}: websocket {server.name}: {failed[server.name]}")
                continue
            finally:
                got_rss = server.rss()
                server.stop()
            rates.setdefault(server.name, []).append(rate)
            rss.setdefault(server.name, []).append(got_rss)
            print(f"round {round_ + 1}: websocket    {server.name:30} {rate:10.0f} messages/s")
    return rates, rss, failed


def measure(args, work: Path) -> list[str]:
    """Runs the ASGI scenarios; the report's lines."""
    c = args.connections
    scenarios = [
        Scenario("asgi-hello", "asgi", f"ASGI: hello world, {c} connections", "/", c, **HELLO),
        Scenario(
            "asgi-echo",
            "asgi",
            "ASGI: 4 KiB JSON POST, echoed back",
            "/echo",
            c,
            script=POST_JSON,
            body=ECHO_BODY,
            expect=ECHO_BODY,
            content_type="application/json",
        ),
    ]
    lines: list[str] = ["", "# ASGI", ""]
    lines.append(
        "One worker each, pinned to CPU 0, the load generator to CPU 1: dragoman (`--asgi`), "
        "Granian (`--interface asgi --loop uvloop`), uvicorn (`--http httptools --loop "
        "uvloop`) and gunicorn's ASGI worker (`-k asgi`), all on uvloop."
    )
    results: dict = {}
    group = run_group(
        asgi_servers(APP, APPS, {}, {s.label for s in scenarios}), scenarios, args, work
    )
    results.update(group.results)
    for sc in scenarios:
        lines += section(group, sc, [])
    django = Scenario(
        "asgi-django",
        "asgi",
        "ASGI: the Django example's async view (`/async/`, async ORM count)",
        "/async/",
        c,
        content_type="application/json",
    )
    env = {"DJANGO_DEBUG": "0", "DJANGO_DB_PATH": str(django_db(work))}
    group = run_group(
        asgi_servers("mysite.asgi:application", MYSITE, env, {"asgi-django"}), [django], args, work
    )
    results.update(group.results)
    lines += section(group, django, [])
    ws_servers = asgi_servers(APP, APPS, {}, {"asgi-websocket"})
    rates, rss, failed = websocket_runs(ws_servers, args, work)
    lines += [
        "",
        f"## ASGI: WebSocket echo, {c} clients (32-byte text messages, one in flight each)",
        "",
        "| server | messages/s | worker RSS after (MiB) |",
        "|---|---|---|",
    ]
    for server in ws_servers:
        got = rates.get(server.name)
        if got:
            lines.append(
                f"| {server.name} | {statistics.median(got):.0f} ({min(got):.0f}-{max(got):.0f}) "
                f"| {statistics.median(rss[server.name]) / MIB:.1f} |"
            )
        else:
            lines.append(f"| {server.name} | {failed.get(server.name, 'not run')} | |")
    lines += ["", *goals(results, rates, rss)]
    return lines


def goals(results: dict, rates: dict, rss: dict) -> list[str]:
    """Issue 25's goals, each checked against this run's medians."""
    lines = ["### ASGI goals", ""]

    def check(what: str, ours: float | None, theirs: float | None, at_least: float, more=True):
        if ours is None or theirs is None or theirs == 0:
            lines.append(f"- {what}: not measured")
            return
        ratio = ours / theirs
        met = ratio >= at_least if more else ratio <= at_least
        goal = f"at least {at_least}x" if more else f"at most {at_least}x"
        lines.append(f"- {what}: {ratio:.2f}x (goal {goal}): {'met' if met else 'not met'}")

    hello = median_of(results, "asgi-hello", "dragoman", "rps")
    check("hello, dragoman/Granian", hello, median_of(results, "asgi-hello", "granian", "rps"), 1.3)
    uvicorn = median_of(results, "asgi-hello", "uvicorn (httptools, uvloop)", "rps")
    check("hello, dragoman/uvicorn", hello, uvicorn, 2.0)

    def median(d: dict, name: str) -> float | None:
        return statistics.median(d[name]) if d.get(name) else None

    check(
        "WebSocket echo, dragoman/Granian",
        median(rates, "dragoman"),
        median(rates, "granian"),
        1.0,
    )
    check(
        "worker RSS after the hello run, dragoman/Granian",
        median_of(results, "asgi-hello", "dragoman", "rss_after"),
        median_of(results, "asgi-hello", "granian", "rss_after"),
        1.0,
        more=False,
    )
    return lines
