#!/usr/bin/env bash
# Server CPU per request of the three http_stack variants (A bare axum, B hand-assembled
# tower-http, C ProductionLayer), with wrk as the load generator in its own process: the
# server's user+system time from /proc divided by the requests wrk completed. Interleaved
# A,B,C for ROUNDS rounds of SECS seconds. Needs wrk (`apt-get install wrk`).
#
#   scripts/http-stack-cpu.sh            # 3 rounds × 4 s, 32 connections
#   ROUNDS=5 SECS=6 CONNS=64 scripts/http-stack-cpu.sh
#   VARIANTS="SA SO PA PO" scripts/http-stack-cpu.sh   # the server: axum::serve (SA, PA) against
#                                        # rustforge_prod::serve (SO, PO), bare routes / full stack
#   PERF=C scripts/http-stack-cpu.sh     # then profile the server while wrk drives C and
#                                        # print where its CPU goes (scripts/perf-summary.py)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
ROUNDS=${ROUNDS:-3} SECS=${SECS:-4} CONNS=${CONNS:-32} VARIANTS=${VARIANTS:-A B C}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rustforge-prod/target}"
bench=$(cargo bench --bench http_stack --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*http_stack[^"]*\)".*/\1/p' | tail -1)
out=$(mktemp)
BENCH_SERVE=$((ROUNDS * SECS * $(echo $VARIANTS | wc -w) + 60)) "$bench" >"$out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q '^A http' "$out" && break; sleep 0.2; done
url() { grep -oE "(^| )$1 http://[0-9.:]+/" "$out" | awk '{print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
echo "| round | variant | req/s | server CPU µs/request |"
echo "|---|---|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for v in $VARIANTS; do
        before=$(cpu_ticks)
        rps=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "$(url $v)" | awk '/Requests\/sec/ {print $2}')
        after=$(cpu_ticks)
        awk -v r="$round" -v v="$v" -v rps="$rps" -v t=$((after - before)) -v hz="$hz" -v s="$SECS" \
            'BEGIN { printf "| %d | %s | %.0f | %.1f |\n", r, v, rps, t / hz * 1e6 / (rps * s) }'
    done
done
if [ -n "${PERF:-}" ]; then
    wrk -t1 -c"$CONNS" -d"$((SECS + 2))s" "$(url "$PERF")" >/dev/null &
    sleep 1
    data=${PERF_DATA:-${TMPDIR:-/tmp}/http_stack.perf.data}
    perf record -F 499 -e cpu-clock --call-graph dwarf,65528 -p "$server" -o "$data" \
        -- sleep "$SECS" 2>&1 | tail -1
    wait
    perf script -i "$data" -F tid,ip,sym 2>/dev/null | scripts/perf-summary.py
fi
