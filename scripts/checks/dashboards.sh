#!/usr/bin/env bash
# Dashboards and rule files: the lint of tests/integration/dashboard_lint.rs (Grafana
# conventions, metric names against dashboards/exported-metrics.txt, rule fields; it must also
# report every problem planted in scripts/testdata/, so it cannot pass vacuously), every panel
# query parsed by `promtool check rules` (written to a temporary rule file by the same module),
# and the `# param:` markers (tests/integration/dashboards.rs). promtool is required here
# (HONCHO_EXPORTER_FULL_TESTS=1: a missing tool fails instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "dashboards.sh: promtool not found (Debian package 'prometheus'; scripts/test.sh installs it)" >&2
  exit 1
fi

echo "--> cargo test --test integration dashboard_lint:: dashboards::"
HONCHO_EXPORTER_FULL_TESTS=1 cargo test --quiet --test integration -- dashboard_lint:: dashboards::
echo "dashboards.sh: OK"
