#!/usr/bin/env bash
# VXLAN benchmark (root): tunnel setup time per pod and TCP throughput through the tunnel,
# each against a baseline measured in the same run (tests/e2e/go/src/caa-e2e/vxbench.go),
# inside namespaces made and removed by tests/vxlan/run.sh. Usage: tests/bench/vxlan.sh [PODS]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
make -s build/test/cloud-api-adaptor || exit 1
exec tests/vxlan/run.sh -bench-vxlan "${1:-20}" -timeout 600s -v 2>&1 | grep -v '^    |'
