#!/usr/bin/env bash
# The simulated worker node (root only): the caa-e2e scenarios named node_* (acceptance,
# restart, crash, cloud faults, bad input, secrets), inside a private mount namespace (its own
# /run/netns, so the daemon's start-up scan sees only this test's namespaces) and a "node"
# network namespace made here. Each scenario builds its underlay, CNI bridge, pod namespaces
# and, as the fake cloud creates them, pod VM namespaces with a stand-in forwarder and agent
# (tests/e2e/go/src/caa-e2e/node.go). Nothing here has a route out of these namespaces.
# Everything is deleted at the end.
#
# Usage: tests/node/run.sh [caa-e2e flags...]
# Environment: DAEMON (default build/test/cloud-api-adaptor), CAA_NODE_SEED (crash scenario)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
daemon="${DAEMON:-build/test/cloud-api-adaptor}"
if [[ "$(id -u)" != 0 ]]; then
    echo "tests/node/run.sh: needs root (network namespaces, VXLAN, nftables)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if [[ "${CAA_NODE_INNER:-}" != 1 ]]; then
    make -s build/test/caa-e2e >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
    exec env CAA_NODE_INNER=1 unshare --mount --propagation private "$0" "$@"
fi
mkdir -p /run/netns
mount -t tmpfs -o mode=0755 caa-node-netns /run/netns || { echo "0 passed, 1 failed"; exit 1; }
node="caa-node-$$"
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
CAA_E2E_NODE=1 ip netns exec "$node" build/test/caa-e2e -daemon "$daemon" -run '^node_' -timeout 240s "$@"
