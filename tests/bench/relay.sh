#!/usr/bin/env bash
# Relay benchmark: the daemon's agent relay vs a direct TCP connection to the stand-in agent
# vs socat relaying the same traffic, measured in one run inside a network namespace of its
# own (loopback only). Prints ratios; record them in BENCHMARKS.md.
# Profiling knobs: CAA_BENCH_SMALL=N small calls per round (default 2000; 1 for the 4 MiB part
# alone), CAA_BENCH_ABS=1 also prints each round's raw figures.
# Usage: tests/bench/relay.sh [rounds]   (root; DAEMON=build/cloud-api-adaptor by default is
# the test build: build/test/cloud-api-adaptor, which has the fake cloud)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
command -v socat >/dev/null || { echo "bench: socat is not installed (apt-get install socat)"; exit 1; }
make -s build/test/cloud-api-adaptor build/test/caa-e2e build/test/wakeup >/dev/null || exit 1
ns="caa-bench-$$"
ip netns add "$ns" || exit 1
trap 'for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p"; done; ip netns del "$ns"' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" env CAA_BENCH_WAKEUP=build/test/wakeup build/test/caa-e2e -daemon "${DAEMON:-build/test/cloud-api-adaptor}" -bench "${1:-5}"
