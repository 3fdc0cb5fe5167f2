#!/usr/bin/env bash
# Prometheus rules: `promtool check rules` on every rule file, `promtool test rules` on every unit
# test under deploy/prometheus/tests/, every alert has a firing and a not-firing test, and the
# example Alertmanager configuration (deploy/alertmanager/alertmanager.yml): `amtool
# check-config`, its routing per severity, and that every alert its inhibit rules name exists.
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

# Every alert must be exercised by the unit tests: named in some alert_rule_test, with at least one
# expected alert and at least one empty expectation (a firing and a not-firing case).
echo "--> every alert has a firing and a not-firing unit test"
python3 - "${rule_files[@]}" -- "${test_files[@]}" <<'PY'
import sys
import yaml

args = sys.argv[1:]
split = args.index("--")
rule_files, test_files = args[:split], args[split + 1:]
alerts = set()
for path in rule_files:
    for group in (yaml.safe_load(open(path)) or {}).get("groups", []):
        for rule in group.get("rules", []):
            if "alert" in rule:
                alerts.add(rule["alert"])
firing, silent = set(), set()
for path in test_files:
    for test in (yaml.safe_load(open(path)) or {}).get("tests", []):
        for case in test.get("alert_rule_test", []) or []:
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
missing = [f"{a}: no firing case" for a in sorted(alerts - firing)]
missing += [f"{a}: no not-firing case" for a in sorted(alerts - silent)]
for line in missing:
    print(f"rules.sh: {line}", file=sys.stderr)
if not alerts:
    print("rules.sh: no alerts found", file=sys.stderr)
    sys.exit(1)
sys.exit(1 if missing else 0)
PY

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
echo "--> every alert named by an inhibit rule exists"
python3 - "$alertmanager_config" "${rule_files[@]}" <<'PY'
import re
import sys
import yaml

config = yaml.safe_load(open(sys.argv[1]))
alerts = set()
for path in sys.argv[2:]:
    for group in (yaml.safe_load(open(path)) or {}).get("groups", []):
        alerts.update(rule["alert"] for rule in group.get("rules", []) if "alert" in rule)
problems = []
for index, rule in enumerate(config.get("inhibit_rules") or []):
    for key in ("source_matchers", "target_matchers"):
        for matcher in rule.get(key) or []:
            match = re.fullmatch(r'alertname(=~|=)"([^"]*)"', matcher.replace(" ", ""))
            if not match:
                continue
            for name in match.group(2).split("|"):
                if name not in alerts:
                    problems.append(f"inhibit rule #{index} {key}: no alert named {name}")
for problem in problems:
    print(f"rules.sh: {problem}", file=sys.stderr)
sys.exit(1 if problems or not config.get("inhibit_rules") else 0)
PY
echo "rules.sh: OK"
