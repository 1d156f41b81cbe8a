"""A command for the attached-daemon tests: says it started (with its pid), ticks on stdout
and stderr, and says which signal stopped it (also in a file, when TICKER_RECORD names a
directory).

    daemon_ticker.py NAME [--keep-on-hup] [--daemonize PIDFILE] [--ticks N] [--exit CODE]

--daemonize: forks, the parent exits and the child writes PIDFILE, as a daemon that detaches
itself does (smart-attach-daemon). --ticks N --exit CODE: exits with CODE after N ticks.
"""

import os
import signal
import sys
import time

args = sys.argv[1:]
name = args[0] if args else "ticker"
keep_on_hup = "--keep-on-hup" in args
pidfile = args[args.index("--daemonize") + 1] if "--daemonize" in args else None
ticks = int(args[args.index("--ticks") + 1]) if "--ticks" in args else None
code = int(args[args.index("--exit") + 1]) if "--exit" in args else 0
record = os.environ.get("TICKER_RECORD")

if pidfile:
    if os.fork():
        os._exit(0)
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(pidfile + ".tmp", pidfile)


def on_signal(sig, frame):
    label = signal.Signals(sig).name
    if record:
        with open(os.path.join(record, f"{name}.{os.getpid()}.signal"), "w") as f:
            f.write(label)
    print(f"ticker {name} got {label}", flush=True)
    if sig == signal.SIGHUP and keep_on_hup:
        return
    sys.exit(0)


for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
    signal.signal(s, on_signal)

print(f"ticker {name} started pid {os.getpid()} argv {sys.argv[1:]}", flush=True)
n = 0
while ticks is None or n < ticks:
    n += 1
    print(f"ticker {name} tick {n}", flush=True)
    print(f"ticker {name} stderr {n}", file=sys.stderr, flush=True)
    time.sleep(0.2)
sys.exit(code)
