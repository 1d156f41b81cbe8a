#!/bin/bash
# A/B of two dragoman builds: both serve bench/apps/hello.py pinned to CPU 0, wrk (pinned to
# CPU 1, CONNECTIONS connections) measures them in turn, ROUNDS times; each round prints
# requests/s and the worker's CPU per request (and its user-mode part), and the medians close
# the output. SCENARIO is hello (GET /),
# echo (the 4 KiB JSON POST of bench/post_json.lua to /echo) or stream (GET /stream, 1 MiB in
# 16 chunks).
#
#   bench/ab.sh OLD/bin/dragoman NEW/bin/dragoman [ROUNDS=7] [SECONDS=4] [SCENARIO=hello] \
#       [CONNECTIONS=64]
#
# Build each side with `make release-wheel VENV=/tmp/old` (at the old commit) and
# `make release-wheel VENV=/tmp/new`. Keep the machine otherwise idle while it runs.
set -euo pipefail
OLD=$(realpath "$1") NEW=$(realpath "$2") ROUNDS=${3:-7} SECONDS_=${4:-4} SCENARIO=${5:-hello}
CONNECTIONS=${6:-64}
cd "$(dirname "$0")/apps"
case $SCENARIO in
    hello) URL_PATH=/ WRK_ARGS=() ;;
    echo) URL_PATH=/echo WRK_ARGS=(-s ../post_json.lua) ;;
    stream) URL_PATH=/stream WRK_ARGS=() ;;
    *) echo "unknown scenario $SCENARIO (hello, echo or stream)" >&2; exit 2 ;;
esac
taskset -c 0 "$OLD" --http 127.0.0.1:18090 hello:application >/dev/null 2>&1 &
OP=$!
taskset -c 0 "$NEW" --http 127.0.0.1:18091 hello:application >/dev/null 2>&1 &
NP=$!
trap 'kill $OP $NP 2>/dev/null; wait' EXIT
sleep 2
worker() { pgrep -P "$1" | head -1; }
cpu_ticks() { awk '{print $14 + $15, $14}' "/proc/$1/stat"; }
OW=$(worker $OP) NW=$(worker $NP)
if [ -z "$OW" ] || [ -z "$NW" ]; then
    echo "a server did not start: run each build by hand to see why" >&2
    exit 1
fi
TICK=$(getconf CLK_TCK)
# per_request TICKS REQUESTS: microseconds of CPU per request.
per_request() { awk -v t="$1" -v n="$2" -v hz="$TICK" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}'; }
: >/tmp/ab.$$
for round in $(seq "$ROUNDS"); do
    line="round $round"
    for side in "old 18090 $OW" "new 18091 $NW"; do
        set -- $side
        taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d1s "${WRK_ARGS[@]}" "http://127.0.0.1:$2$URL_PATH" >/dev/null
        read -r before user_before <<<"$(cpu_ticks "$3")"
        out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_}s" "${WRK_ARGS[@]}" "http://127.0.0.1:$2$URL_PATH")
        read -r after user_after <<<"$(cpu_ticks "$3")"
        rps=$(awk '/Requests\/sec/ {print int($2)}' <<<"$out")
        n=$(awk '/requests in/ {print $1}' <<<"$out")
        us=$(per_request $((after - before)) "$n")
        user=$(per_request $((user_after - user_before)) "$n")
        echo "$1 $rps $us $user" >>/tmp/ab.$$
        line="$line  $1 $rps req/s $us us/req (user $user)"
    done
    echo "$line"
done
python3 - /tmp/ab.$$ <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for side in ("old", "new"):
    rps = [int(r[1]) for r in rows if r[0] == side]
    us = [float(r[2]) for r in rows if r[0] == side]
    user = [float(r[3]) for r in rows if r[0] == side]
    print(f"{side}: median {statistics.median(rps):,.0f} req/s ({min(rps):,}-{max(rps):,}), "
          f"{statistics.median(us):.2f} us/req (user {statistics.median(user):.2f}, "
          f"{min(user):.2f}-{max(user):.2f})")
PY
rm -f /tmp/ab.$$
