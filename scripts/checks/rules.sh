#!/usr/bin/env bash
# Prometheus rules: `promtool check rules` on every rule file, `promtool test rules` on every unit
# test under deploy/prometheus/tests/, and the example Alertmanager configuration
# (deploy/alertmanager/alertmanager.yml): `amtool check-config` and its routing per severity.
# That every alert has a firing and a not-firing test, and that every alert the inhibit rules
# name exists, are Rust tests (tests/integration/dashboard_lint.rs), run here.
# (The e2e `# param:` override mechanism is checked in Rust, by the one parser of the convention:
# tests/integration/dashboards.rs.) Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "rules.sh: promtool not found (Debian package 'prometheus'; scripts/test.sh installs it)" >&2
  exit 1
fi

if ! command -v amtool >/dev/null 2>&1; then
  echo "rules.sh: amtool not found (Debian package 'prometheus-alertmanager'; scripts/test.sh installs it)" >&2
  exit 1
fi

shopt -s nullglob
rule_files=(deploy/prometheus/*.rules.yml)
test_files=(deploy/prometheus/tests/*.yml)
if [ ${#rule_files[@]} -eq 0 ] || [ ${#test_files[@]} -eq 0 ]; then
  echo "rules.sh: no rule files or no rule tests found under deploy/prometheus/" >&2
  exit 1
fi

echo "--> promtool check rules ${rule_files[*]}"
promtool check rules "${rule_files[@]}"

echo "--> promtool test rules ${test_files[*]}"
promtool test rules "${test_files[@]}"

# Every alert must be exercised by the unit tests (a firing and a not-firing case), and every
# alert an inhibit rule of the Alertmanager example names must exist: Rust tests over the files.
echo "--> every alert has a firing and a not-firing unit test; inhibit rules name real alerts"
cargo test --quiet --test integration -- dashboard_lint::every_alert_has_a_firing_and_a_not_firing_unit_test dashboard_lint::every_alert_an_inhibit_rule_names_exists

# The e2e override mechanism (`# param:` markers, deploy/prometheus/e2e-overrides.md) applied to
# every marker is checked in Rust, by the one parser of the convention:
# tests/integration/dashboards.rs (overriding_every_marker_keeps_the_rules_valid).

alertmanager_config=deploy/alertmanager/alertmanager.yml
echo "--> amtool check-config $alertmanager_config"
amtool check-config "$alertmanager_config"
echo "--> routing: critical pages, warning and info make tickets"
for case in "honcho-pager severity=critical" "honcho-tickets severity=warning" "honcho-tickets severity=info"; do
  set -- $case
  amtool config routes test --config.file="$alertmanager_config" --verify.receivers="$1" "$2" alertname=HonchoExample >/dev/null 2>&1 \
    || { echo "rules.sh: $2 is not routed to $1" >&2; exit 1; }
done
echo "rules.sh: OK"
