#!/usr/bin/env bash
# Time-compressed soak on release binaries: honcho-sim with churn (an evolving healthy queue at
# high speed, scenario and API-generation switches, workspaces vanishing mid-walk) polled by
# honcho_exporter at a very short interval. Prints poll cycles, exported series and RSS over
# time, then checks that neither grew: the second half's maximum series count must stay within
# the first half's (+10 % + 20) and the final RSS within 1.5 × the RSS at a quarter of the run
# (+ 8 MiB). Exit 0 = flat, 1 = growth. The in-test version is
# tests/integration/daemon.rs::a_time_compressed_soak_keeps_series_and_memory_flat.
#
# Usage: scripts/soak.sh            (5 minutes at a 20 ms poll interval)
#        DURATION=60 INTERVAL=50ms TIMEOUT=45ms scripts/soak.sh
# Needs: cargo, curl. Loopback only; both processes are stopped on exit.
set -euo pipefail

DURATION=${DURATION:-300}          # seconds
INTERVAL=${INTERVAL:-20ms}         # exporter poll interval
TIMEOUT=${TIMEOUT:-18ms}           # exporter poll timeout (must be < INTERVAL)
SAMPLE_EVERY=${SAMPLE_EVERY:-15}   # seconds between samples
CHURN_EVERY=${CHURN_EVERY:-1}      # seconds between churn steps

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/processes.sh
. scripts/lib/processes.sh

"$bin/honcho-sim" --listen 127.0.0.1:0 --scenario healthy --speed 600 \
    --workspaces 8 --sessions-per-workspace 10 --work-units-per-workspace 80 \
    >"$work/sim.out" 2>&1 &
sim_pid=$!
sim_url=$(wait_for_match "$work/sim.out" 'http://127\.0\.0\.1:[0-9]+')

HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND=10000 HONCHO_EXPORTER_HONCHO_RETRIES=0 \
    "$bin/honcho_exporter" --honcho.url="$sim_url" --web.listen-address=127.0.0.1:0 \
    --poll.interval="$INTERVAL" --poll.timeout="$TIMEOUT" --log.level=info \
    2>"$work/exporter.err" &
exporter_pid=$!
listen=$(wait_for_match "$work/exporter.err" 'listen=\[127\.0\.0\.1:[0-9]+')
exporter_url="http://${listen#listen=[}"

churn_steps=(
    'scenario {"scenario":"mixed"}'
    'faults {"rules":[{"endpoint":"work_units","times":1,"action":{"kind":"vanish_mid_walk"}}]}'
    'generation {"generation":"b"}'
    'generation {"generation":"c"}'
    'scenario {"scenario":"healthy"}'
    'faults {"rules":[{"endpoint":"work_units","times":2,"action":{"kind":"vanish_mid_walk"}}]}'
    'scenario {"scenario":"stall_then_overdue"}'
    'scenario {"scenario":"healthy"}'
)
churn() {
    local step=0
    while :; do
        local entry=${churn_steps[$((step % ${#churn_steps[@]}))]}
        curl -sf -o /dev/null -X POST -H 'content-type: application/json' \
            --data "${entry#* }" "$sim_url/_sim/${entry%% *}" || true
        step=$((step + 1))
        sleep "$CHURN_EVERY"
    done
}
churn &
churn_pid=$!
trap 'kill $churn_pid 2>/dev/null || true; cleanup' EXIT

metric() { # NAME BODY: sum of the samples of NAME
    awk -v name="$1" '$1 == name || index($1, name "{") == 1 { sum += $NF } END { printf "%d", sum }' <<<"$2"
}

echo "soak: ${DURATION}s, poll interval $INTERVAL (timeout $TIMEOUT), churn every ${CHURN_EVERY}s"
echo "exporter $exporter_url (pid $exporter_pid), honcho-sim $sim_url"
printf '%8s %10s %8s %10s %12s\n' elapsed_s poll_cycles series rss_kib poll_errors
start=$(date +%s)
rows=()
while :; do
    elapsed=$(($(date +%s) - start))
    body=$(curl -sf "$exporter_url/metrics" || true)
    if [ -n "$body" ]; then
        series=$(grep -vc '^#' <<<"$body")
        cycles=$(metric honcho_exporter_poll_cycles_total "$body")
        errors=$(metric honcho_exporter_poll_errors_total "$body")
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$exporter_pid/status")
        printf '%8d %10d %8d %10d %12d\n' "$elapsed" "$cycles" "$series" "$rss" "$errors"
        rows+=("$elapsed $series $rss")
    fi
    [ "$elapsed" -ge "$DURATION" ] && break
    sleep "$SAMPLE_EVERY"
done

printf '%s\n' "${rows[@]}" | awk -v duration="$DURATION" '
    { at[NR] = $1; series[NR] = $2; rss[NR] = $3 }
    END {
        for (i = 1; i <= NR; i++) {
            if (at[i] < duration / 2) { if (series[i] > first) first = series[i] }
            else if (series[i] > second) second = series[i]
            if (early == "" && at[i] >= duration / 4) early = rss[i]
            if (rss[i] > peak) peak = rss[i]
        }
        final = rss[NR]
        printf "series max: first half %d, second half %d; RSS KiB: at 1/4 %d, final %d, peak %d\n", first, second, early, final, peak
        ok = (second <= first * 1.1 + 20) && (final <= early * 1.5 + 8192)
        print (ok ? "FLAT: no series or memory growth" : "GROWTH detected")
        exit ok ? 0 : 1
    }'
