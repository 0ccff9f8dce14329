#!/usr/bin/env bash
# Runs a command beside a real libvirt daemon that this script starts itself, sharing nothing
# with the machine's libvirt: a network namespace of its own (the libvirt network's bridge,
# dnsmasq and firewall rules live there; no default route, so no traffic leaves it), tmpfs
# over /run and /var and a private /etc/libvirt, so no socket, state, configuration or cache
# is shared with a system daemon. No KVM needed: domains are type qemu (TCG) booting nothing
# (a /dev/kvm is hidden from it).
#
# Usage (as root): tests/libvirt/isolated.sh CMD [ARGS...]
# CMD sees CAA_E2E_LIBVIRT_URI (qemu:///system of that daemon), CAA_E2E_LIBVIRT_CTL (a
# script: "restart" restarts libvirtd; "lease MAC IP" publishes a DHCP lease, as dnsmasq
# would when a guest asks, and makes IP local for the stand-in forwarder) and CAA_E2E_LIBVIRT_POOL (the pool's directory).
# Where no such daemon can run, prints why and "libvirtd: 0 passed, 0 failed, 1 skipped".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
skip() {
    echo "libvirtd: SKIP: $*"
    echo "libvirtd: 0 passed, 0 failed, 1 skipped"
    exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root for the network and mount namespaces"
for b in libvirtd qemu-system-x86_64 qemu-img dnsmasq iptables virsh; do
    command -v "$b" >/dev/null || skip "$b is not installed"
done
ns="caa-lvtest-$$"
work="$(mktemp -d /tmp/caa-libvirtd.XXXXXX)"
cleanup() {
    local p
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$ns" 2>/dev/null || skip "cannot create a network namespace"
# The qemu driver resolves its compiled-in user and group when it starts.
getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin libvirt-qemu
getent group kvm >/dev/null || groupadd --system kvm

cat >"$work/lib.sh" <<EOS
W=$work
EOS
cat >>"$work/lib.sh" <<'EOS'
virsh_() { virsh -q -c qemu:///system "$@"; }
start_libvirtd() {
    libvirtd -f /etc/libvirt/libvirtd.conf >>"$W/libvirtd.log" 2>&1 &
    echo $! >"$W/libvirtd.pid"
    local i
    for i in $(seq 1 600); do  # bounded: 60 s for the qemu capabilities probe
        if [ -S /run/libvirt/libvirt-sock ] && virsh_ version >/dev/null 2>&1; then return 0; fi
        kill -0 "$(cat "$W/libvirtd.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "libvirtd did not come up:"; tail -20 "$W/libvirtd.log"; return 1
}
stop_libvirtd() {
    local pid i
    pid=$(cat "$W/libvirtd.pid")
    kill "$pid" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
}
EOS

cat >"$work/ctl.sh" <<'EOS'
#!/usr/bin/env bash
. "$(dirname "$0")/lib.sh"
case "$1" in
restart) stop_libvirtd && start_libvirtd ;;
stop) stop_libvirtd ;;
start) start_libvirtd ;;
lease) # dnsmasq's status file, which libvirt reads for VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE;
    # the guest boots nothing, so the address is made local here, where the test's stand-in
    # forwarder listens for the daemon's agent relay
    ip addr add "$3/32" dev lo 2>/dev/null
    printf '[{"ip-address":"%s","mac-address":"%s","hostname":"podvm","expiry-time":%d}]\n' "$3" "$2" \
        $(($(date +%s) + 3600)) >/var/lib/libvirt/dnsmasq/virbr0.status.tmp &&
        mv /var/lib/libvirt/dnsmasq/virbr0.status.tmp /var/lib/libvirt/dnsmasq/virbr0.status ;;
*) echo "usage: ctl.sh restart | stop | start | lease MAC IP" >&2; exit 2 ;;
esac
EOS
chmod +x "$work/ctl.sh"

cat >"$work/inner.sh" <<'EOS'
. "$(dirname "$0")/lib.sh"
set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var
ln -s /run /var/run
mkdir -p /var/lib /var/cache /var/log /var/tmp "$W/etc" "$W/pool"
cp -a /etc/libvirt/. "$W/etc/"
cat >"$W/etc/libvirtd.conf" <<'EOC'
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
log_outputs = "3:stderr"
EOC
cat >"$W/etc/qemu.conf" <<'EOC'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
EOC
mount --bind "$W/etc" /etc/libvirt
# The scenarios are about TCG domains that boot nothing. A /dev/kvm that this machine cannot
# really use (a nested VM: libvirt then offers kvm domains, which qemu fails to start) is
# hidden from this libvirtd, so the capabilities it reports are the same everywhere: a /dev
# of its own holds only the devices libvirtd and qemu use here (binding /dev/null over
# /dev/kvm instead makes every domain start take ~20 s while libvirt re-probes qemu).
if [ -c /dev/kvm ]; then
    mkdir -p "$W/hostdev"
    mount --rbind /dev "$W/hostdev"
    mount -t tmpfs -o mode=755 tmpfs /dev
    for n in null zero full random urandom tty net shm; do
        [ -e "$W/hostdev/$n" ] || continue
        if [ -d "$W/hostdev/$n" ]; then mkdir -p "/dev/$n"; else touch "/dev/$n"; fi
        mount --rbind "$W/hostdev/$n" "/dev/$n"
    done
    mkdir /dev/pts
    mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
    ln -s pts/ptmx /dev/ptmx
    ln -s /proc/self/fd /dev/fd
fi
ip link set lo up
start_libvirtd
cat >"$W/net.xml" <<'EOC'
<network><name>default</name><bridge name='virbr0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>
</network>
EOC
virsh_ net-define "$W/net.xml" >/dev/null
virsh_ net-start default >/dev/null
virsh_ pool-define-as default dir --target "$W/pool" >/dev/null
virsh_ pool-start default >/dev/null
virsh_ vol-create-as --pool default --name podvm-base.qcow2 --capacity 64M --format qcow2 >/dev/null
set +e
CAA_E2E_LIBVIRT_URI=qemu:///system CAA_E2E_LIBVIRT_CTL="$W/ctl.sh" CAA_E2E_LIBVIRT_POOL="$W/pool" "$@"
rc=$?
for d in $(virsh_ list --name 2>/dev/null); do virsh_ destroy "$d" >/dev/null 2>&1; done
virsh_ net-destroy default >/dev/null 2>&1
stop_libvirtd
exit $rc
EOS
cd "$root" || exit 1
ip netns exec "$ns" bash "$work/inner.sh" "$@"
rc=$?
if [ "$rc" -ne 0 ] && [ -f "$work/libvirtd.log" ]; then
    echo "---- libvirtd log (errors) ----"
    grep -E " error | warning " "$work/libvirtd.log" | grep -v ethtool | tail -20
fi
exit "$rc"
