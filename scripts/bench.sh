#!/usr/bin/env bash
# Whole-process benchmarks of honcho_exporter against the honcho-sim simulator on loopback, plus
# the criterion micro-benchmarks. Both programs run as separate release-built processes; the
# simulator is frozen (--speed 0) so every run sees the same queue.
#
#   scripts/bench.sh            run everything, print the summary
#   scripts/bench.sh --write    ... and rewrite the results section of BENCHMARKS.md
#   scripts/bench.sh --quick    smaller scales (a smoke run of the script itself, a few minutes)
#   scripts/bench.sh --only walk,latency,shards,peer,criterion,sizes,incident,database   run a subset
#
# What it measures (targets from the issues; see BENCHMARKS.md):
#   walk       one poll cycle walking 1,000,000 work units of one workspace: units/s end to end
#              (honcho_exporter_poll_duration_seconds) and peak RSS (VmHWM; target <= 32 MiB)
#   latency    /metrics latency at ~1 k, ~10 k and ~100 k series, 2,000 sequential and 2,000
#              concurrent scrapes, each batch stopped after 30 s (target: median <= 1 ms at
#              10 k series); text, and OpenMetrics + gzip as Prometheus asks
#   shards     10,000 workspaces x 500 work units split over 1, 2, 4 exporter processes:
#              per-shard cycle time, RSS, upstream requests; projection to 100 k workspaces
#   peer       side by side with the hand-written peer exporter (Python, prometheus_client +
#              httpx; kept outside this repository in ../shared/peers/python_exporter, or
#              $HONCHO_PEER_DIR): scripts/bench/bench_pair.py polls the peer's own fake Honcho with
#              both exporters, interleaved, 3 repetitions, at 10 x 10,000 and 50 x 20,000 work units
#              (quick: 1 x 1,000 and 10 x 10,000, 1 repetition): CPU per full poll cycle (utime +
#              stime; ours one process per cycle, at --poll.concurrency 1 and 4), cycle wall
#              against a raw curl fetch of the same pages (sequential / 4 in parallel), peak RSS,
#              /metrics latency.
#              Installs httpx + prometheus-client into target/bench/peer-venv when missing.
#              Skipped with a note when the peer directory is absent.
#   criterion  cargo bench --bench walk_aggregate (parse+aggregate target >= 1 M units/s/core)
#   sizes      release binary sizes (glibc, and the musl static one if built by
#              scripts/checks/static_build.sh)
#   incident   issue 9's 403 s incident, time-scaled (scripts/bench/incident.py): the simulator
#              with the Honcho cost model and the measured mix (one workspace of 50 k units /
#              150 k rows, one of 10 k / 30 k, 48 small), the exporter at --poll.interval 15s,
#              both scaled by BENCH_INCIDENT_SPEED (default 10) for BENCH_INCIDENT_DURATION
#              modelled seconds (default 600); per workspace the time to first publication and
#              the longest gap of its queue series, Honcho's busy fraction and peak in flight.
#              With BENCH_INCIDENT_BEFORE=/path/to/an/older/honcho_exporter the same run is made
#              with that binary too ("before").
#   database   the database source at scale (issue 19, scripts/bench/postgres_scale.sh): a throwaway
#              PostgreSQL 15 cluster loaded with generate_series, 1 M unprocessed rows over 1,000
#              workspaces and 10 M over 100,000 (BENCH_DATABASE_CASES; quick: 100 k over 100):
#              the cycle query's own database time (all workspaces, each of 4 shards), the
#              exporter's cycle (database, mapping, CPU, peak RSS, series, scrape latency),
#              unsharded and per shard, and query-exporter (PyPI, a venv in target/bench) running
#              equivalent SQL on the same data. Skipped with a note without PostgreSQL 15.
# Needs: cargo, curl, python3. Uses only 127.0.0.1 with ports chosen free at run time; stops
# every process it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

write=0
quick=0
only="walk,latency,shards,peer,criterion,sizes,incident,database"
while [ $# -gt 0 ]; do
  case "$1" in
    --write) write=1 ;;
    --quick) quick=1 ;;
    --only) only="$2"; shift ;;
    --only=*) only="${1#--only=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
wants() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if [ "$quick" = 1 ]; then
  walk_units=100000
  latency_targets="1000 10000"
  shard_workspaces=1000
  shard_units=50
  peer_cases="1x1000 10x10000"
  peer_reps=1
  peer_scrapes=5
else
  walk_units=1000000
  latency_targets="1000 10000 100000"
  shard_workspaces=10000
  shard_units=500
  peer_cases="10x10000 50x20000"
  peer_reps=3
  peer_scrapes=10
fi
shard_counts="1 2 4"
max_rps=${BENCH_MAX_REQUESTS_PER_SECOND:-100000}
scrapes=2000

out="$repo/target/bench"
mkdir -p "$out"
results="$out/results.env"
: >"$results"
record() { printf '%s=%s\n' "$1" "$2" >>"$results"; }
say() { printf '==> %s\n' "$*" >&2; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# stop PID: SIGTERM one process we started and wait for it.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_sim NAME ARGS...: starts honcho-sim frozen; sets sim_pid, sim_url, sim_setup_seconds.
start_sim() {
  local name=$1; shift
  local log="$out/$name.sim.log"
  local started=$EPOCHREALTIME
  "$release/honcho-sim" --listen 127.0.0.1:0 --speed 0 "$@" >"$log" 2>&1 &
  sim_pid=$!
  pids+=("$sim_pid")
  local deadline=$((SECONDS + 900))
  until grep -qs '^listening on ' "$log"; do
    if ! kill -0 "$sim_pid" 2>/dev/null; then echo "honcho-sim exited:" >&2; cat "$log" >&2; exit 1; fi
    [ $SECONDS -lt $deadline ] || { echo "honcho-sim did not start in 900 s" >&2; exit 1; }
    sleep 0.2
  done
  sim_setup_seconds=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$EPOCHREALTIME")
  sim_url=$(sed -n 's/^listening on //p' "$log" | head -1)
}

# start_exporter NAME ARGS...: starts honcho_exporter against $sim_url with one poll cycle per
# 10 minutes (so a benchmark sees exactly one cycle) and its upstream rate limit
# (honcho.max_requests_per_second, default 50/s to protect Honcho) raised to $max_rps, so the
# exporter's own capacity is measured rather than the limiter; sets exporter_pid, exporter_url.
start_exporter() {
  local name=$1; shift
  local port
  port=$(free_port)
  HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND=$max_rps "$release/honcho_exporter" \
    --web.listen-address "127.0.0.1:$port" \
    --honcho.url "$sim_url" \
    --poll.interval 10m \
    --log.level warn \
    "$@" >"$out/$name.exporter.log" 2>&1 &
  exporter_pid=$!
  pids+=("$exporter_pid")
  exporter_url="http://127.0.0.1:$port"
}

# wait_ready URL PID: waits (bounded) until /-/ready answers 200.
wait_ready() {
  local deadline=$((SECONDS + 1800))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/-/ready" || true)" = 200 ]; do
    kill -0 "$2" 2>/dev/null || { echo "exporter $2 exited before ready" >&2; exit 1; }
    [ $SECONDS -lt $deadline ] || { echo "exporter $2 not ready in 1800 s" >&2; exit 1; }
    sleep 0.2
  done
}

# metric URL NAME: the value of an unlabelled sample, or the sum over a family's samples.
metric() {
  curl -s "$1/metrics" | awk -v name="$2" '
    { split($1, parts, "{") } parts[1] == name { sum += $NF; found = 1 }
    END { if (found) printf "%.6f\n", sum; else print "nan" }'
}

# rss_kib PID FIELD: VmHWM (peak) or VmRSS (current) in KiB.
rss_kib() { awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"; }

mib() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1024:.1f}')" "$1"; }

say "release build (cargo build --release --bins)"
build_started=$SECONDS
cargo build --release --bins --quiet
release="${CARGO_TARGET_DIR:-target}/release"
say "built in $((SECONDS - build_started)) s"

record date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
record commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches Cargo.toml Cargo.lock || echo '+dirty')"
record nproc "$(nproc)"
record cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
record memory_gib "$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
record kernel "$(uname -r)"
record rustc "$(rustc --version)"
record load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
record quick "$quick"
record max_rps "$max_rps"

if wants walk; then
  say "walk: 1 workspace x $walk_units work units, one poll cycle"
  start_sim walk --workspaces 1 --work-units-per-workspace "$walk_units"
  record walk_units "$walk_units"
  record walk_sim_setup_seconds "$sim_setup_seconds"
  start_exporter walk --work-units.max-pages 20000
  wait_ready "$exporter_url" "$exporter_pid"
  duration=$(metric "$exporter_url" honcho_exporter_poll_duration_seconds)
  truncated=$(metric "$exporter_url" honcho_exporter_walk_truncated)
  requests=$(metric "$exporter_url" honcho_exporter_upstream_requests_total)
  record walk_poll_seconds "$duration"
  record walk_units_per_second "$(python3 -c "import sys; print(round(int(sys.argv[1]) / float(sys.argv[2])))" "$walk_units" "$duration")"
  record walk_truncated "$truncated"
  record walk_upstream_requests "$requests"
  record walk_cpu_seconds "$(metric "$exporter_url" process_cpu_seconds_total)"
  record walk_peak_rss_kib "$(rss_kib "$exporter_pid" VmHWM)"
  record walk_rss_after_kib "$(rss_kib "$exporter_pid" VmRSS)"
  record walk_sim_peak_rss_kib "$(rss_kib "$sim_pid" VmHWM)"
  say "walk: $duration s, truncated=$truncated, peak RSS $(mib "$(rss_kib "$exporter_pid" VmHWM)") MiB"
  stop "$exporter_pid"
  stop "$sim_pid"
fi

if wants latency; then
  sessions=50
  units=40
  say "latency: calibrating series per workspace (20 workspaces x $sessions sessions)"
  start_sim calibrate --workspaces 20 --sessions-per-workspace "$sessions" --work-units-per-workspace "$units"
  start_exporter calibrate --sessions.max-per-workspace "$sessions"
  wait_ready "$exporter_url" "$exporter_pid"
  per_workspace=$(curl -s "$exporter_url/metrics" | grep -vc '^#' | awk '{ printf "%.1f", $1 / 20 }')
  stop "$exporter_pid"
  stop "$sim_pid"
  record latency_series_per_workspace "$per_workspace"
  for target in $latency_targets; do
    workspaces=$(python3 -c "import math, sys; print(max(1, math.ceil(int(sys.argv[1]) / float(sys.argv[2]))))" "$target" "$per_workspace")
    say "latency: ~$target series ($workspaces workspaces x $sessions sessions)"
    start_sim "latency$target" --workspaces "$workspaces" --sessions-per-workspace "$sessions" --work-units-per-workspace "$units"
    start_exporter "latency$target" --sessions.max-per-workspace "$sessions" --poll.concurrency 8
    wait_ready "$exporter_url" "$exporter_pid"
    series=$(curl -s "$exporter_url/metrics" | grep -vc '^#')
    record "latency${target}_workspaces" "$workspaces"
    record "latency${target}_series" "$series"
    record "latency${target}_rss_kib" "$(rss_kib "$exporter_pid" VmRSS)"
    record "latency${target}_peak_rss_kib" "$(rss_kib "$exporter_pid" VmHWM)"
    for variant in text openmetrics_gzip; do
      flags=()
      [ "$variant" = openmetrics_gzip ] && flags=(--openmetrics --gzip)
      for concurrency in 1 4; do
        json=$(python3 scripts/bench/scrape_latency.py "$exporter_url/metrics" \
          --count "$scrapes" --max-seconds 30 --concurrency "$concurrency" "${flags[@]}")
        key="latency${target}_${variant}_c${concurrency}"
        record "$key" "$json"
        say "  $variant concurrency $concurrency: $json"
      done
    done
    if command -v wrk >/dev/null 2>&1; then
      # A native client as well: one connection (sequential) and eight.
      for connections in 1 8; do
        threads=$((connections < 2 ? 1 : 2))
        wrk_out=$(wrk "-t$threads" "-c$connections" -d5s --latency "$exporter_url/metrics")
        record "latency${target}_wrk_c$connections" "$(awk '/^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } /^Requests\/sec/ { rps = $2 } END { printf "p50 %s, p99 %s, %s req/s", p50, p99, rps }' <<<"$wrk_out")"
      done
    fi
    stop "$exporter_pid"
    stop "$sim_pid"
  done
fi

if wants shards; then
  total_units=$((shard_workspaces * shard_units))
  say "shards: simulator with $shard_workspaces workspaces x $shard_units work units ($total_units)"
  start_sim shards --workspaces "$shard_workspaces" --work-units-per-workspace "$shard_units"
  record shard_workspaces "$shard_workspaces"
  record shard_units_per_workspace "$shard_units"
  record shard_sim_setup_seconds "$sim_setup_seconds"
  record shard_sim_rss_kib "$(rss_kib "$sim_pid" VmRSS)"
  for count in $shard_counts; do
    say "shards: $count exporter process(es) at once"
    shard_pids=()
    shard_urls=()
    started=$SECONDS
    for ((index = 0; index < count; index++)); do
      start_exporter "shard$count-$index" --shard.count "$count" --shard.index "$index"
      shard_pids+=("$exporter_pid")
      shard_urls+=("$exporter_url")
    done
    for ((index = 0; index < count; index++)); do
      wait_ready "${shard_urls[$index]}" "${shard_pids[$index]}"
    done
    record "shards${count}_wall_seconds" "$((SECONDS - started))"
    for ((index = 0; index < count; index++)); do
      url=${shard_urls[$index]}
      pid=${shard_pids[$index]}
      record "shards${count}_${index}_workspaces" "$(metric "$url" honcho_exporter_workspaces)"
      record "shards${count}_${index}_poll_seconds" "$(metric "$url" honcho_exporter_poll_duration_seconds)"
      record "shards${count}_${index}_requests" "$(metric "$url" honcho_exporter_upstream_requests_total)"
      record "shards${count}_${index}_cpu_seconds" "$(metric "$url" process_cpu_seconds_total)"
      record "shards${count}_${index}_truncated" "$(metric "$url" honcho_exporter_walk_truncated)"
      record "shards${count}_${index}_peak_rss_kib" "$(rss_kib "$pid" VmHWM)"
      record "shards${count}_${index}_rss_kib" "$(rss_kib "$pid" VmRSS)"
      record "shards${count}_${index}_series" "$(curl -s "$url/metrics" | grep -vc '^#')"
    done
    for pid in "${shard_pids[@]}"; do stop "$pid"; done
  done
  stop "$sim_pid"
fi

if wants peer; then
  peer_dir=${HONCHO_PEER_DIR:-}
  if [ -z "$peer_dir" ]; then
    for candidate in "$repo/../shared/peers/python_exporter" "$repo/../../shared/peers/python_exporter"; do
      if [ -f "$candidate/exporter.py" ]; then peer_dir=$(cd "$candidate" && pwd); break; fi
    done
  fi
  if [ -z "$peer_dir" ] || [ ! -f "$peer_dir/exporter.py" ]; then
    say "peer: no peer exporter found (set HONCHO_PEER_DIR); skipped"
    record peer_skipped "no peer directory"
  else
    venv="$out/peer-venv"
    if ! "$venv/bin/python" -c 'import httpx, prometheus_client' 2>/dev/null; then
      say "peer: installing httpx + prometheus-client into $venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet httpx prometheus-client
    fi
    record peer_dir "$peer_dir"
    record peer_python "$("$venv/bin/python" -c 'import sys, httpx, prometheus_client.metrics as m; print(sys.version.split()[0], "httpx", httpx.__version__)')"
    for case in $peer_cases; do
      say "peer: $case (workspaces x work units), $peer_reps repetition(s)"
      python3 scripts/bench/bench_pair.py "${case%x*}" "${case#*x}" --peer-dir "$peer_dir" \
        --python "$venv/bin/python" --exporter "$release/honcho_exporter" \
        --reps "$peer_reps" --scrapes "$peer_scrapes" --out "$out/pair/$case" >"$out/pair-$case.log" 2>&1 \
        || { cat "$out/pair-$case.log" >&2; exit 1; }
      record "peer_$case" "$(sed -n 's/^SUMMARY //p' "$out/pair-$case.log")"
    done
  fi
fi

if wants criterion; then
  say "criterion: cargo bench --bench walk_aggregate"
  rm -rf target/criterion/walk target/criterion/exposition
  cargo bench --quiet --bench walk_aggregate -- --noplot >"$out/criterion.log" 2>&1 \
    || { cat "$out/criterion.log" >&2; exit 1; }
  record criterion "$(python3 scripts/bench/criterion_summary.py target/criterion)"
fi

if wants sizes; then
  record size_release "$(stat -c %s "$release/honcho_exporter")"
  record size_release_sim "$(stat -c %s "$release/honcho-sim")"
  musl=target/x86_64-unknown-linux-musl/release/honcho_exporter
  if [ -f "$musl" ]; then record size_musl "$(stat -c %s "$musl")"; fi
fi
if wants incident; then
  incident_speed=${BENCH_INCIDENT_SPEED:-10}
  incident_duration=${BENCH_INCIDENT_DURATION:-600}
  [ "$quick" = 1 ] && incident_duration=${BENCH_INCIDENT_DURATION:-150}
  record incident_speed "$incident_speed"
  record incident_duration "$incident_duration"
  runs=("after=$release/honcho_exporter")
  [ -n "${BENCH_INCIDENT_BEFORE:-}" ] && runs=("before=$BENCH_INCIDENT_BEFORE" "${runs[@]}")
  for run in "${runs[@]}"; do
    label=${run%%=*}
    say "incident ($label): speed $incident_speed, $incident_duration modelled seconds"
    record "incident_${label}_load" "$(cut -d' ' -f1-3 /proc/loadavg)"
    record "incident_${label}" "$(python3 scripts/bench/incident.py --sim "$release/honcho-sim" \
      --exporter "${run#*=}" --speed "$incident_speed" --duration "$incident_duration" \
      --label "$label" --json "$out/incident-$label.json" --logs "$out")"
    say "  $(tail -1 "$results")"
  done
fi
if wants database; then
  if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
    database_cases=${BENCH_DATABASE_CASES:-1000000:1000 10000000:100000}
    [ "$quick" = 1 ] && database_cases=${BENCH_DATABASE_CASES:-100000:100}
    say "database: scripts/bench/postgres_scale.sh $database_cases"
    record database_load "$(cut -d' ' -f1-3 /proc/loadavg)"
    # shellcheck disable=SC2086 # the cases are words
    EXPORTERS="$release/honcho_exporter" QUERY_EXPORTER=1 QE_VENV="$out/qe-venv" \
      scripts/bench/postgres_scale.sh $database_cases >"$out/database.log" 2>&1 \
      || { cat "$out/database.log" >&2; exit 1; }
    line=0
    while IFS= read -r result; do
      line=$((line + 1))
      record "database_$line" "$result"
    done < <(grep -E '^(== |=> )' "$out/database.log")
  else
    record database_skipped "no PostgreSQL 15 (/usr/lib/postgresql/15/bin)"
  fi
fi
record load_after "$(cut -d' ' -f1-3 /proc/loadavg)"

report_args=("$results")
[ "$write" = 1 ] && report_args+=(--write BENCHMARKS.md)
python3 scripts/bench/report.py "${report_args[@]}"
