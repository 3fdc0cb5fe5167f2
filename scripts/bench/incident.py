#!/usr/bin/env python3
"""The 403 s incident of issue 9, time-scaled, as a whole-process benchmark.

Starts the release honcho-sim (generation C, frozen queue) with per-workspace sizes and the
Honcho cost model at a speed factor S, and one release exporter (--poll.interval 15s, timeout
10 s, max staleness 45 s, rate bound 50/s, all scaled by S), scrapes /metrics every scaled
second for a fixed scaled duration, and reports per workspace (in modelled seconds, i.e. real
seconds x S): the time to the first publication of its queue series (honcho_queue_items), the
longest gap in which they were absent (from the exporter's start, so a workspace never published
has a gap of the whole run), and Honcho's busy fraction and peak requests in flight from the
simulator's cost meter (GET /_sim/cost).

    incident.py --sim target/release/honcho-sim --exporter target/release/honcho_exporter \
        [--speed 10] [--duration 600] [--label after] [--json out.json]

Uses only 127.0.0.1 with ports chosen free at run time; stops both processes it starts.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

# The measured mix of issue 9: (workspaces, work units, queue rows).
SIZES = [(1, 50_000, 150_000), (1, 10_000, 30_000)]
SMALL_WORKSPACES = 48
SMALL_UNITS = 20
SMALL_ROWS = 300


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def duration(value):
    """A duration the exporter parses: whole milliseconds."""
    return f"{max(1, round(value * 1000))}ms"


def published(body):
    """Workspaces with at least one honcho_queue_items sample."""
    found = set()
    for line in body.splitlines():
        if line.startswith("honcho_queue_items{"):
            labels = line[line.index("{") + 1 : line.index("}")]
            for pair in labels.split(","):
                key, _, value = pair.partition("=")
                if key == "workspace":
                    found.add(value.strip('"'))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", required=True)
    parser.add_argument("--exporter", required=True)
    parser.add_argument("--speed", type=float, default=10.0, help="modelled seconds per real second")
    parser.add_argument("--duration", type=float, default=600.0, help="modelled seconds")
    parser.add_argument("--label", default="run")
    parser.add_argument("--json", help="write the full per-workspace result here")
    parser.add_argument("--logs", default=".", help="directory for the two processes' logs")
    args = parser.parse_args()
    speed = args.speed
    workspaces = sum(count for count, _, _ in SIZES) + SMALL_WORKSPACES
    sim_log = open(os.path.join(args.logs, f"incident-{args.label}.sim.log"), "w")
    sim_cmd = [args.sim, "--listen", "127.0.0.1:0", "--speed", "0", "--seed", "9",
               "--workspaces", str(workspaces), "--sessions-per-workspace", "2",
               "--work-units-per-workspace", str(SMALL_UNITS),
               "--cost-speed", str(speed), "--cost-default-rows", str(SMALL_ROWS)]
    for count, units, rows in SIZES:
        sim_cmd += ["--size", f"{count}x{units}:{rows}"]
    processes = []
    try:
        sim = subprocess.Popen(sim_cmd, stdout=subprocess.PIPE, stderr=sim_log, text=True)
        processes.append(sim)
        line = sim.stdout.readline()
        if not line.startswith("listening on "):
            sys.exit(f"honcho-sim did not start: {line!r} (see {sim_log.name})")
        sim_url = line.split()[-1]
        port = free_port()
        exporter_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env["HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND"] = str(50 * speed)
        exporter_cmd = [args.exporter, "--web.listen-address", f"127.0.0.1:{port}",
                        "--honcho.url", sim_url, "--log.level", "warn",
                        "--poll.interval", duration(15 / speed),
                        "--poll.timeout", duration(10 / speed),
                        "--poll.max-staleness", duration(45 / speed)]
        exporter_log = open(os.path.join(args.logs, f"incident-{args.label}.exporter.log"), "w")
        # The truth (every unit of every workspace) is read before the exporter starts: it
        # holds the simulator's workspaces while it is built.
        names = sorted(json.loads(get(f"{sim_url}/_sim/truth", timeout=600))["workspaces"])
        meter_before = json.loads(get(f"{sim_url}/_sim/cost"))
        started = time.monotonic()
        exporter = subprocess.Popen(exporter_cmd, stdout=exporter_log, stderr=subprocess.STDOUT, env=env)
        processes.append(exporter)
        first = {}
        absent_since = {name: 0.0 for name in names}
        longest_gap = {name: 0.0 for name in names}
        scrapes = failed = 0
        step = 1.0 / speed
        end = started + args.duration / speed
        next_at = started
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if exporter.poll() is not None:
                sys.exit(f"exporter exited with {exporter.returncode} (see {exporter_log.name})")
            try:
                body = get(f"{exporter_url}/metrics", timeout=step * 5)
            except OSError:
                failed += 1
                body = None
            at = time.monotonic() - started
            if body is not None:
                scrapes += 1
                present = published(body)
                for name in names:
                    if name in present:
                        first.setdefault(name, at)
                        if absent_since[name] is not None:
                            longest_gap[name] = max(longest_gap[name], at - absent_since[name])
                            absent_since[name] = None
                    elif absent_since[name] is None:
                        absent_since[name] = at
            next_at += step
            time.sleep(max(0.0, next_at - time.monotonic()))
        elapsed = time.monotonic() - started
        meter = json.loads(get(f"{sim_url}/_sim/cost"))
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    for name in names:
        if absent_since[name] is not None:
            longest_gap[name] = max(longest_gap[name], elapsed - absent_since[name])
    busy = (meter["busy_seconds"] - meter_before["busy_seconds"]) / elapsed
    per_workspace = {
        name: {
            "first_publication_s": None if name not in first else round(first[name] * speed, 1),
            "longest_gap_s": round(longest_gap[name] * speed, 1),
        }
        for name in names
    }
    big, mid, small = names[0], names[1], names[2:]
    small_first = [per_workspace[n]["first_publication_s"] for n in small]
    small_gap = [per_workspace[n]["longest_gap_s"] for n in small]
    never = sum(1 for value in small_first if value is None)
    known = [value for value in small_first if value is not None]
    result = {
        "label": args.label,
        "speed": speed,
        "duration_s": args.duration,
        "scrapes": scrapes,
        "failed_scrapes": failed,
        "busy_fraction": round(busy, 3),
        "peak_in_flight": meter["peak_in_flight"],
        "costed_requests": meter["requests"] - meter_before["requests"],
        "big": per_workspace[big],
        "mid": per_workspace[mid],
        "small_first_publication_s": {
            "median": statistics.median(known) if known else None,
            "max": max(known) if known else None,
            "never": never,
        },
        "small_longest_gap_s": {"median": statistics.median(small_gap), "max": max(small_gap)},
        "workspaces": per_workspace,
    }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    summary = {key: value for key, value in result.items() if key != "workspaces"}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
