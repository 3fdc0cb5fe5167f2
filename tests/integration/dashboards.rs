//! Dashboards and Prometheus rules are checked outside Rust, by `scripts/checks/dashboards.sh`
//! (`scripts/lint_dashboards.py`: Grafana conventions, metric names against
//! `dashboards/exported-metrics.txt`, every panel query parsed by promtool) and
//! `scripts/checks/rules.sh` (`promtool check rules` / `promtool test rules`); `scripts/test.sh`
//! runs both. This module holds no tests of its own.
