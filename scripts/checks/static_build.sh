#!/usr/bin/env bash
# Proves the Dockerfile's build recipe on this machine without a Docker engine: the static musl
# binary of honcho_exporter builds with exactly the Dockerfile's command, is statically linked,
# and runs (--version). Fails (never skips) when a step cannot be done, naming what is missing.
#   rustup target add x86_64-unknown-linux-musl   (needs rustup's distribution server)
#   apt-get install musl-tools                     (musl-gcc, for ring's C and assembly)
#   cargo build --release --locked --target x86_64-unknown-linux-musl -p honcho_exporter --no-default-features --bin honcho_exporter
# and that binary carries no simulator (no `/_sim` admin paths: the `demo` feature is off).
# The first run builds every dependency for the musl target (several minutes on 2 cores);
# later runs reuse target/x86_64-unknown-linux-musl.
set -euo pipefail
cd "$(dirname "$0")/../.."

musl_target=x86_64-unknown-linux-musl
fail() {
  echo "static_build: FAILED: $*" >&2
  exit 1
}
started=$SECONDS

# The Dockerfile's `FROM rust:1-bookworm` image pins the toolchain the same way.
if ! rustup target list --installed | grep -qx "$musl_target"; then
  echo "==> rustup target add $musl_target"
  rustup target add "$musl_target" \
    || fail "rustup could not install the $musl_target standard library (no access to rustup's distribution server?). The Dockerfile's recipe needs it; install it with 'rustup target add $musl_target' where the network allows."
fi

if ! command -v musl-gcc >/dev/null 2>&1; then
  echo "==> apt-get install musl-tools"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -qq --no-install-recommends musl-tools >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends musl-tools >/dev/null; }; } \
    || fail "could not install Debian's musl-tools (musl-gcc), which the musl build of ring needs"
fi
command -v file >/dev/null 2>&1 || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends file >/dev/null 2>&1 \
    || fail "could not install 'file' to inspect the binary"
}

echo "==> cargo build --release --locked --target $musl_target -p honcho_exporter --no-default-features --bin honcho_exporter"
cargo build --release --locked --target "$musl_target" -p honcho_exporter --no-default-features --bin honcho_exporter
binary="target/$musl_target/release/honcho_exporter"
[ -x "$binary" ] || fail "the build succeeded but $binary is missing"

description=$(file -b "$binary")
echo "    file: $description"
case "$description" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) fail "$binary is not statically linked: $description" ;;
esac
case "$description" in
  *"dynamically linked"* | *"interpreter"*) fail "$binary asks for a dynamic loader: $description" ;;
esac
# ldd exits non-zero and says "not a dynamic executable" (or "statically linked") for static binaries.
ldd_output=$(ldd "$binary" 2>&1 || true)
echo "    ldd: $ldd_output"
case "$ldd_output" in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *) fail "ldd reports shared libraries for $binary: $ldd_output" ;;
esac

# The simulator's admin API lives under /_sim; the production binary must not contain it.
if grep -q -a "/_sim" "$binary"; then
  fail "$binary contains /_sim strings: the simulator was linked in (is the demo feature on?)"
fi
echo "    no /_sim strings (no simulator linked)"

version=$("$binary" --version) || fail "$binary --version did not run"
echo "    $version"
case "$version" in
  "honcho_exporter "*) ;;
  *) fail "unexpected --version output: $version" ;;
esac
echo "static_build: OK: $binary ($(stat -c %s "$binary") bytes) in $((SECONDS - started)) s"
