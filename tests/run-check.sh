#!/usr/bin/env bash
# make check: unit tests (ASan+UBSan), fuzz targets (bounded), end-to-end tests against the
# real daemon binary. Ends with one line "check: N passed, N failed".
set -uo pipefail
fuzz_secs=$1 units=$2 fuzzers=$3 vg_units=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
total_p=0 total_f=0
tally() { # reads a "<word>: N passed, N failed" line from a log
    local line p f
    line=$(grep -E '^([a-z0-9-]+: )?[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    p=$(printf '%s' "$line" | sed -E 's/.*\b([0-9]+) passed.*/\1/')
    f=$(printf '%s' "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
    if [ -z "$line" ]; then p=0 f=1; echo "check: $2 printed no verdict"; fi
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_p=$((total_p + p)); total_f=$((total_f + f))
}
mkdir -p build/logs
echo "== unit tests (ASan+UBSan)"
# shellcheck disable=SC2086
tests/run-unit.sh $units 2>&1 | tee build/logs/unit.log; tally build/logs/unit.log unit "${PIPESTATUS[0]}"
echo "== unit tests again under valgrind (memcheck: no error, no definite leak)"
# shellcheck disable=SC2086
UNIT_RUNNER=valgrind tests/run-unit.sh $vg_units 2>&1 | tee build/logs/unit-valgrind.log
tally build/logs/unit-valgrind.log unit-valgrind "${PIPESTATUS[0]}"
echo "== fuzz targets (${fuzz_secs}s each)"
# shellcheck disable=SC2086
tests/run-fuzz.sh "$fuzz_secs" $fuzzers 2>&1 | tee build/logs/fuzz.log; tally build/logs/fuzz.log fuzz "${PIPESTATUS[0]}"
echo "== TLS material against openssl s_server/s_client (loopback only)"
TLSCA_TOOL=build/test/tlsca-tool tests/tls/run.sh 2>&1 | tee build/logs/tls.log; tally build/logs/tls.log tls "${PIPESTATUS[0]}"
echo "== userdata goldens read back with a strict YAML reader and Python's json"
/usr/bin/python3 tests/userdata/roundtrip.py 2>&1 | tee build/logs/userdata.log; tally build/logs/userdata.log userdata "${PIPESTATUS[0]}"
echo "== TOML reader against Python's tomllib (hand-written cases, initdata seeds, random mutations)"
/usr/bin/python3 tests/toml/differential.py build/test/toml-dump 2>&1 | tee build/logs/toml.log; tally build/logs/toml.log toml "${PIPESTATUS[0]}"
echo "== libvirt XML (virt-xml-validate, virsh on the test driver) and cidata ISO (xorriso, blkid)"
CIDATA_TOOL=build/test/cidata-tool tests/libvirt/run.sh 2>&1 | tee build/logs/libvirt.log; tally build/logs/libvirt.log libvirt "${PIPESTATUS[0]}"
echo "== deployment: kustomize overlays, the upstream DaemonSet contract, entrypoint, Dockerfile libraries"
/usr/bin/python3 tests/deploy/check.py build/cloud-api-adaptor 2>&1 | tee build/logs/deploy.log; tally build/logs/deploy.log deploy "${PIPESTATUS[0]}"
echo "== end-to-end: hypervisor API against the real daemon"
tests/e2e/run-core.sh 2>&1 | tee build/logs/e2e-core.log; tally build/logs/e2e-core.log e2e "${PIPESTATUS[0]}"
echo "== end-to-end again, daemon built with ASan+UBSan"
DAEMON=build/test/san/cloud-api-adaptor tests/e2e/run-core.sh 2>&1 | tee build/logs/e2e-core-san.log
tally build/logs/e2e-core-san.log e2e-san "${PIPESTATUS[0]}"
echo "== pod networking over VXLAN: real datapath between namespaces made by the test (daemon built with ASan+UBSan)"
DAEMON=build/test/san/cloud-api-adaptor tests/vxlan/run.sh 2>&1 | tee build/logs/vxlan.log; tally build/logs/vxlan.log vxlan "${PIPESTATUS[0]}"
echo "== simulated worker node: acceptance, restart, crash, cloud faults, bad input, secrets (daemon built with ASan+UBSan)"
DAEMON=build/test/san/cloud-api-adaptor tests/node/run.sh 2>&1 | tee build/logs/node.log; tally build/logs/node.log node "${PIPESTATUS[0]}"
echo "== libvirt provider against a real libvirtd started in namespaces of its own (daemon built with ASan+UBSan)"
tests/libvirt/isolated.sh build/test/caa-e2e -daemon build/test/san/cloud-api-adaptor -run '^libvirtd_' 2>&1 |
    tee build/logs/libvirtd.log
tally build/logs/libvirtd.log libvirtd "${PIPESTATUS[0]}"
echo "check: $total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
