#!/usr/bin/env bash
# Pod networking over VXLAN on a real datapath (root only). Runs the caa-e2e scenarios named
# vxlan_* inside a private mount namespace (its own /run/netns, so the daemon's start-up scan
# sees only this test's namespaces) and a "node" network namespace made here; each scenario
# builds its pod, pod VM and underlay namespaces beside it (tests/e2e/go/src/caa-e2e/vxlan.go).
# Nothing here has a route out of these namespaces. Everything is deleted at the end.
#
# Usage: tests/vxlan/run.sh [caa-e2e flags...]
# Environment: DAEMON (default build/test/cloud-api-adaptor)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
daemon="${DAEMON:-build/test/cloud-api-adaptor}"
if [[ "$(id -u)" != 0 ]]; then
    echo "tests/vxlan/run.sh: needs root (network namespaces, VXLAN, nftables)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if [[ "${CAA_VXLAN_INNER:-}" != 1 ]]; then
    make -s build/test/caa-e2e >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
    exec env CAA_VXLAN_INNER=1 unshare --mount --propagation private "$0" "$@"
fi
# Inside the private mount namespace: a /run/netns of our own.
mkdir -p /run/netns
mount -t tmpfs -o mode=0755 caa-vxlan-netns /run/netns || { echo "0 passed, 1 failed"; exit 1; }
node="caa-vxlan-node-$$"
cleanup() {
    local n p
    for n in $(ls /run/netns 2>/dev/null); do
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$n" 2>/dev/null
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$node" || { echo "0 passed, 1 failed"; exit 1; }
ip -n "$node" link set lo up
CAA_E2E_VXLAN=1 ip netns exec "$node" build/test/caa-e2e -daemon "$daemon" -run '^vxlan_' -timeout 120s "$@"
