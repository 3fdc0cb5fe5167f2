#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with a Rust toolchain. Installs what it needs:
# Debian's `prometheus` (prometheus + promtool), `prometheus-alertmanager` (alertmanager +
# amtool), `postgresql`, `chromium` and `chromium-driver` (the status page's browser test)
# packages, and Python's `prometheus_client` (the strict OpenMetrics
# parser) and `pyyaml`. Then: fmt, clippy, the workspace's cargo tests
# (the exporter and crates/honcho-sim), and every scripts/checks/*.sh. Prints
# each stage's wall time at the end (also when a stage fails), so the suite's cost stays visible.
set -euo pipefail
# Every test that needs an outside tool runs: a missing tool is a failure, not a skip.
export HONCHO_EXPORTER_FULL_TESTS=1
cd "$(dirname "$0")/.."

stage_names=()
stage_seconds=()
stage_started=$SECONDS
current_stage=""
# Starts stage $1, closing the one before it.
stage() {
  finish_stage
  current_stage="$1"
  stage_started=$SECONDS
  echo "==> $1"
}
finish_stage() {
  if [ -n "$current_stage" ]; then
    stage_names+=("$current_stage")
    stage_seconds+=($((SECONDS - stage_started)))
    current_stage=""
  fi
}
print_stage_times() {
  local status=$?
  finish_stage
  echo
  echo "stage times (total ${SECONDS} s):"
  local index
  for index in "${!stage_names[@]}"; do
    printf '  %5d s  %s\n' "${stage_seconds[$index]}" "${stage_names[$index]}"
  done
  if [ "$status" -ne 0 ]; then echo "FAILED in stage: ${stage_names[-1]:-setup} (exit $status)"; fi
}
trap print_stage_times EXIT

stage "install missing tools"
need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
{ command -v amtool && command -v prometheus-alertmanager; } >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
# The database source's tests run PostgreSQL 15's binaries (Debian 12).
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# The status page's browser test drives headless Chromium through chromedriver (WebDriver).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# curl: a zlib-based client that reads only the first gzip member (end_to_end's gzip test).
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "    apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts the packaged services; the tests start their own on free loopback ports.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl stop prometheus prometheus-node-exporter prometheus-alertmanager postgresql 2>/dev/null || true
  fi
  service postgresql stop >/dev/null 2>&1 || true
fi
python_needs=()
python3 -c 'import prometheus_client' 2>/dev/null || python_needs+=(prometheus_client)
python3 -c 'import yaml' 2>/dev/null || python_needs+=(pyyaml)
if [ ${#python_needs[@]} -gt 0 ]; then
  echo "    pip install ${python_needs[*]}"
  python3 -m pip install -q "${python_needs[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${python_needs[@]}"
fi

stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo clippy (workspace: the exporter and crates/honcho-sim)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
stage "cargo clippy (exporter without the demo feature: no simulator)"
cargo clippy -p honcho_exporter --no-default-features --lib --bins --quiet -- -D warnings
stage "cargo test --workspace"
mkdir -p target
cargo test --workspace --all-targets --quiet 2>&1 | tee target/cargo-test.log
# Doc tests run separately (--all-targets skips them).
stage "cargo test --workspace --doc"
cargo test --workspace --doc --quiet

for check in scripts/checks/*.sh; do
  [ -e "$check" ] || continue
  stage "$check"
  bash "$check"
done
finish_stage
echo "==> all tests passed"
