#!/bin/bash
# A/B of two servers on bench/apps/hello.py, each pinned to CPU 0, measured in turn by wrk
# (pinned to CPU 1, CONNECTIONS connections), ROUNDS times. Each side is a dragoman binary or
# the word `bjoern` (bench/apps/bjoern_run.py, with the Python of .venv-bench, as `make bench`
# runs it). Each round prints requests/s, the p50 and p99 of the latencies wrk recorded
# (bench/latency.lua, as `make bench` reports them) and the worker's CPU per request (and its
# user-mode part); the medians, and in how many rounds each side had the lower p99, close the
# output. SCENARIO is hello (GET /), echo (the 4 KiB JSON POST of bench/post_json.lua to
# /echo), stream (GET /stream, 1 MiB in 16 chunks), static (a 1 KiB file from --static-map)
# or django (the example site's template view, on the database `make example` prepared; not
# for bjoern).
#
#   bench/ab.sh OLD/bin/dragoman NEW/bin/dragoman|bjoern [ROUNDS=7] [SECONDS=4] \
#       [SCENARIO=hello] [CONNECTIONS=64]
#
# Build each side with `make release-wheel VENV=/tmp/old` (at the old commit) and
# `make release-wheel VENV=/tmp/new`. Keep the machine otherwise idle while it runs: the
# servers are measured alternately so that the machine's own slow spells fall on both.
set -euo pipefail
BENCH=$(realpath "$(dirname "$0")")
# side NAME: a dragoman binary's full path, or bjoern.
side() { if [ "$1" = bjoern ]; then echo bjoern; else realpath "$1"; fi; }
OLD=$(side "$1") NEW=$(side "$2")
ROUNDS=${3:-7} SECONDS_=${4:-4} SCENARIO=${5:-hello} CONNECTIONS=${6:-64}
WORK=$(mktemp -d)
case $SCENARIO in
    hello) URL_PATH=/ OWN_SCRIPT= ;;
    echo) URL_PATH=/echo OWN_SCRIPT=$BENCH/post_json.lua ;;
    stream) URL_PATH=/stream OWN_SCRIPT= ;;
    static) URL_PATH=/static/one.css OWN_SCRIPT= ;;
    django) URL_PATH=/ OWN_SCRIPT= ;;
    *) echo "unknown scenario $SCENARIO (hello, echo, stream, static or django)" >&2; exit 2 ;;
esac
mkdir -p "$WORK/static"
python3 -c 'import sys; sys.stdout.write("a{color:red}\n" * 78 + "b{}\n")' >"$WORK/static/one.css"
APP=hello:application APP_DIR=$BENCH/apps EXTRA=()
case $SCENARIO in
    static) EXTRA=(--static-map "/static=$WORK/static") ;;
    django) APP=mysite.wsgi:application APP_DIR=$BENCH/../examples/mysite ;;
esac
# The scenario's script with bench/latency.lua appended, as bench/run.py builds it.
{ [ -z "$OWN_SCRIPT" ] || cat "$OWN_SCRIPT"; echo; cat "$BENCH/latency.lua"; } >"$WORK/wrk.lua"
cd "$APP_DIR"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait; rm -rf "$WORK"' EXIT
# start SIDE PORT: serves hello.py on PORT in the background; its pid goes into PIDS.
start() {
    if [ "$1" = bjoern ]; then
        taskset -c 0 "$BENCH/../.venv-bench/bin/python" "$BENCH/apps/bjoern_run.py" hello:application "$2" \
            >/dev/null 2>&1 &
    else
        DJANGO_DEBUG=0 taskset -c 0 "$1" --http "127.0.0.1:$2" "${EXTRA[@]}" "$APP" \
            >/dev/null 2>&1 &
    fi
    PIDS+=($!)
}
start "$OLD" 18090
start "$NEW" 18091
sleep 2
# worker SIDE PID: the serving process. dragoman's master forks it; bjoern serves itself.
worker() { if [ "$1" = bjoern ]; then echo "$2"; else pgrep -P "$2" | head -1 || true; fi; }
OW=$(worker "$OLD" "${PIDS[0]}") NW=$(worker "$NEW" "${PIDS[1]}")
for pid in "$OW" "$NW"; do
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "a server did not start: run each side by hand to see why" >&2
        exit 1
    fi
done
cpu_ticks() { awk '{print $14 + $15, $14}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
# per_request TICKS REQUESTS: microseconds of CPU per request.
per_request() { awk -v t="$1" -v n="$2" -v hz="$TICK" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}'; }
wrk_run() {
    WRK_CONNECTIONS=$CONNECTIONS taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$1" -s "$WORK/wrk.lua" \
        "http://127.0.0.1:$2$URL_PATH"
}
for round in $(seq "$ROUNDS"); do
    line="round $round"
    for side in "old 18090 $OW" "new 18091 $NW"; do
        set -- $side
        wrk_run 1s "$2" >/dev/null
        read -r before user_before <<<"$(cpu_ticks "$3")"
        out=$(wrk_run "${SECONDS_}s" "$2")
        read -r after user_after <<<"$(cpu_ticks "$3")"
        rps=$(awk '/Requests\/sec/ {print int($2)}' <<<"$out")
        n=$(awk '/requests in/ {print $1}' <<<"$out")
        # bench/latency.lua's "recorded=N p50=US p99=US"
        recorded='s/.*recorded=[0-9]* p50=\([0-9]*\) p99=\([0-9]*\).*/\1 \2/p'
        if ! read -r p50 p99 < <(sed -n "$recorded" <<<"$out"); then
            echo "wrk printed no LATENCY line (bench/latency.lua):" >&2
            echo "$out" >&2
            exit 1
        fi
        us=$(per_request $((after - before)) "$n")
        user=$(per_request $((user_after - user_before)) "$n")
        echo "$1 $rps $us $user $p50 $p99" >>"$WORK/rows"
        line="$line  $1 $rps req/s p50 $p50 p99 $p99 us, $us us/req (user $user)"
    done
    echo "$line"
done
python3 - "$WORK/rows" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
p99 = {}
for side in ("old", "new"):
    mine = [r for r in rows if r[0] == side]
    rps = [int(r[1]) for r in mine]
    us = [float(r[2]) for r in mine]
    user = [float(r[3]) for r in mine]
    p50 = [int(r[4]) for r in mine]
    p99[side] = [int(r[5]) for r in mine]
    print(f"{side}: median {statistics.median(rps):,.0f} req/s ({min(rps):,}-{max(rps):,}), "
          f"p50 {statistics.median(p50):.0f} us, p99 {statistics.median(p99[side]):.0f} us "
          f"({min(p99[side])}-{max(p99[side])}), {statistics.median(us):.2f} us/req "
          f"(user {statistics.median(user):.2f}, {min(user):.2f}-{max(user):.2f})")
pairs = list(zip(p99["old"], p99["new"]))
print(f"lower p99: old in {sum(o < n for o, n in pairs)} rounds, new in "
      f"{sum(n < o for o, n in pairs)}, equal in {sum(o == n for o, n in pairs)}")
PY
