#!/usr/bin/env bash
# The database source at scale (issue 19): a throwaway PostgreSQL 15 cluster with Honcho 3.x's
# tables and indexes (tests/data/postgres/honcho-3.x.sql; the indexes are built after the load),
# loaded with generate_series: ROWS unprocessed queue rows over WORKSPACES workspaces (3 rows per
# work unit, one message each with 10–409 tokens, 10 units per session, every 4th unit a
# summary, 1 unit in 20 claimed, ages spread so that ready, stalled and overdue units all occur)
# plus ROWS/10 processed rows. For each size it prints
#   - the cycle query's own database time (src/source/postgres/queries.rs CYCLE, as the exporter
#     runs it: jit off, work_mem 64MB; EXPLAIN (ANALYZE, TIMING OFF) = no per-node timing
#     overhead, median of three) and per unprocessed row, unsharded and for each of 4 shards;
#   - for each exporter binary in EXPORTERS (default target/release/honcho_exporter): one full
#     cycle's own figures from its /metrics (cycle, database, mapping), its CPU and RSS after the
#     cycle, the series it exports and a scrape's latency; unsharded, then 4 shards one by one;
#   - for a BASELINE binary (e.g. the build before a change): the unsharded cycle only;
#   - with QUERY_EXPORTER=1: query-exporter (PyPI, in a venv under /tmp) running the same cycle
#     query's aggregates (scripts/bench/query_exporter.yaml) on the same database.
#
#   scripts/bench/postgres_scale.sh 1000000:1000 10000000:100000
#
# Runs as the postgres OS user when started as root. Stops the cluster and removes its directory
# at the end. Output lines starting with `=>` are the results (scripts/bench.sh collects them).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=/usr/lib/postgresql/15/bin
cases=("$@")
[ $# -eq 0 ] && cases=(1000000:1000)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d "${BENCH_PG_DIR:-/tmp}/honcho-exporter-scale-pg-XXXXXX")
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
port=$(free_port)
as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
as_pg "$BIN/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c shared_buffers=1GB -c fsync=off -c full_page_writes=off -c max_wal_size=8GB -c maintenance_work_mem=512MB" \
  start >/dev/null
trap 'as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
constant() {
  python3 - "$1" <<'PY'
import sys
text = open("src/source/postgres/queries.rs").read()
head = f'pub const {sys.argv[1]}: &str = "'
start = text.index(head) + len(head)
if text.startswith("\\\n", start):
    start += 2
print(text[start:text.index('";', start)].replace('\\"', '"'))
PY
}
cycle_sql=$(constant CYCLE)
workspaces_sql=$(constant WORKSPACES)
# The DDL without its indexes (built after the load), and the indexes alone.
python3 - "$dir" <<'PY'
import sys
ddl = "\n".join(line for line in open("tests/data/postgres/honcho-3.x.sql").read().splitlines()
                if not line.lstrip().startswith("--"))
statements = [s.strip() for s in ddl.split(";") if s.strip()]
is_index = lambda s: "CREATE INDEX" in s or "CREATE UNIQUE INDEX" in s
open(f"{sys.argv[1]}/tables.sql", "w").write(";\n".join(s for s in statements if not is_index(s)) + ";\n")
open(f"{sys.argv[1]}/indexes.sql", "w").write(";\n".join(s for s in statements if is_index(s)) + ";\n")
PY
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"/*.sql
echo "PostgreSQL: $("$BIN/postgres" --version); CPU: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
EXPORTER=${EXPORTER:-target/release/honcho_exporter}
EXPORTERS=${EXPORTERS:-$EXPORTER}
session="SET jit = off; SET work_mem = '64MB'"

# The cycle query's own cost for one selection at defaults (detail limit 20, threshold 1024,
# flush off, overdue 1815 s; $3, the workspaces returned in full, NULL for all — the exporter at
# its default ceiling of 250 asks for 275 when more are selected, see full_for): "rows ms cpu_ms" of the median of REPEATS runs (default three) —
# the rows returned, the execution time without per-node timing (EXPLAIN (ANALYZE, TIMING OFF))
# and the server backend's own CPU time for the statement (utime + stime from /proc, which other
# load on the machine does not inflate the way it inflates wall time).
query_ms() {
  local db=$1 selection=$2 full=$3
  local boundary
  boundary=$(python3 -c 'import time; print(int((time.time() - 1815) * 1e6))')
  for _ in $(seq 1 "${REPEATS:-3}"); do
    psql -d "$db" -At -f - <<SQL | tr '\n' ' ' | python3 -c '
import re, sys
text = sys.stdin.read()
ticks = [int(t) for t in re.findall(r"TICKS (\d+)", text)]
rows = re.search(r"actual rows=(\d+)", text).group(1)
ms = re.search(r"Execution Time: ([0-9.]+) ms", text).group(1)
print(rows, ms, (ticks[1] - ticks[0]) * 10)'
$session;
PREPARE cycle(text[], int8, bool, int8, int8, text[], text[], text[], int8) AS $cycle_sql;
SELECT pg_backend_pid() AS backend \gset
\setenv BACKEND :backend
\! awk '{print "TICKS", \$14 + \$15}' /proc/\$BACKEND/stat
EXPLAIN (ANALYZE, TIMING OFF) EXECUTE cycle($selection, 1024, false, $boundary, 20, '{}', '{}', '{}', $full);
\! awk '{print "TICKS", \$14 + \$15}' /proc/\$BACKEND/stat
SQL
  done | sort -n -k2 | sed -n "$(( (${REPEATS:-3} + 1) / 2 ))p"
}

# `$9` of the exporter at its defaults for COUNT selected workspaces: max_exported 250 + the
# hysteresis margin 25 when more are selected, else NULL (all in full).
full_for() { if [ "$1" -gt 275 ]; then echo 275; else echo NULL; fi; }

# The workspaces of one shard as a text[] literal (the exporter's own FNV-1a 64 shard hash).
shard_array() {
  local db=$1 count=$2 index=$3
  psql -d "$db" -At -c "$workspaces_sql" | python3 -c "
import sys
def shard(name):
    h = 0xcbf29ce484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001b3) % (1 << 64)
    return h % $count
names = [l.strip() for l in sys.stdin if l.strip() and shard(l.strip()) == $index]
print(\"'{\" + ','.join('\"' + n + '\"' for n in names) + \"}'\")"
}

# One exporter cycle: its own figures, CPU, RSS, series and a scrape's latency.
exporter_cycle() {
  local db=$1 exporter=$2 label=$3
  shift 3
  local web
  web=$(free_port)
  HONCHO_EXPORTER_POSTGRES_PASSWORD=bench-password "$exporter" --source=postgres \
    --postgres.url="postgres://honcho_exporter@127.0.0.1:$port/$db?sslmode=disable" \
    --poll.interval=600s --poll.timeout=300s --postgres.statement-timeout=290s \
    --web.listen-address="127.0.0.1:$web" --log.level=warn "$@" &
  local pid=$!
  local metrics=""
  for _ in $(seq 1 1200); do
    sleep 0.5
    metrics=$(curl -fsS "http://127.0.0.1:$web/metrics" 2>/dev/null || true)
    if grep -q "^honcho_exporter_postgres_query_duration_seconds " <<<"$metrics"; then break; fi
  done
  local cpu rss
  cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
  rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  local scrape
  scrape=$(python3 - "http://127.0.0.1:$web/metrics" <<'PY'
import sys, time, urllib.request
times = []
for _ in range(5):
    started = time.perf_counter()
    body = urllib.request.urlopen(sys.argv[1]).read()
    times.append(time.perf_counter() - started)
series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
times.sort()
print(f"{series} {times[2] * 1000:.1f}")
PY
)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  value() { echo "$metrics" | sed -n "s/^$1 \([0-9.e+-]*\)$/\1/p" | head -1; }
  echo "=> exporter $label: cycle $(value honcho_exporter_poll_duration_seconds) s, database $(value honcho_exporter_postgres_query_duration_seconds) s, mapping $(value honcho_exporter_postgres_mapping_duration_seconds) s, process CPU $cpu s, peak RSS $((rss / 1024)) MiB, series ${scrape% *}, scrape ${scrape#* } ms, up $(value 'honcho_exporter_up{upstream="postgres"}')"
}

for case in "${cases[@]}"; do
  n=${case%%:*}
  w=${case#*:}
  db="scale_${n}_$w"
  started=$(date +%s)
  psql -d postgres -c "CREATE DATABASE $db"
  psql -d "$db" -f "$dir/tables.sql"
  psql -d "$db" <<SQL
INSERT INTO workspaces (id, name) SELECT 'w' || x, 'workspace-' || x FROM generate_series(0, $w - 1) AS x;
-- unit u = (i - 1) / 3; session s = u / 10; workspace of session s = s % W.
INSERT INTO sessions (id, name, workspace_name)
  SELECT 'S' || lpad(s::text, 20, '0'), 'session-' || s, 'workspace-' || (s % $w)
  FROM generate_series(0, ($n / 3) / 10) AS s;
INSERT INTO messages (id, workspace_name, content, token_count)
  SELECT i, 'workspace-' || ((((i - 1) / 3) / 10) % $w), repeat('x', 100), 10 + (i % 400)
  FROM generate_series(1, $n) AS i;
INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, created_at, workspace_name, message_id)
  SELECT 'S' || lpad((u / 10)::text, 20, '0'), '{"content": "a user message"}', false,
         CASE WHEN u % 4 = 0 THEN 'summary' ELSE 'representation' END,
         CASE WHEN u % 4 = 0 THEN 'summary:workspace-' || ((u / 10) % $w) || ':session-' || (u / 10) || ':None:None'
              ELSE 'representation:workspace-' || ((u / 10) % $w) || ':session-' || (u / 10) || ':peer-' || u END,
         now() - make_interval(secs => (u % 3600)), 'workspace-' || ((u / 10) % $w), i
  FROM (SELECT i, (i - 1) / 3 AS u FROM generate_series(1, $n) AS i) AS r;
INSERT INTO queue (session_id, payload, processed, task_type, work_unit_key, created_at, workspace_name, message_id)
  SELECT 'S' || lpad((s)::text, 20, '0'), '{}', true, 'representation',
         'representation:workspace-' || (s % $w) || ':session-' || s || ':done-' || i,
         now() - interval '1 hour', 'workspace-' || (s % $w), NULL
  FROM (SELECT i, i % (($n / 3) / 10 + 1) AS s FROM generate_series(1, $n / 10) AS i) AS r;
INSERT INTO active_queue_sessions (id, work_unit_key)
  SELECT 'a' || u, 'representation:workspace-' || ((u / 10) % $w) || ':session-' || (u / 10) || ':peer-' || u
  FROM generate_series(1, $n / 3 - 1, 20) AS u;
SQL
  psql -d "$db" -f "$dir/indexes.sql"
  psql -d "$db" -c "VACUUM ANALYZE"
  psql -d "$db" -v password=bench-password -f deploy/postgres/grant.sql >/dev/null
  echo "== $n unprocessed rows (+ $((n / 10)) processed) over $w workspaces, $((n / 3)) work units, $((n / 30)) sessions: loaded in $(( $(date +%s) - started )) s, database $(psql -d "$db" -At -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
  if [ "${HOLD:-0}" = 1 ]; then
    # Keep the loaded cluster for experiments until $dir/hold is removed.
    touch "$dir/hold"
    echo "holding: psql -h 127.0.0.1 -p $port -U postgres -d $db; rm $dir/hold to go on"
    while [ -e "$dir/hold" ]; do sleep 2; done
  fi
  psql -d "$db" -At -c "$session" -c "PREPARE cycle(text[], int8, bool, int8, int8, text[], text[], text[], int8) AS $cycle_sql" \
    -c "SELECT count(*) FROM cycle(NULL, 1024, false, 0, 10, '{}', '{}', '{}', NULL)" >/dev/null 2>&1 || true
  read -r rows one_all one_all_cpu <<<"$(query_ms "$db" NULL NULL)"
  echo "=> query, all workspaces, all in full (no ceiling): $one_all ms = $(python3 -c "print(f'{$one_all * 1000 / $n:.2f}')") µs per unprocessed row (backend CPU $one_all_cpu ms), $rows rows returned"
  read -r rows one one_cpu <<<"$(query_ms "$db" NULL "$(full_for "$w")")"
  echo "=> query, all workspaces, at the default ceiling: $one ms = $(python3 -c "print(f'{$one * 1000 / $n:.2f}')") µs per unprocessed row (backend CPU $one_cpu ms = $(python3 -c "print(f'{$one_cpu * 1000 / $n:.2f}')") µs per row), $rows rows returned"
  sum=0
  sum_cpu=0
  for index in 0 1 2 3; do
    array=$(shard_array "$db" 4 "$index")
    count=$(( $(tr -cd ',' <<<"$array" | wc -c) + 1 ))
    read -r rows ms cpu <<<"$(query_ms "$db" "$array" "$(full_for "$count")")"
    echo "=> query, shard $index of 4: $ms ms (backend CPU $cpu ms), $rows rows returned"
    sum=$(python3 -c "print($sum + $ms)")
    sum_cpu=$(python3 -c "print($sum_cpu + $cpu)")
  done
  echo "=> query, 4 shards together: $sum ms = $(python3 -c "print(f'{$sum / $one:.2f}')") x one pass; backend CPU $sum_cpu ms = $(python3 -c "print(f'{$sum_cpu / max($one_cpu, 1):.2f}')") x one pass"
  for binary in ${BASELINE:-}; do exporter_cycle "$db" "$binary" "$binary all (baseline)"; done
  for binary in $EXPORTERS; do
    exporter_cycle "$db" "$binary" "$binary all"
    [ "${EXPORTER_SHARDS:-1}" = 1 ] || continue
    for index in 0 1 2 3; do
      exporter_cycle "$db" "$binary" "$binary shard $index/4" --shard.count=4 --shard.index="$index"
    done
  done
  if [ "${QUERY_EXPORTER:-0}" = 1 ]; then
    scripts/bench/query_exporter.sh 127.0.0.1 "$port" "$db" || echo "=> query-exporter: failed"
  fi
  psql -d postgres -c "DROP DATABASE $db"
done
