#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from its seed corpus (copied, so the
# repository is never written). Usage: run-fuzz.sh SECONDS TARGET...
set -uo pipefail
secs=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0
for t in "$@"; do
    name=$(basename "$t")
    work="$root/build/fuzz/work/$name"
    mkdir -p "$work/corpus" "$work/artifacts"
    if [ -d "$root/tests/fuzz/corpus/$name" ]; then cp -n "$root/tests/fuzz/corpus/$name"/* "$work/corpus/" 2>/dev/null || true; fi
    if "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
        echo "fuzz: $name ok (${execs:-?} executions in ${secs}s)"
        passed=$((passed + 1))
    else
        echo "fuzz: $name FAILED; crash input in $work/artifacts/, log:"
        tail -40 "$work/log"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
