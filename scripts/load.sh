#!/usr/bin/env bash
# Load test on release binaries: wrk with many concurrent connections scraping /metrics of
# honcho_exporter (polling honcho-sim on loopback), for a bounded time. Prints wrk's latency
# distribution (p50/p99) and throughput, the status codes, and whether the poll loop kept its
# interval (poll cycles done vs. elapsed / interval). The in-test version (debug build, 200
# reqwest scrapers) is tests/integration/daemon.rs::
# a_flood_of_concurrent_scrapers_gets_200_or_503_and_the_poll_loop_keeps_time.
#
# Usage: scripts/load.sh                       (200 connections, 10 s, 250 ms poll interval)
#        CONNECTIONS=500 SECONDS_=20 scripts/load.sh
# Needs: cargo, curl, wrk. Loopback only; both processes are stopped on exit.
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-200}
SECONDS_=${SECONDS_:-10}
THREADS=${THREADS:-2}
INTERVAL_MS=${INTERVAL_MS:-250}

cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "load.sh needs wrk (apt-get install wrk)" >&2; exit 2; }
# shellcheck source=scripts/lib/processes.sh
. scripts/lib/processes.sh

"$bin/honcho-sim" --listen 127.0.0.1:0 --scenario healthy --speed 120 --workspaces 4 \
    >"$work/sim.out" 2>&1 &
sim_pid=$!
sim_url=$(wait_for_match "$work/sim.out" 'http://127\.0\.0\.1:[0-9]+')
HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND=1000 \
    "$bin/honcho_exporter" --honcho.url="$sim_url" --web.listen-address=127.0.0.1:0 \
    --poll.interval="${INTERVAL_MS}ms" --poll.timeout="$((INTERVAL_MS * 4 / 5))ms" \
    --log.level=info 2>"$work/exporter.err" &
exporter_pid=$!
listen=$(wait_for_match "$work/exporter.err" 'listen=\[127\.0\.0\.1:[0-9]+')
url="http://${listen#listen=[}"
sleep 1

cycles() { curl -sf "$url/metrics" | awk '$1 == "honcho_exporter_poll_cycles_total" { printf "%d", $2 }'; }
before=$(cycles)
start_ns=$(date +%s%N)
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_}s" --timeout 10s --latency "$url/metrics" | tee "$work/wrk.out"
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
after=$(cycles)
echo "poll cycles during the load: $((after - before)) in ${elapsed_ms} ms" \
    "(on time would be $((elapsed_ms / INTERVAL_MS)) at ${INTERVAL_MS} ms)"
curl -sf "$url/metrics" | grep -E '^process_(resident_memory_bytes|cpu_seconds_total) '
