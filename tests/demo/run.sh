#!/usr/bin/env bash
# make demo: a simulated worker node on this machine. The daemon runs with the libvirt
# provider on libvirt's test driver (config/libvirt-test-node.xml) inside a network namespace
# of its own; a pod network namespace and a pod VM namespace (reached at the address the
# driver reports, 192.168.122.3) stand beside it, joined by a veth pair; their only routes lead
# into each other, so no traffic leaves them. A kata-shim stand-in then runs one pod through CreateVM,
# StartVM, the agent calls through the proxy, a ping over VXLAN and StopVM, printing each
# step with its duration; steps whose daemon side has not landed yet say so. Everything the
# demo made is removed at the end, also on failure or Ctrl-C.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
say() { printf 'demo: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    say "needs root (network namespaces); run: sudo make demo"
    exit 1
fi
missing=$(for p in $(make -s print-deps); do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
    say "installing $(echo "$missing" | wc -l) missing Debian packages"
    make -s deps >/dev/null || { say "installing packages failed; run make deps to see why"; exit 1; }
fi
say "building"
make -s all build/test/caa-e2e >/dev/null || { say "build failed; run make to see why"; exit 1; }

tag="caa-demo-$$"
work="$(mktemp -d /tmp/cd.XXXXXX)" # short: agent socket paths must fit 108 bytes
worker="$tag-node" podns="$tag-pod" vmns="$tag-vm" vmpodns="$tag-vmpod"
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid"
        for _ in $(seq 1 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null
    fi
    local n p
    for n in "$worker" "$podns" "$vmns" "$vmpodns"; do
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$n" 2>/dev/null
    done
    rm -rf "$work"
    say "cleaned up: daemon stopped, namespaces $worker $podns $vmns $vmpodns and $work removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "namespaces: node $worker, pod $podns, pod VM $vmns (its pod namespace $vmpodns)"
ip netns add "$worker" && ip netns add "$podns" && ip netns add "$vmns" && ip netns add "$vmpodns" || exit 1
for n in "$worker" "$podns" "$vmns" "$vmpodns"; do ip -n "$n" link set lo up; done
# node <-> pod VM: the libvirt network's subnet, as the test driver reports the VM's address.
ip link add "demo$$n" netns "$worker" type veth peer name "demo$$v" netns "$vmns" || exit 1
ip -n "$worker" addr add 192.168.122.1/24 dev "demo$$n" && ip -n "$worker" link set "demo$$n" up
ip -n "$vmns" addr add 192.168.122.3/24 dev "demo$$v" && ip -n "$vmns" link set "demo$$v" up
# The node's primary interface is its default-route device; the route leads only into the
# pod VM namespace, which routes nowhere.
ip -n "$worker" route add default via 192.168.122.3 dev "demo$$n" || exit 1
# The pod: as the CNI leaves it.
ip link add "demo$$p" netns "$podns" type veth peer name "demo$$w" netns "$worker" || exit 1
ip -n "$podns" link set "demo$$p" name eth0
ip -n "$podns" addr add 10.244.1.5/24 dev eth0 && ip -n "$podns" link set eth0 up
ip -n "$worker" addr add 10.244.1.1/24 dev "demo$$w" && ip -n "$worker" link set "demo$$w" up
ip -n "$podns" route add default via 10.244.1.1 || exit 1

notify="$work/notify.sock"
# systemd-style readiness: the daemon sends READY=1 once it serves.
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(30)
print("bound", flush=True)
end = time.time() + 30
while time.time() < end:
    if b"READY=1" in s.recv(4096):
        print("READY", flush=True); break
' "$notify" >"$work/ready" 2>&1 &
notify_pid=$!
for _ in $(seq 1 50); do grep -q bound "$work/ready" 2>/dev/null && break; sleep 0.1; done

# The stand-in pod VM: forwarder + kata-agent of the test harness (containerd/ttrpc), at the
# address the test driver reports for the first VM. Plain TCP: it has no way to read the
# per-VM TLS certificate out of a test-driver domain's ISO.
ip netns exec "$vmns" build/test/caa-e2e -forwarder 15150 >"$work/podvm.log" 2>&1 &
disown
for _ in $(seq 1 50); do grep -q listening "$work/podvm.log" 2>/dev/null && break; sleep 0.1; done
say "stand-in pod VM (forwarder + agent) listening on 192.168.122.3:15150 in $vmns"

say "starting the daemon (libvirt provider, test driver node, -disable-tls) in $worker"
NOTIFY_SOCKET="$notify" ip netns exec "$worker" build/cloud-api-adaptor libvirt \
    -uri "test://$root/config/libvirt-test-node.xml" -socket "$work/hypervisor.sock" -pods-dir "$work/p" \
    -data-dir "$work/libvirt" -disable-tls >"$work/daemon.log" 2>&1 &
daemon_pid=$!
wait "$notify_pid"
if ! grep -q READY "$work/ready"; then
    say "the daemon did not become ready; its log:"
    sed 's/^/  | /' "$work/daemon.log"
    exit 1
fi
say "daemon ready (pid $daemon_pid), socket $work/hypervisor.sock"
DEMO_WORKER_NETNS="$worker" DEMO_POD_IP=10.244.1.5 DEMO_DATA_DIR="$work/libvirt" \
    DEMO_VM_NETNS="/run/netns/$vmns" DEMO_VMPOD_NETNS="/run/netns/$vmpodns" \
    build/test/caa-e2e -demo "$work/hypervisor.sock" -netns "/run/netns/$podns"
rc=$?
if [ "$rc" -ne 0 ]; then
    say "a step failed; the daemon's log:"
    sed 's/^/  | /' "$work/daemon.log"
fi
exit "$rc"
