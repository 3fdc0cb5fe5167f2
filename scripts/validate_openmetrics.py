#!/usr/bin/env python3
"""Validates an exposition body read from stdin with prometheus_client's parsers.

Default: the body must be OpenMetrics 1.0.0. It is decoded as strict UTF-8 and parsed with
prometheus_client.openmetrics.parser (the strict parser prometheus-client's own CI uses),
consuming every family so that errors anywhere in the body surface. Exit status 0 when valid,
1 with the parser's message on stderr when not, 2 on usage or environment errors.

--dump-samples: also print every parsed sample as one JSON object per line
({"name", "labels", "value"}; value is Python's repr of the float, e.g. "nan", "inf", "1.5"),
so tests can compare what two formats carry.

--format text: parse the body as Prometheus text 0.0.4 with prometheus_client.parser instead
(lax; use it for --dump-samples only, and validate text with `promtool check metrics`).
"""

import argparse
import json
import sys


def main():
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--format", choices=["openmetrics", "text"], default="openmetrics")
    arguments.add_argument("--dump-samples", action="store_true")
    options = arguments.parse_args()

    try:
        if options.format == "openmetrics":
            from prometheus_client.openmetrics.parser import text_string_to_metric_families
        else:
            from prometheus_client.parser import text_string_to_metric_families
    except ImportError as error:
        print(f"cannot import prometheus_client ({error}); run ./scripts/test.sh", file=sys.stderr)
        return 2

    raw = sys.stdin.buffer.read()
    try:
        body = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as error:
        print(f"body is not valid UTF-8: {error}", file=sys.stderr)
        return 1

    try:
        families = list(text_string_to_metric_families(body))
    except Exception as error:  # The parsers raise ValueError, but also others on odd input.
        print(f"invalid {options.format} exposition: {type(error).__name__}: {error}", file=sys.stderr)
        return 1

    if options.dump_samples:
        out = sys.stdout
        for family in families:
            for sample in family.samples:
                out.write(
                    json.dumps(
                        {
                            "name": sample.name,
                            "labels": sample.labels,
                            "value": repr(float(sample.value)),
                        }
                    )
                )
                out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
