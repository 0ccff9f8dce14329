#!/usr/bin/env bash
# Pod networking over VXLAN on a real datapath (root only): the caa-e2e scenarios named
# vxlan_*, run by tests/e2e/run-in-node.sh in a private /run/netns and a node namespace of
# their own; each scenario builds its pod, pod VM and underlay namespaces beside it
# (tests/e2e/go/src/caa-e2e/vxlan.go). Nothing has a route out; everything is deleted at the end.
#
# Usage: tests/vxlan/run.sh [caa-e2e flags...]
# Environment: DAEMON (default build/test/cloud-api-adaptor)
exec "$(dirname "${BASH_SOURCE[0]}")/../e2e/run-in-node.sh" vxlan 120s "$@"
