#!/usr/bin/env bash
# Runs one caa-e2e suite that builds namespaces of its own (root only): inside a private mount
# namespace (its own /run/netns, so the daemon's start-up scan sees only the test's namespaces)
# and a "node" network namespace made here, with no route out of these namespaces. Every
# namespace, and every process in one, is removed at the end.
#
# Usage: tests/e2e/run-in-node.sh SUITE TIMEOUT [caa-e2e flags...]
#   SUITE vxlan: scenarios vxlan_* (CAA_E2E_VXLAN=1); node: node_* (CAA_E2E_NODE=1)
# Environment: DAEMON (default build/test/cloud-api-adaptor)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
suite="$1" timeout="$2"
shift 2
case "$suite" in
vxlan) select=CAA_E2E_VXLAN ;;
node) select=CAA_E2E_NODE ;;
*) echo "run-in-node.sh: unknown suite '$suite' (vxlan or node)" >&2; echo "0 passed, 1 failed"; exit 1 ;;
esac
daemon="${DAEMON:-build/test/cloud-api-adaptor}"
if [[ "$(id -u)" != 0 ]]; then
    echo "tests/$suite/run.sh: needs root (network namespaces, VXLAN, nftables)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if [[ "${CAA_IN_NODE:-}" != 1 ]]; then
    make -s build/test/caa-e2e >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
    exec env CAA_IN_NODE=1 unshare --mount --propagation private "$root/tests/e2e/run-in-node.sh" "$suite" "$timeout" "$@"
fi
mkdir -p /run/netns
mount -t tmpfs -o mode=0755 "caa-$suite-netns" /run/netns || { echo "0 passed, 1 failed"; exit 1; }
node="caa-$suite-node-$$"
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
env "$select=1" ip netns exec "$node" build/test/caa-e2e -daemon "$daemon" -run "^${suite}_" -timeout "$timeout" "$@"
