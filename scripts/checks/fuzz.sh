#!/usr/bin/env bash
# Fuzz smoke run for CI: builds the cargo-fuzz targets of fuzz/ (the JSON decoding of every
# Honcho response type the exporter reads, and the exposition renderer) and runs EACH for a
# short bounded time, seeded from fuzz/seeds/<target>/ (the real fixtures plus edge cases).
# Exits non-zero if any target crashes, times out, runs out of memory or fails to build, and
# prints the crashing input's path (and the input itself, base64) for each.
#
# Toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer=…, -Cpasses=sancov-module).
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them, so no nightly is needed.
#
# Knobs (environment):
#   FUZZ_SECONDS    seconds of fuzzing per target (default 20)
#   FUZZ_SANITIZER  address (default) | none
#   FUZZ_TARGETS    space-separated subset of targets (default: all, from `cargo fuzz list`)
#
# The working corpus grows in fuzz/corpus/<target>/ (gitignored); crash inputs land in
# fuzz/artifacts/<target>/. A real library bug found this way is committed under
# fuzz/artifacts-found/<target>/ (see its README; those inputs are replayed every run and by
# `cargo test`) and fixed in src/, never silenced here.
set -euo pipefail
cd "$(dirname "$0")/../.."

fuzz_seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-address}"
export CARGO_TARGET_DIR="$PWD/fuzz/target"
export RUSTC_BOOTSTRAP=1

case "$fuzz_seconds" in
  '' | *[!0-9]*) echo "fuzz.sh: FUZZ_SECONDS must be a whole number, got '$fuzz_seconds'" >&2; exit 2 ;;
esac
case "$sanitizer" in
  address | none) ;;
  *) echo "fuzz.sh: FUZZ_SANITIZER must be 'address' or 'none', got '$sanitizer'" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz not found; installing it (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi
echo "fuzz.sh: $(cargo fuzz --version), $(rustc --version), sanitizer=$sanitizer, ${fuzz_seconds}s per target"

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets found in fuzz/Cargo.toml" >&2
  exit 1
fi

# One build for all targets (release, debug assertions and overflow checks on: cargo-fuzz's
# defaults), with the same flags `cargo fuzz run` uses below, so that run does not rebuild.
build_flags=(--fuzz-dir fuzz --sanitizer "$sanitizer")
build_start=$SECONDS
cargo fuzz build "${build_flags[@]}"
echo "fuzz.sh: built ${#targets[@]} targets in $((SECONDS - build_start))s"

failed=()
for target in "${targets[@]}"; do
  seeds="fuzz/seeds/$target"
  corpus="fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
    echo "fuzz.sh: $target has no seeds in $seeds" >&2
    failed+=("$target (no seeds)")
    continue
  fi
  mkdir -p "$corpus" "$artifacts"
  dictionary=()
  if [ "$target" != render ]; then
    dictionary=(-dict=fuzz/json.dict)
  fi
  marker="$(mktemp)"
  echo "fuzz.sh: fuzzing $target for ${fuzz_seconds}s"
  # libFuzzer: new inputs go into the first corpus directory; the seeds (and the inputs that
  # once crashed the library, fuzz/artifacts-found/<target>/) are read only.
  found_dirs=()
  if [ -d "fuzz/artifacts-found/$target" ]; then
    found_dirs=("fuzz/artifacts-found/$target")
  fi
  # The outer `timeout` bounds a run that libFuzzer itself fails to stop.
  status=0
  timeout --kill-after=10 $((fuzz_seconds + 120)) \
    cargo fuzz run "${build_flags[@]}" "$target" "$corpus" "$seeds" "${found_dirs[@]}" -- \
    -max_total_time="$fuzz_seconds" -timeout=5 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -print_final_stats=1 "${dictionary[@]}" || status=$?
  if [ "$status" -ne 0 ]; then
    failed+=("$target (exit $status)")
    echo "fuzz.sh: $target FAILED (exit $status)" >&2
    found=0
    while IFS= read -r -d '' input; do
      found=1
      echo "fuzz.sh: crash input: $input ($(wc -c <"$input") bytes)" >&2
      echo "fuzz.sh:   base64: $(head -c 4096 "$input" | base64 -w0)" >&2
      echo "fuzz.sh:   reproduce: RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=fuzz/target cargo fuzz run --fuzz-dir fuzz --sanitizer $sanitizer $target $input" >&2
    done < <(find "$artifacts" -type f -newer "$marker" -print0)
    if [ "$found" -eq 0 ]; then
      echo "fuzz.sh:   no new input under $artifacts (a build failure, or killed by the outer timeout)" >&2
    fi
  fi
  rm -f "$marker"
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${fuzz_seconds}s each without a crash"
