#!/usr/bin/env python3
"""Summarise criterion results (target/criterion/**/new/) as one JSON list on stdout.

Each entry: id (criterion's full id), median_ns and mean_ns per iteration, and for
benchmarks declared with an element throughput, elements per iteration and elements/s at
the median.
"""

import json
import pathlib
import sys


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    entries = []
    for benchmark_file in sorted(root.glob("**/new/benchmark.json")):
        estimates_file = benchmark_file.with_name("estimates.json")
        if not estimates_file.exists():
            continue
        benchmark = json.loads(benchmark_file.read_text())
        estimates = json.loads(estimates_file.read_text())
        median_ns = estimates["median"]["point_estimate"]
        entry = {
            "id": benchmark["full_id"],
            "median_ns": median_ns,
            "mean_ns": estimates["mean"]["point_estimate"],
        }
        throughput = benchmark.get("throughput") or {}
        elements = throughput.get("Elements")
        if elements:
            entry["elements"] = elements
            entry["elements_per_second"] = elements / (median_ns * 1e-9)
        entries.append(entry)
    if not entries:
        print(f"criterion_summary: no results under {root}", file=sys.stderr)
        return 1
    print(json.dumps(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
