#!/usr/bin/env bash
# The database source's one-pass query (src/source/postgres/queries.rs UNITS) on a throwaway
# PostgreSQL 15 cluster with Honcho's 3.x tables and indexes (tests/data/postgres/honcho-3.x.sql,
# no index of our own): loads N unprocessed queue rows (3 rows per work unit, one message each,
# 50 workspaces, every 4th unit a summary, 1 in 20 units claimed) plus N/10 processed rows, then
# prints EXPLAIN (ANALYZE, BUFFERS) and the database time per unprocessed row.
#
#   scripts/bench/postgres_one_pass.sh 100000 1000000
#
# Needs Debian's postgresql (scripts/test.sh installs it). Runs as the postgres OS user when
# started as root. Stops the cluster and removes its directory at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=/usr/lib/postgresql/15/bin
sizes=("${@:-100000 1000000}")
[ $# -eq 0 ] && sizes=(100000 1000000)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$(mktemp -d /tmp/honcho-exporter-bench-pg-XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
as_pg "$BIN/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c shared_buffers=256MB" start >/dev/null
trap 'as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
units_sql=$(python3 - <<'PY'
import re
text = open("src/source/postgres/queries.rs").read()
start = text.index('pub const UNITS: &str = "\\\n') + len('pub const UNITS: &str = "\\\n')
print(text[start:text.index('";', start)].replace('\\"', '"'))
PY
)
echo "PostgreSQL: $("$BIN/postgres" --version); CPU: $(nproc) cores"

# The whole database-source cycle as the release exporter runs it (as the role of
# deploy/postgres/grant.sql): its own figures for database time and mapping time, and its CPU.
# EXPORTERS (space-separated binaries, e.g. a build before and after a change) are each run on
# the same loaded data; the default is EXPORTER (target/release/honcho_exporter).
EXPORTER=${EXPORTER:-target/release/honcho_exporter}
EXPORTERS=${EXPORTERS:-$EXPORTER}
exporter_cycle() {
  local db=$1 n=$2 EXPORTER=$3
  if [ ! -x "$EXPORTER" ]; then echo "(no $EXPORTER: cargo build --release for the exporter's cycle cost)"; return; fi
  echo "-- exporter $EXPORTER"
  psql -d "$db" -v password=bench-password -f deploy/postgres/grant.sql >/dev/null
  local web
  web=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  HONCHO_EXPORTER_POSTGRES_PASSWORD=bench-password "$EXPORTER" --source=postgres \
    --postgres.url="postgres://honcho_exporter@127.0.0.1:$port/$db?sslmode=disable" \
    --poll.interval=40s --poll.timeout=35s --postgres.statement-timeout=30s \
    --web.listen-address="127.0.0.1:$web" --log.level=warn &
  local pid=$!
  local metrics=""
  for _ in $(seq 1 120); do
    sleep 1
    metrics=$(curl -fsS "http://127.0.0.1:$web/metrics" 2>/dev/null || true)
    if echo "$metrics" | grep -q '^honcho_exporter_postgres_query_duration_seconds '; then break; fi
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$metrics" | grep -E '^(honcho_exporter_postgres_(query|mapping)_duration_seconds|honcho_exporter_poll_duration_seconds|process_cpu_seconds_total|process_resident_memory_bytes|honcho_exporter_up\{upstream="postgres"\}) '
}
for n in "${sizes[@]}"; do
  db="bench_$n"
  psql -d postgres -c "CREATE DATABASE $db"
  psql -d "$db" -f tests/data/postgres/honcho-3.x.sql
  psql -d "$db" <<SQL
INSERT INTO workspaces (id, name) SELECT 'w' || w, 'workspace-' || w FROM generate_series(0, 49) AS w;
INSERT INTO sessions (id, name, workspace_name)
  SELECT 'S' || lpad(s::text, 20, '0'), 'session-' || s, 'workspace-' || (s % 50)
  FROM generate_series(0, $n / 30) AS s;
INSERT INTO messages (id, workspace_name, content, token_count)
  SELECT i, 'workspace-' || ((i / 3 / 10) % 50), repeat('x', 200), 10 + (i % 400)
  FROM generate_series(1, $n) AS i;
-- unit u = i / 3; session = u / 10; every 4th unit a summary.
INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, created_at, workspace_name, message_id)
  SELECT 'S' || lpad(((i / 3) / 10)::text, 20, '0'), '{"content": "a user message"}', false,
         CASE WHEN (i / 3) % 4 = 0 THEN 'summary' ELSE 'representation' END,
         CASE WHEN (i / 3) % 4 = 0 THEN 'summary:workspace-' || (((i / 3) / 10) % 50) || ':session-' || ((i / 3) / 10) || ':None:None'
              ELSE 'representation:workspace-' || (((i / 3) / 10) % 50) || ':session-' || ((i / 3) / 10) || ':peer-' || (i / 3) END,
         now() - make_interval(secs => ($n - i) * 0.01), 'workspace-' || (((i / 3) / 10) % 50), i
  FROM generate_series(1, $n) AS i;
INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, created_at, workspace_name, message_id)
  SELECT 'S' || lpad((i % ($n / 30))::text, 20, '0'), '{}', true, 'representation',
         'representation:workspace-' || ((i % ($n / 30)) % 50) || ':session-' || (i % ($n / 30)) || ':done-' || i,
         now() - interval '1 hour', 'workspace-' || ((i % ($n / 30)) % 50), NULL
  FROM generate_series(1, $n / 10) AS i;
INSERT INTO active_queue_sessions (id, work_unit_key)
  SELECT DISTINCT 'a' || (i / 3), 'representation:workspace-' || (((i / 3) / 10) % 50) || ':session-' || ((i / 3) / 10) || ':peer-' || (i / 3)
  FROM generate_series(1, $n) AS i WHERE (i / 3) % 20 = 1;
VACUUM ANALYZE;
SQL
  echo "== $n unprocessed rows (+ $((n / 10)) processed), EXPLAIN (ANALYZE, BUFFERS), warm cache"
  # As the exporter runs it (src/postgres/connection.rs): jit off, work_mem 64MB.
  session="SET jit = off; SET work_mem = '64MB'"
  psql -d "$db" -c "$session" -c "SELECT count(*) FROM ($units_sql) AS warm" >/dev/null
  plan=$(psql -d "$db" -At -c "$session" -c "EXPLAIN (ANALYZE, BUFFERS) $units_sql")
  echo "$plan"
  ms=$(echo "$plan" | sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p')
  python3 -c "ms = float('$ms'); print(f'=> EXPLAIN ANALYZE: {ms:.0f} ms for $n unprocessed rows: {ms * 1000 / $n:.2f} µs per unprocessed row (per-node timing inflates it)')"
  # Without instrumentation: the query as the exporter runs it, and a plain GROUP BY over the
  # same rows as the baseline; three runs each, the median.
  timed() {
    psql -d "$db" -c "$session" -c '\timing on' -c "SELECT count(*) FROM ($1) AS timed" \
      -c "SELECT count(*) FROM ($1) AS timed" -c "SELECT count(*) FROM ($1) AS timed" |
      sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | sed -n 2p
  }
  query_ms=$(timed "$units_sql")
  plain_ms=$(timed "SELECT workspace_name, work_unit_key, task_type, session_id, count(*) FROM queue GROUP BY 1, 2, 3, 4")
  python3 -c "q = float('$query_ms'); p = float('$plain_ms'); print(f'=> one-pass query: {q:.0f} ms = {q * 1000 / $n:.2f} µs per unprocessed row; plain GROUP BY of the same rows: {p:.0f} ms = {p * 1000 / $n:.2f} µs')"
  for binary in $EXPORTERS; do exporter_cycle "$db" "$n" "$binary"; done
  psql -d postgres -c "DROP DATABASE $db"
done
