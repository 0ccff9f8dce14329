#!/usr/bin/env bash
# The simulated worker node (root only): the caa-e2e scenarios named node_* (acceptance,
# restart, crash, cloud faults, bad input, secrets), run by tests/e2e/run-in-node.sh in a
# private /run/netns and a node namespace of their own. Each scenario builds its underlay, CNI
# bridge, pod namespaces and, as the fake cloud creates them, pod VM namespaces with a stand-in
# forwarder and agent (tests/e2e/go/src/caa-e2e/node.go). Nothing has a route out; everything
# is deleted at the end.
#
# Usage: tests/node/run.sh [caa-e2e flags...]
# Environment: DAEMON (default build/test/cloud-api-adaptor), CAA_NODE_SEED (crash scenario)
exec "$(dirname "${BASH_SOURCE[0]}")/../e2e/run-in-node.sh" node 240s "$@"
