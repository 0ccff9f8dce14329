#!/usr/bin/env bash
# End-to-end tests of the daemon's hypervisor socket, driven by an
# independent Go client built on containerd/ttrpc (the kata shim's library).
#
# Usage (from anywhere; paths are relative to the repository root):
#   tests/e2e/run-core.sh [caa-e2e flags...]      e.g.  -run 'lifecycle|crash' -v
# Environment:
#   DAEMON   daemon binary under test (default build/test/cloud-api-adaptor,
#            built by `make build/test/cloud-api-adaptor`)
#   GO       go command (default go)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

daemon="${DAEMON:-build/test/cloud-api-adaptor}"
gocmd="${GO:-go}"

mkdir -p build/test build/gocache
# Debian's golang-go + golang-github-containerd-ttrpc-dev, offline, GOPATH mode.
GO111MODULE=off \
GOFLAGS= \
GOPROXY=off \
GOPATH="$root/tests/e2e/go:/usr/share/gocode" \
GOCACHE="$root/build/gocache" \
    "$gocmd" build -o build/test/caa-e2e caa-e2e

if [[ ! -x "$daemon" ]]; then
    echo "run-core.sh: daemon binary '$daemon' not found; build it with: make build/test/cloud-api-adaptor" >&2
fi
exec build/test/caa-e2e -daemon "$daemon" "$@"
