"""`make fuzz`: runs every fuzz target under libFuzzer for a bounded time, minimises the corpora
kept in fuzz/corpus/, and writes fuzz/results.md (CPU time, runs, corpus size, findings).

    python3 fuzz/run.py [--seconds N] [--jobs J] [target ...]

cargo-fuzz drives libFuzzer, which needs unstable rustc flags: the stable toolchain is asked
for them with RUSTC_BOOTSTRAP=1 (no nightly is installed). Sanitizers are off (`-s none`): the
harnesses are safe Rust, and what they look for is panics and broken invariants.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
RESULTS = FUZZ / "results.md"
TARGETS = [
    "ini",
    "uwsgi",
    "range",
    "accept_encoding",
    "static_path",
    "proxy",
    "framing",
    "framing_hyper",
    "h1_head",
    "environ",
]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["RUSTC_BOOTSTRAP"] = "1"
    env.setdefault("PYO3_PYTHON", sys.executable)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = ":".join(filter(None, [libdir, env.get("LD_LIBRARY_PATH", "")]))
    return env


def cargo_fuzz(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["cargo", "fuzz", *args],
        cwd=FUZZ,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(target: str, seconds: int) -> dict:
    corpus = FUZZ / "corpus" / target
    before = len(list(corpus.iterdir()))
    started = time.monotonic()
    # The CPU time of this one run (cargo and the fuzzer it waits for): wait4's rusage.
    proc = subprocess.Popen(
        [
            "cargo",
            "fuzz",
            "run",
            target,
            "-s",
            "none",
            "-O",
            "--",
            f"-max_total_time={seconds}",
            "-print_final_stats=1",
            "-rss_limit_mb=4096",
            "-timeout=10",
        ],
        cwd=FUZZ,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()  # until the fuzzer exits: -max_total_time bounds it
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", output))
    crashed = proc.returncode != 0
    artifacts = sorted((FUZZ / "artifacts" / target).glob("*")) if crashed else []
    minimised = cargo_fuzz("cmin", target, "-s", "none", "-O", timeout=1800)
    after = len(list(corpus.iterdir()))
    return {
        "target": target,
        "runs": int(stats.get("number_of_executed_units", 0)),
        "per_sec": int(stats.get("average_exec_per_sec", 0)),
        "new": int(stats.get("new_units_added", 0)),
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "before": before,
        "after": after,
        "crashed": crashed,
        "artifacts": [str(a.relative_to(FUZZ.parent)) for a in artifacts],
        "tail": output[-3000:] if crashed else "",
        "cmin_ok": minimised.returncode == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=300, help="fuzzing time per target")
    parser.add_argument("--jobs", type=int, default=2, help="targets fuzzed at once")
    parser.add_argument("targets", nargs="*", default=TARGETS)
    args = parser.parse_args()
    build = cargo_fuzz("build", "-s", "none", "-O", timeout=1800)
    if build.returncode != 0:
        print(build.stdout, build.stderr, sep="\n")
        return 1
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=FUZZ,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda t: run(t, args.seconds), args.targets))
    # Targets not run this time keep their last row: a run of one target updates its line.
    rows = previous_rows()
    failed = False
    for r in results:
        finding = "none"
        if r["crashed"]:
            failed = True
            finding = "CRASH: " + ", ".join(r["artifacts"] or ["see the log"])
            print(f"== {r['target']} failed ==\n{r['tail']}", file=sys.stderr)
        rows[r["target"]] = (
            f"| {r['target']} | {commit or '?'} | {args.seconds} | {r['cpu']:.0f} | {r['runs']:,} "
            f"| {r['per_sec']:,} | {r['new']:,} | {r['before']} → {r['after']} | {finding} |"
        )
    total_cpu = sum(float(row.split("|")[4]) for row in rows.values())
    lines = [
        "# Fuzzing results",
        "",
        (
            "`make fuzz` (fuzz/run.py), libFuzzer via cargo-fuzz, release build, no sanitizer, "
            "two targets at a time on this 2-core machine. Each row is the last run of that "
            "target: the commit it fuzzed, the time it was given, and its CPU time (the fuzzer's "
            "user+system time; the corpus minimisation after it not counted)."
        ),
        "",
        (
            "| target | commit | seconds | CPU s | runs | runs/s | new inputs | "
            "corpus before → after (minimised) | findings |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
        *[rows[t] for t in TARGETS if t in rows],
        "",
        f"All targets together: {total_cpu:.0f} CPU seconds.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 1 if failed else 0


def previous_rows() -> dict[str, str]:
    """The rows of the last results.md, by target."""
    if not RESULTS.exists():
        return {}
    rows = {}
    for line in RESULTS.read_text().splitlines():
        target = line.strip().strip("|").split("|")[0].strip()
        if target in TARGETS:
            rows[target] = line
    return rows


if __name__ == "__main__":
    sys.exit(main())
