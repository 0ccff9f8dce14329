#!/usr/bin/env bash
# Server benchmark (issue 9, P1 and P3): Version calls on the daemon vs a Go containerd/ttrpc
# server (server CPU per call and calls/s, 1 and 8 connections), Create+Start+Stop with the
# instant fake provider, RSS idle and with 500 sandboxes. Runs in a network namespace of its
# own (loopback only). Prints ratios; record them in BENCHMARKS.md.
# Usage: tests/bench/server.sh [calls]   (root; DAEMON defaults to the test build)
# Profiling knobs: CAA_BENCH_PHASES=1 (each call's percentiles, when P4's answers land),
# CAA_BENCH_P1_ONLY=1 (or 8: eight connections only), CAA_BENCH_P4_ONLY=1; and
# `caa-e2e -bench-lifecycle N` (CAA_BENCH_SLOW=1 lists lifecycles over 2 ms) for the tmpfs
# lifecycle alone.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
make -s build/test/cloud-api-adaptor build/test/caa-e2e build/test/wakeup >/dev/null || exit 1
ns="caa-sbench-$$"
ip netns add "$ns" || exit 1
trap 'for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p"; done; ip netns del "$ns"' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" env CAA_BENCH_WAKEUP=build/test/wakeup build/test/caa-e2e -daemon "${DAEMON:-build/test/cloud-api-adaptor}" -bench-server "${1:-20000}"
