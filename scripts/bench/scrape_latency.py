#!/usr/bin/env python3
"""Latency of /metrics scrapes over keep-alive HTTP/1.1 connections on loopback.

Measures the time from sending a request to having read the whole body, for COUNT scrapes
either one after another on one connection (--concurrency 1) or spread over CONCURRENCY
threads, each with its own connection. Prints one JSON object: count, concurrency, bytes
(body size of the last scrape), series (non-comment lines, uncompressed bodies only),
median_ms, p90_ms, p99_ms, max_ms, rps. The client's own cost (Python reading the body) is
included, so the figures are an upper bound on the exporter's.
"""

import argparse
import http.client
import json
import math
import statistics
import sys
import threading
import time
import urllib.parse


def scrape_loop(url, count, headers, latencies, last_body, errors, deadline=math.inf):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    path = parts.path or "/"
    try:
        for _ in range(count):
            started = time.perf_counter()
            if started > deadline:
                return
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                errors.append(f"HTTP {response.status}")
                return
            latencies.append(elapsed)
            # Keep only the newest body: thousands of 10+ MB bodies would exhaust memory.
            last_body[:] = [body]
    except OSError as error:
        errors.append(str(error))
    finally:
        connection.close()


def percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=math.inf,
        help="stop early after this long (count says how many scrapes were timed)",
    )
    parser.add_argument(
        "--openmetrics", action="store_true", help="ask for OpenMetrics 1.0.0 (as Prometheus does)"
    )
    parser.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip")
    args = parser.parse_args()

    headers = {}
    if args.openmetrics:
        headers["Accept"] = (
            "application/openmetrics-text;version=1.0.0;q=0.5,"
            "text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
        )
    if args.gzip:
        headers["Accept-Encoding"] = "gzip"

    errors = []
    scrape_loop(args.url, args.warmup, headers, [], [], errors)
    latencies, last_body = [], []
    per_thread = max(1, args.count // args.concurrency)
    deadline = time.perf_counter() + args.max_seconds
    threads = [
        threading.Thread(
            target=scrape_loop,
            args=(args.url, per_thread, headers, latencies, last_body, errors, deadline),
        )
        for _ in range(args.concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors or not latencies:
        print(f"scrape_latency: failed: {errors[:3]}", file=sys.stderr)
        return 1
    latencies.sort()
    last = last_body[-1]
    series = None
    if not args.gzip:
        series = sum(
            1 for line in last.decode("utf-8").splitlines() if line and not line.startswith("#")
        )
    print(
        json.dumps(
            {
                "count": len(latencies),
                "concurrency": args.concurrency,
                "bytes": len(last),
                "series": series,
                "median_ms": statistics.median(latencies) * 1e3,
                "p90_ms": percentile(latencies, 0.90) * 1e3,
                "p99_ms": percentile(latencies, 0.99) * 1e3,
                "max_ms": latencies[-1] * 1e3,
                "rps": len(latencies) / wall,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
