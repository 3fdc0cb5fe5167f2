#!/usr/bin/env bash
# Dashboards and rule files: scripts/lint_dashboards.py on the shipped files (must pass), every
# panel query parsed by promtool, and the linter run on deliberately bad inputs under
# scripts/testdata/ (must fail, naming each planted problem), so the check cannot pass vacuously.
set -euo pipefail
cd "$(dirname "$0")/../.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "--> lint_dashboards.py on dashboards/*.json and deploy/prometheus/*.rules.yml"
python3 scripts/lint_dashboards.py --emit-promql-rules "$tmp/panel-queries.rules.json"

if command -v promtool >/dev/null 2>&1; then
  echo "--> promtool parses every dashboard query"
  promtool check rules "$tmp/panel-queries.rules.json"
else
  echo "dashboards.sh: promtool not found (Debian package 'prometheus'; scripts/test.sh installs it)" >&2
  exit 1
fi

echo "--> lint_dashboards.py on scripts/testdata/ (must fail)"
set +e
python3 scripts/lint_dashboards.py --rules scripts/testdata/bad.rules.yml -- scripts/testdata/bad-dashboard.json scripts/testdata/not-json.json >"$tmp/bad.out" 2>&1
status=$?
set -e
if [ "$status" -eq 0 ]; then
  echo "dashboards.sh: the linter accepted scripts/testdata/bad-dashboard.json" >&2
  exit 1
fi
# Each planted problem must be reported (one expected substring per line).
missing=0
while IFS= read -r expected; do
  [ -z "$expected" ] && continue
  case "$expected" in \#*) continue ;; esac
  if ! grep -qF -- "$expected" "$tmp/bad.out"; then
    echo "dashboards.sh: the linter did not report: $expected" >&2
    missing=1
  fi
done <scripts/testdata/bad-expected-problems.txt
if [ "$missing" -ne 0 ]; then
  echo "--- linter output:" >&2
  cat "$tmp/bad.out" >&2
  exit 1
fi
echo "dashboards.sh: OK"
