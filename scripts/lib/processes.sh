# Shared by the whole-process scripts (load.sh, soak.sh): builds the release binaries, makes a
# work directory, stops the processes they start on exit, and waits for a line in a log.
# Source it from a script whose working directory is the repository root; the script sets
# `sim_pid` and `exporter_pid` when it starts the processes.

cargo build --release --bins --quiet
bin=target/release
work=$(mktemp -d)
sim_pid=""
exporter_pid=""
cleanup() {
    [ -n "$exporter_pid" ] && kill "$exporter_pid" 2>/dev/null || true
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Wait (bounded, 20 s) until FILE contains a match of the extended regex PATTERN; print the match.
wait_for_match() {
    local file=$1 pattern=$2
    for _ in $(seq 1 200); do
        if match=$(grep -oE "$pattern" "$file" 2>/dev/null | head -n 1) && [ -n "$match" ]; then
            echo "$match"
            return 0
        fi
        sleep 0.1
    done
    echo "timed out waiting for /$pattern/ in $file:" >&2
    cat "$file" >&2
    return 1
}
