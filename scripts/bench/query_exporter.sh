#!/usr/bin/env bash
# query-exporter (PyPI) on the same database as scripts/bench/postgres_scale.sh, running
# scripts/bench/query_exporter.yaml as the role of deploy/postgres/grant.sql: its own query
# latency per query (database time as its driver sees it), its CPU and peak RSS after the three
# queries ran once, the series it exports and a scrape's latency.
#
#   scripts/bench/query_exporter.sh HOST PORT DATABASE
#
# Installs query-exporter and psycopg into a venv under /tmp (QE_VENV) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
host=$1 port=$2 db=$3
venv=${QE_VENV:-/tmp/honcho-exporter-query-exporter-venv}
if [ ! -x "$venv/bin/query-exporter" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q query-exporter "psycopg[binary]"
fi
config=$(mktemp /tmp/query-exporter-XXXXXX.yaml)
sed "s#DSN#postgresql://honcho_exporter:bench-password@$host:$port/$db#" scripts/bench/query_exporter.yaml >"$config"
web=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$venv/bin/query-exporter" --config "$config" -H 127.0.0.1 -p "$web" -L warning >/dev/null 2>&1 &
pid=$!
metrics=""
for _ in $(seq 1 1200); do
  sleep 0.5
  metrics=$(curl -fsS "http://127.0.0.1:$web/metrics" 2>/dev/null || true)
  done_queries=$(grep -c '^queries_total{.*status="success"' <<<"$metrics" || true)
  [ "$done_queries" -ge 3 ] && break
done
cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
scrape=$(python3 - "http://127.0.0.1:$web/metrics" <<'PY'
import sys, time, urllib.request
times = []
for _ in range(5):
    started = time.perf_counter()
    body = urllib.request.urlopen(sys.argv[1]).read()
    times.append(time.perf_counter() - started)
series = sum(1 for line in body.decode().splitlines() if line.startswith("honcho_queue_"))
times.sort()
print(f"{series} {times[2] * 1000:.1f}")
PY
)
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -f "$config"
latency=$(sed -n 's/^query_latency_sum{.*query="\([a-z_]*\)".*} \([0-9.e+-]*\)$/\1=\2/p' <<<"$metrics" | tr '\n' ' ')
total=$(sed -n 's/^query_latency_sum{.*} \([0-9.e+-]*\)$/\1/p' <<<"$metrics" | python3 -c 'import sys; print(f"{sum(float(v) for v in sys.stdin):.2f}")')
echo "=> query-exporter: database (query latency) ${total} s [$latency], process CPU $cpu s, peak RSS $((rss / 1024)) MiB, series ${scrape% *}, scrape ${scrape#* } ms"
