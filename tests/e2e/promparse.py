#!/usr/bin/python3
"""Reads a Prometheus text exposition on stdin with the prometheus_client parser (the
reference Python implementation, independent of the daemon) and prints its samples as JSON:
[[name, {labels}, value], ...]. Exit 1 with the parser's complaint if it does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    out = []
    try:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out.append([s.name, s.labels, s.value, fam.type])
    except Exception as e:  # the parser raises ValueError and friends
        print("parse error: %s" % e, file=sys.stderr)
        return 1
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
