"""Builds dragoman's release wheel with profile-guided optimisation and installs it.

A release build guesses which branches are hot. This one measures them: it builds an
instrumented wheel, serves pgo/train.py's traffic with it, merges the counts with the
toolchain's own llvm-profdata, and builds the release wheel again with them
(`-Cprofile-use`): the hot paths inlined and placed together, the cold ones (errors, rare
options) out of the way and built for size. On hello world the worker then executes about a
fifth fewer instructions per request and spends about a third less user CPU on each
(docs/performance.md has the figures).

    python pgo/build.py VENV              # builds, then installs the wheel into VENV
    python pgo/build.py VENV --pgo off    # the plain release build

Run it with the interpreter whose environment has maturin (the Makefile uses .venv). The wheel
is built for VENV's interpreter, which also runs the training. PGO needs llvm-profdata from the
Rust toolchain's llvm-tools component; if it is missing, `rustup component add llvm-tools` is
tried once. If that fails too, `--pgo on` (what `make bench` uses: it must measure the build it
reports) stops and says how to go on, and `--pgo auto` (`make run`'s default) warns and builds
the plain release wheel, so the example site still comes up.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "target"
MATURIN = Path(sys.executable).parent / "maturin"


class BuildError(Exception):
    """A step failed; the message says which and what to do."""


def run(cmd: list[str], env: dict[str, str] | None = None, what: str = "") -> None:
    print("+ " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, check=False, env=env, cwd=REPO).returncode != 0:
        raise BuildError(f"{what or cmd[0]} failed (the output above says why)")


def host_triple() -> str:
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.removeprefix("host: ")
    raise BuildError("`rustc -vV` names no host triple")


def llvm_profdata() -> Path | None:
    """The llvm-profdata of the toolchain that builds dragoman (its LLVM reads and writes the
    same profile format as rustc's), or None. Installs the llvm-tools component once if it is
    missing."""
    sysroot = subprocess.run(
        ["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tool = Path(sysroot) / "lib" / "rustlib" / host_triple() / "bin" / "llvm-profdata"
    if tool.exists():
        return tool
    if shutil.which("rustup"):
        print("llvm-profdata is missing: installing the toolchain's llvm-tools component")
        subprocess.run(["rustup", "component", "add", "llvm-tools"], check=False, cwd=REPO)
    return tool if tool.exists() else None


def missing_tool_message() -> str:
    return (
        "a profile-guided build needs llvm-profdata, from the Rust toolchain's llvm-tools "
        "component, and it could not be installed.\n"
        "  Install it with `rustup component add llvm-tools`, or build without PGO with "
        "`make release-wheel PGO=off` (a plain release build, slower per request)."
    )


def maturin_build(python: Path, out: Path, target_dir: Path, rustflags: str) -> Path:
    """Builds the release wheel for `python` into `out`; returns the wheel."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    flags = " ".join(f for f in (os.environ.get("RUSTFLAGS", ""), rustflags) if f)
    if flags:
        env["RUSTFLAGS"] = flags
    cmd = [str(MATURIN), "build", "-q", "--profile", "release", "-i", str(python), "-o", str(out)]
    run(cmd, env, "maturin build")
    wheels = sorted(out.glob("dragoman-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one wheel in {out}, found {len(wheels)}")
    return wheels[0]


def install(python: Path, wheel: Path, target: Path | None = None) -> None:
    cmd = [str(python), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps"]
    if target is not None:
        cmd += ["--target", str(target)]
    run([*cmd, str(wheel)], what="pip install")


def profile(tool: Path, python: Path, work: Path) -> Path:
    """Builds the instrumented wheel, trains it, and returns the merged profile, stored under a
    name of its content's digest (a new profile is a new flag, so cargo rebuilds every crate
    with it rather than keeping ones built with an older profile)."""
    raw = work / "raw"
    site = work / "site"
    wheel = maturin_build(
        python, work / "wheel", TARGET / "pgo-generate", f"-Cprofile-generate={raw}"
    )
    install(python, wheel, site)
    env = dict(os.environ, PYTHONPATH=str(site))
    print("+ training the instrumented build: pgo/train.py", flush=True)
    training = subprocess.run([str(python), str(REPO / "pgo" / "train.py")], check=False, env=env)
    if training.returncode != 0:
        raise BuildError("the training run failed (pgo/train.py said why above)")
    counts = sorted(raw.glob("*.profraw"))
    if not counts:
        raise BuildError(f"the instrumented dragoman wrote no profile into {raw}")
    merged = work / "merged.profdata"
    run([str(tool), "merge", "-o", str(merged), *map(str, counts)], what="llvm-profdata merge")
    digest = hashlib.sha256(merged.read_bytes()).hexdigest()[:16]
    kept = TARGET / "pgo" / f"dragoman-{digest}.profdata"
    kept.parent.mkdir(parents=True, exist_ok=True)
    for old in kept.parent.glob("dragoman-*.profdata"):
        old.unlink()
    shutil.copyfile(merged, kept)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venv", type=Path, help="the virtualenv to build for and install into")
    parser.add_argument(
        "--pgo",
        choices=("auto", "on", "off"),
        default="auto",
        help="on: profile-guided or fail; auto: plain (with a warning) without llvm-profdata",
    )
    args = parser.parse_args()
    python = (args.venv / "bin" / "python").absolute()
    if not python.exists():
        print(f"pgo/build.py: no interpreter at {python}", file=sys.stderr)
        return 2
    out = TARGET / "wheels" / args.venv.name
    try:
        tool = llvm_profdata() if args.pgo != "off" else None
        if tool is None and args.pgo == "on":
            raise BuildError(missing_tool_message())
        if tool is None:
            if args.pgo == "auto":
                print(f"pgo/build.py: warning: {missing_tool_message()}", file=sys.stderr)
                print("pgo/build.py: building the plain release wheel", file=sys.stderr)
            wheel = maturin_build(python, out, TARGET, "")
        else:
            with tempfile.TemporaryDirectory(prefix="dragoman-pgo-") as work:
                profdata = profile(tool, python, Path(work))
            print(f"profile: {profdata.relative_to(REPO)}")
            wheel = maturin_build(python, out, TARGET / "pgo-use", f"-Cprofile-use={profdata}")
        install(python, wheel)
    except BuildError as e:
        print(f"pgo/build.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
