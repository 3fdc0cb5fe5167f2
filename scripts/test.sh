#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with a Rust toolchain. Installs what it needs:
# Debian's `prometheus` package (prometheus + promtool), `prometheus-alertmanager`
# (prometheus-alertmanager + amtool) and Python's `prometheus_client` (the
# strict OpenMetrics parser). Then: fmt, clippy, cargo tests, and every scripts/checks/*.sh.
set -euo pipefail
# Every test that needs an outside tool runs: a missing tool is a failure, not a skip.
export HONCHO_EXPORTER_FULL_TESTS=1
cd "$(dirname "$0")/.."

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
{ command -v amtool && command -v prometheus-alertmanager; } >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts the packaged Prometheus as a service; the tests start their own.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus prometheus-node-exporter prometheus-alertmanager 2>/dev/null || true; fi
fi
python_needs=()
python3 -c 'import prometheus_client' 2>/dev/null || python_needs+=(prometheus_client)
python3 -c 'import yaml' 2>/dev/null || python_needs+=(pyyaml)
if [ ${#python_needs[@]} -gt 0 ]; then
  echo "==> installing ${python_needs[*]} (pip)"
  python3 -m pip install -q "${python_needs[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${python_needs[@]}"
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --all-targets --quiet 2>&1 | tee target/cargo-test.log
# Doc tests run separately (--all-targets skips them).
cargo test --doc --quiet

for check in scripts/checks/*.sh; do
  [ -e "$check" ] || continue
  echo "==> $check"
  bash "$check"
done
echo "==> all tests passed"
