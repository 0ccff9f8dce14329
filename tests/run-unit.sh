#!/usr/bin/env bash
# Runs cmocka unit test binaries; prints each one's output and a summary line.
# UNIT_RUNNER=valgrind runs each under memcheck: any error or definite leak fails it.
set -uo pipefail
passed=0 failed=0
runner=()
if [ "${UNIT_RUNNER:-}" = valgrind ]; then
    runner=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
            --show-leak-kinds=definite --track-origins=yes)
fi
for t in "$@"; do
    out=$("${runner[@]}" "$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
        echo "unit: $t exited $rc but cmocka reported no failure (crash, sanitizer or valgrind report above)"
        failed=$((failed + 1))
    fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
