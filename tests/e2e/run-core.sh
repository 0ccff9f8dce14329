#!/usr/bin/env bash
# End-to-end tests of the daemon's sockets, driven by an independent Go client built on
# containerd/ttrpc (the kata shim's library), with a stand-in pod VM (forwarder + agent on
# the same library) behind the agent relay.
#
# The runner and every daemon it starts live in a network namespace made here (loopback only,
# plus a local route for the addresses libvirt's test driver reports, 192.168.122.3 onwards, 20
# apart with every domain a daemon starts (192.168.120.0/21 holds a daemon's first 76), so the
# relay's dials to those VMs reach the stand-in forwarder and nothing ever leaves the machine).
# Needs root.
#
# Usage (from anywhere; paths are relative to the repository root):
#   tests/e2e/run-core.sh [caa-e2e flags...]      e.g.  -run 'lifecycle|crash' -v
# Environment:
#   DAEMON   daemon binary under test (default build/test/cloud-api-adaptor)
#   GO       go command (default go)
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1

daemon="${DAEMON:-build/test/cloud-api-adaptor}"
gocmd="${GO:-go}"

mkdir -p build/test build/gocache
# Debian's golang-go + golang-github-containerd-ttrpc-dev, offline, GOPATH mode.
GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$root/tests/e2e/go:/usr/share/gocode" GOCACHE="$root/build/gocache" \
    "$gocmd" build -o build/test/caa-e2e caa-e2e || exit 1

if [[ ! -x "$daemon" ]]; then
    echo "run-core.sh: daemon binary '$daemon' not found; build it with: make build/test/cloud-api-adaptor" >&2
fi
if [[ "$(id -u)" != 0 ]] || ! ip netns add "caa-e2e-$$" 2>/dev/null; then
    echo "run-core.sh: needs root to run the tests in a network namespace of their own" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
ns="caa-e2e-$$"
cleanup() {
    local p
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip -n "$ns" link set lo up
ip -n "$ns" route add local 192.168.120.0/21 dev lo table local
ip netns exec "$ns" build/test/caa-e2e -daemon "$daemon" "$@"
