package main

// Pod networking over VXLAN, end to end on a real datapath. These scenarios run only under
// tests/vxlan/run.sh (CAA_E2E_VXLAN=1), which runs this program inside a "node" network
// namespace of its own with a private /run/netns. Each scenario builds, with iproute2:
//
//	node (this process, the daemon) --veth underlay 192.168.50.1/24-- vm (192.168.50.2/24:
//	  the pod VM's host side, where the stand-in forwarder listens)
//	node bridge 10.244.1.1/24 --veth-- pod<k> (eth0, as a CNI leaves it, default via the node)
//	vmpod<k>: the pod VM's pod namespace, built by the mirror (mirror.go) from apf.json
//
// The node's default route points into the vm namespace, which has no route anywhere else:
// no packet can leave these namespaces. Every namespace and link is deleted at the end.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

func vxlanScenarios() []scenario {
	if os.Getenv("CAA_E2E_VXLAN") == "" {
		return nil
	}
	return []scenario{
		{"vxlan_bridge_two_pods", scVxlanBridge},
		{"vxlan_ptp_port9000", scVxlanPTP},
		{"vxlan_restart_vnis", scVxlanRestart},
		{"vxlan_inspect_errors", scVxlanInspectErrors},
		{"vxlan_netns_gone_and_failed_start", scVxlanNetnsGone},
		{"vxlan_create_fails_after_tunnel", scVxlanCreateFails},
		{"vxlan_kill9_mid_start", scVxlanKill9MidStart},
		{"vxlan_dedicated_needs_second_ip", scVxlanDedicated},
		{"vxlan_crowded_pod_netns", scVxlanCrowded},
		{"vxlan_tunnel_refused_at_create", scVxlanTunnelRefusedAtCreate},
	}
}

const (
	vxNetnsDir = "/run/netns"
	vxNodeIP   = "192.168.50.1"
	vxVMIP     = "192.168.50.2"
)

// sh runs a command with a bound and returns its combined output.
func sh(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (t *T) must(args ...string) string {
	out, err := sh(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// inNetns runs fn on a thread inside the namespace at path (sockets made there stay there).
func inNetns(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("netns %s: %v", path, err)
	}
	defer ns.Close()
	return withLockedNetns(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			return err
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			return err
		}
		return ferr
	})
}

func listenIn(path, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(path, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

func dialIn(path, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(path, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	return c, err
}

// ---------------------------------------------------------------------------
// Topology

type vxPod struct {
	name   string // k8s pod name
	id     string // sandbox id
	ns     string // worker pod netns name
	vmpod  string // VM pod netns name
	ip     string // pod IP (no prefix)
	prefix int
	mac    string
	hostIf string // the CNI veth end in the node namespace
}

type vxTopo struct {
	t    *T
	tag  string
	vm   string
	ul   string
	br   string
	pods []*vxPod
}

func nsPath(name string) string { return filepath.Join(vxNetnsDir, name) }

func newVxTopo(t *T) *vxTopo {
	tp := &vxTopo{t: t, tag: fmt.Sprintf("x%04d", time.Now().UnixNano()/1000%10000)}
	tp.vm = tp.tag + "-vm"
	tp.ul = "u" + tp.tag
	tp.br = "b" + tp.tag
	t.must("ip", "netns", "add", tp.vm)
	t.must("ip", "-n", tp.vm, "link", "set", "lo", "up")
	t.must("ip", "link", "add", tp.ul, "type", "veth", "peer", "name", "ul0", "netns", tp.vm)
	t.must("ip", "addr", "add", vxNodeIP+"/24", "dev", tp.ul)
	t.must("ip", "link", "set", tp.ul, "up")
	t.must("ip", "-n", tp.vm, "addr", "add", vxVMIP+"/24", "dev", "ul0")
	t.must("ip", "-n", tp.vm, "link", "set", "ul0", "up")
	// The node's primary interface is found from its default route (spec 8.1).
	t.must("ip", "route", "add", "default", "via", vxVMIP, "dev", tp.ul)
	t.must("ip", "link", "add", tp.br, "type", "bridge")
	t.must("ip", "addr", "add", "10.244.1.1/24", "dev", tp.br)
	t.must("ip", "link", "set", tp.br, "up")
	return tp
}

func (tp *vxTopo) destroy() {
	for _, p := range tp.pods {
		sh("ip", "netns", "del", p.ns)
		sh("ip", "netns", "del", p.vmpod)
		sh("ip", "link", "del", p.hostIf)
	}
	sh("ip", "link", "del", tp.br)
	sh("ip", "link", "del", tp.ul)
	sh("ip", "netns", "del", tp.vm)
	sh("nft", "delete", "table", "ip", "cttest")
}

// addBridgePod makes pod k as a bridge CNI does: veth, 10.244.1.(10+k)/24, default route;
// before, if given, runs on the new pod namespace before its eth0 exists.
func (tp *vxTopo) addBridgePod(k int, before ...func(ns string)) *vxPod {
	t := tp.t
	p := &vxPod{
		name: fmt.Sprintf("pod%d", k), id: newSandboxID(),
		ns: fmt.Sprintf("%s-pod%d", tp.tag, k), vmpod: fmt.Sprintf("%s-vmpod%d", tp.tag, k),
		ip: fmt.Sprintf("10.244.1.%d", 10+k), prefix: 24, mac: fmt.Sprintf("0a:58:0a:f4:01:%02x", 10+k),
		hostIf: fmt.Sprintf("v%sp%d", tp.tag, k),
	}
	tp.pods = append(tp.pods, p)
	t.must("ip", "netns", "add", p.ns)
	t.must("ip", "netns", "add", p.vmpod)
	t.must("ip", "-n", p.ns, "link", "set", "lo", "up")
	for _, fn := range before {
		fn(p.ns)
	}
	t.must("ip", "link", "add", p.hostIf, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
	t.must("ip", "link", "set", p.hostIf, "master", tp.br, "up")
	t.must("ip", "-n", p.ns, "link", "set", "eth0", "address", p.mac)
	t.must("ip", "-n", p.ns, "addr", "add", fmt.Sprintf("%s/%d", p.ip, p.prefix), "dev", "eth0")
	t.must("ip", "-n", p.ns, "link", "set", "eth0", "up")
	t.must("ip", "-n", p.ns, "route", "add", "default", "via", "10.244.1.1")
	return p
}

// addPTPPod makes a /32 pod the way PTP-style CNIs (Calico, EKS) do: a link-scope route to a
// fake gateway pinned by a permanent neighbour entry to the node's veth MAC.
func (tp *vxTopo) addPTPPod(k int) *vxPod {
	t := tp.t
	p := &vxPod{
		name: fmt.Sprintf("ptp%d", k), id: newSandboxID(),
		ns: fmt.Sprintf("%s-pod%d", tp.tag, k), vmpod: fmt.Sprintf("%s-vmpod%d", tp.tag, k),
		ip: fmt.Sprintf("10.244.2.%d", 10+k), prefix: 32, mac: fmt.Sprintf("0a:58:0a:f4:02:%02x", 10+k),
		hostIf: fmt.Sprintf("v%sq%d", tp.tag, k),
	}
	tp.pods = append(tp.pods, p)
	t.must("ip", "netns", "add", p.ns)
	t.must("ip", "netns", "add", p.vmpod)
	t.must("ip", "-n", p.ns, "link", "set", "lo", "up")
	t.must("ip", "link", "add", p.hostIf, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
	t.must("ip", "link", "set", p.hostIf, "up")
	hostMAC := linkJSON(t, "", p.hostIf)["address"].(string)
	t.must("ip", "-n", p.ns, "link", "set", "eth0", "address", p.mac)
	t.must("ip", "-n", p.ns, "link", "set", "eth0", "mtu", "1400")
	t.must("ip", "-n", p.ns, "addr", "add", p.ip+"/32", "dev", "eth0")
	t.must("ip", "-n", p.ns, "link", "set", "eth0", "up")
	t.must("ip", "-n", p.ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	t.must("ip", "-n", p.ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
	t.must("ip", "-n", p.ns, "neigh", "add", "169.254.1.1", "lladdr", hostMAC, "dev", "eth0", "nud", "permanent")
	t.must("ip", "route", "add", p.ip+"/32", "dev", p.hostIf)
	return p
}

// linkJSON is `ip -j -d link show dev` in namespace ns ("" = this one), or nil if absent.
func linkJSON(t *T, ns, dev string) map[string]interface{} {
	args := []string{"ip"}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	out, err := sh(append(args, "-j", "-d", "link", "show", "dev", dev)...)
	if err != nil {
		return nil
	}
	var v []map[string]interface{}
	if json.Unmarshal([]byte(out), &v) != nil || len(v) != 1 {
		t.Fatalf("ip -j link show %s in %s: %q", dev, ns, out)
	}
	return v[0]
}

func vxlanInfo(l map[string]interface{}) map[string]interface{} {
	li, _ := l["linkinfo"].(map[string]interface{})
	if li == nil || li["info_kind"] != "vxlan" {
		return nil
	}
	d, _ := li["info_data"].(map[string]interface{})
	return d
}

// ingressFilters returns `tc -j filter show dev <dev> ingress` in ns, as text.
func ingressFilters(ns, dev string) string {
	out, _ := sh("tc", "-n", ns, "-j", "filter", "show", "dev", dev, "ingress")
	return out
}

func qdiscs(ns, dev string) string {
	out, _ := sh("tc", "-n", ns, "qdisc", "show", "dev", dev)
	return out
}

// ---------------------------------------------------------------------------
// Daemon side

func (tp *vxTopo) startDaemon(dirs Dirs, extra ...string) *Daemon {
	t := tp.t
	if t.fw == nil {
		ln, err := listenIn(nsPath(tp.vm), vxVMIP+":15150")
		if err != nil {
			t.Fatalf("forwarder listener in %s: %v", tp.vm, err)
		}
		fw, err := StartForwarderOn(ln, dirs.FakeDir, true)
		if err != nil {
			t.Fatalf("stand-in forwarder: %v", err)
		}
		t.fw = fw
	}
	return t.StartDaemonDirs(dirs, append([]string{"-fake-ip", vxVMIP}, extra...)...)
}

func createIn(d *Daemon, p *vxPod, netnsPath string) error {
	return d.Call(hypervisorService, "CreateVM", &CreateVMRequest{
		Id: p.id, Annotations: kataAnnotations(p.name, "default"), NetworkNamespacePath: netnsPath,
	}, &CreateVMResponse{}, optsPlain)
}

var optsStartVx = callOpts{ServerTimeout: 600 * time.Second, ClientWait: 40 * time.Second}

// podUp runs CreateVM + StartVM for p, then builds the VM side from the apf.json the cloud
// received (as the pod VM's forwarder does at boot) and returns that pod-network.
func (tp *vxTopo) podUp(d *Daemon, p *vxPod) *podNetworkConfig {
	t := tp.t
	if err := createIn(d, p, nsPath(p.ns)); err != nil {
		t.Fatalf("CreateVM %s: %s", p.name, describeErr(err))
	}
	if err := d.StartVM(p.id, optsStartVx); err != nil {
		t.Fatalf("StartVM %s: %s", p.name, describeErr(err))
	}
	doc := vmDocument(t, d, instanceName(p.name, p.id))
	apf := doc["/run/peerpod/apf.json"]
	if apf == nil {
		t.Fatalf("%s: no apf.json in the VM's user-data", p.name)
	}
	var a mirrorAPF
	if err := json.Unmarshal([]byte(*apf), &a); err != nil || a.PodNetwork == nil {
		t.Fatalf("%s: apf.json: %v", p.name, err)
	}
	if err := BuildMirror([]byte(*apf), nsPath(tp.vm), nsPath(p.vmpod)); err != nil {
		t.Fatalf("%s: building the VM side: %v", p.name, err)
	}
	return a.PodNetwork
}

// ---------------------------------------------------------------------------
// Checks

// checkPodNetwork compares apf.json's pod-network with what the CNI made.
func checkPodNetwork(t *T, p *vxPod, pn *podNetworkConfig, port, vni int) {
	if pn.PodIP != fmt.Sprintf("%s/%d", p.ip, p.prefix) || pn.PodHwAddr != p.mac || pn.Interface != "eth0" {
		t.Errorf("%s: pod-network podip %q hw %q if %q, want %s/%d %s eth0", p.name, pn.PodIP, pn.PodHwAddr,
			pn.Interface, p.ip, p.prefix, p.mac)
	}
	if pn.WorkerNodeIP != vxNodeIP+"/24" || pn.TunnelType != "vxlan" || pn.Dedicated {
		t.Errorf("%s: worker-node-ip %q tunnel %q dedicated %v", p.name, pn.WorkerNodeIP, pn.TunnelType, pn.Dedicated)
	}
	if pn.VXLANPort != port || (vni != 0 && pn.VXLANID != vni) || pn.Index != pn.VXLANID-555000 {
		t.Errorf("%s: vxlan-port %d vxlan-id %d index %d, want port %d id %d", p.name, pn.VXLANPort, pn.VXLANID,
			pn.Index, port, vni)
	}
}

// checkWorkerTunnel reads the worker half back with iproute2: vxlan1 up in the pod netns with
// the VNI/remote/port, its UDP socket in the node namespace, tc redirects both ways.
func checkWorkerTunnel(t *T, p *vxPod, vni, port int) {
	l := linkJSON(t, p.ns, "vxlan1")
	if l == nil {
		t.Fatalf("%s: no vxlan1 in the pod namespace", p.name)
	}
	vx := vxlanInfo(l)
	if vx == nil || int(vx["id"].(float64)) != vni || vx["remote"] != vxVMIP || int(vx["port"].(float64)) != port {
		t.Errorf("%s: vxlan1 is %v, want id %d remote %s port %d", p.name, vx, vni, vxVMIP, port)
	}
	if fl, _ := l["flags"].([]interface{}); !strings.Contains(fmt.Sprint(fl), "UP") {
		t.Errorf("%s: vxlan1 not up: %v", p.name, fl)
	}
	if _, ok := l["link_netnsid"]; !ok {
		t.Errorf("%s: vxlan1 has no link-netnsid: its UDP socket is not in the node namespace", p.name)
	}
	for _, pair := range [][2]string{{"eth0", "vxlan1"}, {"vxlan1", "eth0"}} {
		f := ingressFilters(p.ns, pair[0])
		if !strings.Contains(f, `"kind":"u32"`) || !strings.Contains(f, `"to_dev":"`+pair[1]+`"`) ||
			!strings.Contains(f, `"mirred_action":"redirect"`) {
			t.Errorf("%s: ingress filters of %s do not redirect to %s: %s", p.name, pair[0], pair[1], f)
		}
	}
}

// checkVMSide: the VM's pod interface carries the CNI's MAC and IP, MTU capped at 1450.
func checkVMSide(t *T, p *vxPod, wantMTU int) {
	l := linkJSON(t, p.vmpod, "eth0")
	if l == nil {
		t.Fatalf("%s: no eth0 in the VM pod namespace", p.name)
	}
	if l["address"] != p.mac || int(l["mtu"].(float64)) != wantMTU {
		t.Errorf("%s: VM eth0 mac %v mtu %v, want %s %d", p.name, l["address"], l["mtu"], p.mac, wantMTU)
	}
	if out := t.must("ip", "-n", p.vmpod, "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out,
		fmt.Sprintf(" %s/%d ", p.ip, p.prefix)) {
		t.Errorf("%s: VM eth0 addresses: %s", p.name, out)
	}
}

// icmpInEchos is Icmp InEchos of namespace ns.
func icmpInEchos(t *T, ns string) int {
	out := t.must("ip", "netns", "exec", ns, "cat", "/proc/net/snmp")
	var names, vals []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "Icmp: ") {
			continue
		}
		if names == nil {
			names = strings.Fields(l)
		} else {
			vals = strings.Fields(l)
		}
	}
	for i, n := range names {
		if n == "InEchos" && i < len(vals) {
			v, _ := strconv.Atoi(vals[i])
			return v
		}
	}
	t.Fatalf("no Icmp InEchos in %s", ns)
	return 0
}

// serveIn accepts TCP connections on addr inside ns and hands each to handle, with a 30 s
// deadline; the listener is the caller's to close.
func serveIn(t *T, ns, addr string, handle func(c net.Conn)) net.Listener {
	ln, err := listenIn(nsPath(ns), addr)
	if err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln
}

// serveEcho serves, inside ns, a TCP echo that first writes its own name.
func serveEcho(t *T, ns, addr string) net.Listener {
	return serveIn(t, ns, addr, func(c net.Conn) {
		io.WriteString(c, ns+"\n")
		io.Copy(c, c)
	})
}

// tcpCheck dials addr (from namespace from, "" = this one), reads the banner and echoes n
// random-ish bytes through it; returns the banner.
func tcpCheck(t *T, from, addr string, n int) string {
	var c net.Conn
	var err error
	if from == "" {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
	} else {
		c, err = dialIn(nsPath(from), addr)
	}
	if err != nil {
		t.Fatalf("TCP to %s from %q: %v", addr, from, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	banner := make([]byte, 0, 64)
	one := make([]byte, 1)
	for len(banner) < 64 {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("TCP to %s: banner: %v", addr, err)
		}
		if one[0] == '\n' {
			break
		}
		banner = append(banner, one[0])
	}
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i*7 + i/251)
	}
	go func() { c.Write(payload) }()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("TCP to %s: echo of %d bytes: %v", addr, n, err)
	}
	if sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("TCP to %s: echo differs", addr)
	}
	return string(banner)
}

// pingFromNode pings ip from the node and checks that the echo requests were answered from
// the VM pod namespace, not from the worker's pod namespace.
func pingFromNode(t *T, p *vxPod, ip string) {
	vmBefore, podBefore := icmpInEchos(t, p.vmpod), icmpInEchos(t, p.ns)
	if out, err := sh("ping", "-c", "3", "-i", "0.2", "-W", "2", ip); err != nil {
		t.Fatalf("%s: ping %s from the node: %v\n%s", p.name, ip, err, out)
	}
	vm, pod := icmpInEchos(t, p.vmpod)-vmBefore, icmpInEchos(t, p.ns)-podBefore
	if vm < 3 || pod != 0 {
		t.Errorf("%s: echo requests seen: %d in the VM pod namespace, %d in the worker pod namespace; want >=3 and 0",
			p.name, vm, pod)
	}
}

// nftRules returns the comments of our table's rules, per chain ("output:peerpod [vni:1]").
func nftRules(t *T) []string {
	out, err := sh("nft", "-j", "list", "table", "ip", "peerpod")
	if err != nil {
		return nil
	}
	var v struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("nft -j: %q", out)
	}
	var rules []string
	for _, it := range v.Nftables {
		if raw, ok := it["rule"]; ok {
			var r struct {
				Chain   string          `json:"chain"`
				Comment string          `json:"comment"`
				Expr    json.RawMessage `json:"expr"`
			}
			json.Unmarshal(raw, &r)
			var expr bytes.Buffer
			json.Compact(&expr, r.Expr)
			rules = append(rules, r.Chain+":"+r.Comment+":"+expr.String())
		}
	}
	return rules
}

func checkNotrack(t *T, vni, port int, present bool) {
	rules := nftRules(t)
	var mine []string
	for _, r := range rules {
		if strings.Contains(r, fmt.Sprintf("peerpod [vni:%d]:", vni)) {
			mine = append(mine, r)
		}
	}
	if !present {
		if len(mine) != 0 {
			t.Errorf("NOTRACK rules of VNI %d still present: %v", vni, mine)
		}
		return
	}
	want := map[string]string{"output": "daddr", "prerouting": "saddr"}
	if len(mine) != 2 {
		t.Fatalf("NOTRACK rules of VNI %d: %v, want one in output and one in prerouting", vni, mine)
	}
	for _, r := range mine {
		chain := strings.SplitN(r, ":", 2)[0]
		f := want[chain]
		if f == "" || !strings.Contains(r, `"field":"`+f+`"`) || !strings.Contains(r, `"right":"`+vxVMIP+`"`) ||
			!strings.Contains(r, `"right":`+strconv.Itoa(port)) || !strings.Contains(r, `"notrack"`) {
			t.Errorf("NOTRACK rule %s", r)
		}
		delete(want, chain)
	}
}

// conntrackCount counts the node's conntrack entries for UDP to port.
func conntrackCount(t *T, port int) int {
	out, _ := sh("conntrack", "-L", "-p", "udp", "--dport", strconv.Itoa(port))
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "udp ") {
			n++
		}
	}
	return n
}

// checkConntrack turns conntrack on in the node namespace (a ct rule of the test's own table),
// proves it tracks an ordinary UDP flow to the VM, and that the tunnel's packets are not
// tracked under traffic.
func checkConntrack(t *T, p *vxPod, port int) {
	t.must("nft", "add table ip cttest; add chain ip cttest c { type filter hook output priority 0; }; "+
		"add rule ip cttest c ct state new counter")
	sh("conntrack", "-F")
	control := port + 1
	c, err := net.Dial("udp", fmt.Sprintf("%s:%d", vxVMIP, control))
	if err != nil {
		t.Fatalf("control UDP flow: %v", err)
	}
	c.Write([]byte("x"))
	c.Close()
	if n := conntrackCount(t, control); n < 1 {
		t.Fatalf("conntrack does not track a plain UDP flow to port %d (%d entries): the check would prove nothing", control, n)
	}
	for i := 0; i < 8; i++ { // distinct inner flows: distinct VXLAN source ports
		tcpCheck(t, "", p.ip+":7000", 1<<14)
	}
	pingFromNode(t, p, p.ip)
	if n := conntrackCount(t, port); n != 0 {
		out, _ := sh("conntrack", "-L", "-p", "udp")
		t.Errorf("%d conntrack entries for the tunnel's UDP port %d:\n%s", n, port, out)
	}
}

// checkNoTunnel: nothing of the worker half remains in the pod namespace.
func checkNoTunnel(t *T, p *vxPod) {
	if linkJSON(t, p.ns, "vxlan1") != nil {
		t.Errorf("%s: vxlan1 still in the pod namespace", p.name)
	}
	if q := qdiscs(p.ns, "eth0"); strings.Contains(q, "ingress") {
		t.Errorf("%s: ingress qdisc left on eth0: %s", p.name, q)
	}
}

func checkNoState(t *T, d *Daemon) {
	if e, _ := os.ReadDir(d.Dirs.PodsDir); len(e) != 0 {
		var names []string
		for _, x := range e {
			names = append(names, x.Name())
		}
		t.Errorf("pods dir not empty: %v", names)
	}
}

// ---------------------------------------------------------------------------
// Scenarios

func scVxlanBridge(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p1, p2 := tp.addBridgePod(1), tp.addBridgePod(2)
	t.env = []string{"POD_SUBNET_CIDRS=10.96.0.0/12"}
	d := tp.startDaemon(t.defaultDirs())
	pn1 := tp.podUp(d, p1)
	pn2 := tp.podUp(d, p2)
	checkPodNetwork(t, p1, pn1, 4789, 555000)
	checkPodNetwork(t, p2, pn2, 4789, 555001)
	if pn1.MTU != 1500 || len(pn1.Routes) != 3 || pn1.Routes[0].Dst != "0.0.0.0/0" || pn1.Routes[0].GW != "10.244.1.1" ||
		pn1.Routes[1].Dst != "10.244.1.0/24" || pn1.Routes[1].Protocol != "kernel" || pn1.Routes[1].Scope != "link" ||
		pn1.Routes[2] != (podNetRoute{Dst: "10.96.0.0/12", GW: "10.244.1.1", Dev: "eth0"}) {
		t.Errorf("pod1 routes/mtu: %+v mtu %d", pn1.Routes, pn1.MTU)
	}
	if out := t.must("ip", "-n", p1.vmpod, "route", "show", "10.96.0.0/12"); !strings.Contains(out, "via 10.244.1.1") {
		t.Errorf("POD_SUBNET_CIDRS route not in the VM: %q", out)
	}
	for _, p := range []*vxPod{p1, p2} {
		vni := 555000
		if p == p2 {
			vni = 555001
		}
		checkWorkerTunnel(t, p, vni, 4789)
		checkVMSide(t, p, 1450)
		checkNotrack(t, vni, 4789, true)
		// Nothing listens in the worker's pod namespace: answers can only come from the VM.
		ln := serveEcho(t, p.vmpod, p.ip+":7000")
		defer ln.Close()
		if b := tcpCheck(t, "", p.ip+":7000", 4<<20); b != p.vmpod {
			t.Errorf("%s: TCP answered by %q, want the VM pod namespace %q", p.name, b, p.vmpod)
		}
		pingFromNode(t, p, p.ip)
	}
	// From the VM side to the node (the pod's gateway address on the bridge).
	nodeLn, err := net.Listen("tcp", "10.244.1.1:7001")
	if err != nil {
		t.Fatalf("node listener: %v", err)
	}
	go func() {
		for {
			c, err := nodeLn.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.WriteString(c, "node\n"); io.Copy(c, c) }()
		}
	}()
	if b := tcpCheck(t, p1.vmpod, "10.244.1.1:7001", 1<<20); b != "node" {
		t.Errorf("VM -> node: banner %q", b)
	}
	nodeLn.Close()
	// Pod to pod, both in VMs, through the node's bridge.
	if out, err := sh("ip", "netns", "exec", p1.vmpod, "ping", "-c", "2", "-i", "0.2", "-W", "2", p2.ip); err != nil {
		t.Errorf("pod1 VM -> pod2 VM: %v\n%s", err, out)
	}
	checkConntrack(t, p1, 4789)

	for _, p := range []*vxPod{p1, p2} {
		if err := d.StopVM(p.id); err != nil {
			t.Fatalf("StopVM %s: %s", p.name, describeErr(err))
		}
		checkNoTunnel(t, p)
	}
	checkNotrack(t, 555000, 4789, false)
	checkNotrack(t, 555001, 4789, false)
	if r := nftRules(t); r != nil {
		t.Errorf("table peerpod left behind: %v", r)
	}
	checkNoState(t, d)
	// StopVM again: idempotent.
	if err := d.StopVM(p1.id); err != nil {
		t.Errorf("second StopVM: %s", describeErr(err))
	}
}

func scVxlanPTP(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p := tp.addPTPPod(1)
	t.env = []string{"VXLAN_PORT=9000"} // as in the OpenShift example peer-pods-cm
	d := tp.startDaemon(t.defaultDirs())
	pn := tp.podUp(d, p)
	checkPodNetwork(t, p, pn, 9000, 555000)
	if pn.MTU != 1400 || len(pn.Neighbors) != 1 || pn.Neighbors[0].IP != "169.254.1.1" || pn.Neighbors[0].State != "permanent" {
		t.Errorf("PTP pod-network: mtu %d neighbors %+v", pn.MTU, pn.Neighbors)
	}
	checkWorkerTunnel(t, p, 555000, 9000)
	checkVMSide(t, p, 1400)
	checkNotrack(t, 555000, 9000, true)
	ln := serveEcho(t, p.vmpod, p.ip+":7000")
	defer ln.Close()
	if b := tcpCheck(t, "", p.ip+":7000", 4<<20); b != p.vmpod {
		t.Errorf("TCP answered by %q, want %q", b, p.vmpod)
	}
	pingFromNode(t, p, p.ip)
	checkConntrack(t, p, 9000)
	if err := d.StopVM(p.id); err != nil {
		t.Fatalf("StopVM: %s", describeErr(err))
	}
	checkNoTunnel(t, p)
	checkNotrack(t, 555000, 9000, false)
	checkNoState(t, d)
}

// A pod namespace whose eth0 comes after 280 other links and after one link whose netlink
// message is bigger than a page (40 long altnames): the daemon must still find eth0 and its
// default route (a dump read into a page-sized buffer loses what follows the big message, a
// fixed-size link table what follows its end).
func scVxlanCrowded(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	crowd := func(ns string) {
		var b strings.Builder
		for i := 0; i < 140; i++ {
			fmt.Fprintf(&b, "link add c%da type veth peer name c%db\n", i, i)
		}
		b.WriteString("link add big0 type veth peer name big1\n")
		for i := 0; i < 40; i++ {
			fmt.Fprintf(&b, "link property add dev big0 altname %s%02d\n", strings.Repeat("n", 100), i)
		}
		f := filepath.Join(t.dir, "crowd.batch")
		if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
			t.Fatalf("%v", err)
		}
		t.must("ip", "-n", ns, "-batch", f)
		if out := t.must("ip", "-n", ns, "-o", "link", "show", "dev", "big0"); strings.Count(out, "altname") != 40 {
			t.Fatalf("big0 did not get its 40 altnames: %s", out)
		}
	}
	p := tp.addBridgePod(1, crowd)
	d := tp.startDaemon(t.defaultDirs())
	pn := tp.podUp(d, p)
	checkPodNetwork(t, p, pn, 4789, 555000)
	checkWorkerTunnel(t, p, 555000, 4789)
	if err := d.StopVM(p.id); err != nil {
		t.Fatalf("StopVM: %s", describeErr(err))
	}
	checkNoTunnel(t, p)
	checkNoState(t, d)
}

// After a restart (with the records, and with them lost), new pods never get a VNI a running
// pod uses, and running pods keep their datapath.
func scVxlanRestart(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p1, p2, p3, p4 := tp.addBridgePod(1), tp.addBridgePod(2), tp.addBridgePod(3), tp.addBridgePod(4)
	dirs := t.defaultDirs()
	d := tp.startDaemon(dirs)
	tp.podUp(d, p1)
	tp.podUp(d, p2)
	ln := serveEcho(t, p1.vmpod, p1.ip+":7000")
	defer ln.Close()
	d.Kill()
	d = tp.startDaemonAgain(dirs)
	pn3 := tp.podUp(d, p3)
	if pn3.VXLANID == 555000 || pn3.VXLANID == 555001 {
		t.Errorf("after a restart with records pod3 got VNI %d, in use by a running pod", pn3.VXLANID)
	}
	if b := tcpCheck(t, "", p1.ip+":7000", 1<<20); b != p1.vmpod {
		t.Errorf("pod1 after the restart: answered by %q", b)
	}
	d.Kill()
	// Records lost (a new pods dir): the devices in the pod namespaces still count.
	dirs2 := dirs
	dirs2.PodsDir = filepath.Join(t.dir, "pods2")
	dirs2.Sock = filepath.Join(t.dir, "hv2.sock")
	d2 := tp.startDaemonAgain(dirs2)
	pn4 := tp.podUp(d2, p4)
	if pn4.VXLANID >= 555000 && pn4.VXLANID <= 555002 {
		t.Errorf("after a restart without records pod4 got VNI %d, in use by a running pod", pn4.VXLANID)
	}
	if err := d2.StopVM(p4.id); err != nil {
		t.Errorf("StopVM pod4: %s", describeErr(err))
	}
	// The first daemon's pods are cleaned up by a daemon that has their records.
	d2.Kill()
	d = tp.startDaemonAgain(dirs)
	for _, p := range []*vxPod{p1, p2, p3} {
		if err := d.StopVM(p.id); err != nil {
			t.Errorf("StopVM %s: %s", p.name, describeErr(err))
		}
		checkNoTunnel(t, p)
	}
	if r := nftRules(t); r != nil {
		t.Errorf("table peerpod left behind: %v", r)
	}
	checkNoState(t, d)
}

func (tp *vxTopo) startDaemonAgain(dirs Dirs) *Daemon {
	return tp.t.StartDaemonDirs(dirs, "-fake-ip", vxVMIP)
}

func scVxlanInspectErrors(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p := tp.addBridgePod(1)
	t.must("ip", "-n", p.ns, "addr", "add", "10.244.1.99/24", "dev", "eth0")
	d := tp.startDaemon(t.defaultDirs())
	err := createIn(d, p, nsPath(p.ns))
	if err == nil || !strings.Contains(describeErr(err), "exactly one") || !strings.Contains(describeErr(err), "eth0") {
		t.Errorf("CreateVM with two pod addresses: %s", describeErr(err))
	}
	err = createIn(d, p, nsPath("no-such-netns"))
	if err == nil || !strings.Contains(describeErr(err), "no-such-netns") {
		t.Errorf("CreateVM with a missing netns: %s", describeErr(err))
	}
	t.must("ip", "-n", p.ns, "route", "del", "default")
	t.must("ip", "-n", p.ns, "addr", "del", "10.244.1.99/24", "dev", "eth0")
	err = createIn(d, p, nsPath(p.ns))
	if err == nil || !strings.Contains(describeErr(err), "default route") {
		t.Errorf("CreateVM without a default route: %s", describeErr(err))
	}
	checkNoState(t, d)
	if fs, _ := filepath.Glob(filepath.Join(d.Dirs.FakeDir, "*")); len(fs) != 0 {
		t.Errorf("the cloud got something: %v", fs)
	}
	// The failed CreateVMs gave their VNIs back... and the next pod works.
	t.must("ip", "-n", p.ns, "route", "add", "default", "via", "10.244.1.1")
	pn := tp.podUp(d, p)
	if pn.VXLANID != 555000 {
		t.Errorf("VNI after failed CreateVMs: %d, want 555000", pn.VXLANID)
	}
	if err := d.StopVM(p.id); err != nil {
		t.Errorf("StopVM: %s", describeErr(err))
	}
}

// The pod's namespace removed before StopVM (kata does that on some paths): StopVM still
// succeeds and removes the rules. And a StartVM whose tunnel cannot be made fails clearly
// and leaves nothing.
func scVxlanNetnsGone(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p1, p2 := tp.addBridgePod(1), tp.addBridgePod(2)
	d := tp.startDaemon(t.defaultDirs())
	tp.podUp(d, p1)
	t.must("ip", "netns", "del", p1.ns)
	if err := d.StopVM(p1.id); err != nil {
		t.Errorf("StopVM with the pod netns gone: %s", describeErr(err))
	}
	checkNotrack(t, 555000, 4789, false)

	if err := createIn(d, p2, nsPath(p2.ns)); err != nil {
		t.Fatalf("CreateVM: %s", describeErr(err))
	}
	// The CNI interface disappears between CreateVM and StartVM: setup must fail.
	t.must("ip", "-n", p2.ns, "link", "del", "eth0")
	err := d.StartVM(p2.id, optsStartVx)
	if err == nil || !strings.Contains(describeErr(err), "tunnel") {
		t.Errorf("StartVM without the pod interface: %s", describeErr(err))
	}
	if fs, _ := filepath.Glob(filepath.Join(d.Dirs.FakeDir, "*")); len(fs) != 0 {
		var b bytes.Buffer
		for _, f := range fs {
			b.WriteString(f + " ")
		}
		t.Errorf("VM left after a failed StartVM: %s", b.String())
	}
	checkNotrack(t, 555001, 4789, false)
	if linkJSON(t, p2.ns, "vxlan1") != nil {
		t.Errorf("vxlan1 left after a failed StartVM")
	}
	if err := d.StopVM(p2.id); err != nil {
		t.Errorf("StopVM: %s", describeErr(err))
	}
	checkNoState(t, d)
}

// checkAllGone: no VM in the fake cloud, no tunnel in p's namespace, no NOTRACK rule.
func checkAllGone(t *T, d *Daemon, p *vxPod) {
	if fs, _ := filepath.Glob(filepath.Join(d.Dirs.FakeDir, "*")); len(fs) != 0 {
		t.Errorf("the fake cloud still holds %v", fs)
	}
	checkNoTunnel(t, p)
	if r := nftRules(t); r != nil {
		t.Errorf("table peerpod left behind: %v", r)
	}
}

// The cloud's create fails after the address was known and the tunnel made: StartVM fails
// with the cloud's error and the tunnel goes with the VM.
func scVxlanCreateFails(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p := tp.addBridgePod(1)
	d := tp.startDaemon(t.defaultDirs(), "-fake-address-early", "-fake-create-delay", "1s", "-fake-create-fail")
	if err := createIn(d, p, nsPath(p.ns)); err != nil {
		t.Fatalf("CreateVM: %s", describeErr(err))
	}
	errc := make(chan error, 1)
	go func() { errc <- d.StartVM(p.id, optsStartVx) }()
	if !waitFor(5*time.Second, func() bool { return linkJSON(t, p.ns, "vxlan1") != nil }) {
		t.Fatalf("the tunnel was not set up while the VM was still being created")
	}
	err := <-errc
	if err == nil || !strings.Contains(describeErr(err), "injected create failure") {
		t.Errorf("StartVM: %s", describeErr(err))
	}
	checkAllGone(t, d, p)
	if err := d.StopVM(p.id); err != nil {
		t.Errorf("StopVM: %s", describeErr(err))
	}
	checkNoState(t, d)
}

// The VM's address comes only with the create's completion and cannot carry the tunnel (an
// IPv6 address): StartVM fails at once with the reason and the VM is rolled back (it once
// stayed, with StartVM and StopVM never answered).
func scVxlanTunnelRefusedAtCreate(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p := tp.addBridgePod(1)
	d := tp.startDaemon(t.defaultDirs(), "-fake-ip", "fd00::2")
	if err := createIn(d, p, nsPath(p.ns)); err != nil {
		t.Fatalf("CreateVM: %s", describeErr(err))
	}
	err := d.StartVM(p.id, callOpts{ServerTimeout: 20 * time.Second, ClientWait: 25 * time.Second})
	if err == nil || !strings.Contains(describeErr(err), "IPv4") {
		t.Errorf("StartVM with a VM address the tunnel cannot use: %s", describeErr(err))
	}
	checkAllGone(t, d, p)
	if err := d.StopVM(p.id); err != nil {
		t.Errorf("StopVM: %s", describeErr(err))
	}
	checkNoState(t, d)
}

// kill -9 while the VM is still being created but its tunnel exists: the restarted daemon
// rolls both back.
func scVxlanKill9MidStart(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p := tp.addBridgePod(1)
	dirs := t.defaultDirs()
	d := tp.startDaemon(dirs, "-fake-address-early", "-fake-create-delay", "60s")
	if err := createIn(d, p, nsPath(p.ns)); err != nil {
		t.Fatalf("CreateVM: %s", describeErr(err))
	}
	go d.StartVM(p.id, optsStartVx)
	if !waitFor(5*time.Second, func() bool { return linkJSON(t, p.ns, "vxlan1") != nil && len(nftRules(t)) == 2 }) {
		t.Fatalf("the tunnel was not set up while the VM was still being created")
	}
	d.Kill()
	d = tp.startDaemonAgain(dirs)
	if !waitFor(10*time.Second, func() bool {
		fs, _ := filepath.Glob(filepath.Join(dirs.FakeDir, "*"))
		return len(fs) == 0 && linkJSON(t, p.ns, "vxlan1") == nil && nftRules(t) == nil
	}) {
		t.Errorf("the interrupted start was not rolled back")
	}
	checkAllGone(t, d, p)
	if err := d.StopVM(p.id); err != nil {
		t.Errorf("StopVM: %s", describeErr(err))
	}
	checkNoState(t, d)
}

// -host-interface naming another interface than the default route's makes the tunnel
// dedicated; a VM with one address then cannot be reached that way: a clear error, no leak.
func scVxlanDedicated(t *T) {
	tp := newVxTopo(t)
	defer tp.destroy()
	p := tp.addBridgePod(1)
	t.must("ip", "addr", "add", "192.168.60.1/24", "dev", tp.br)
	d := tp.startDaemon(t.defaultDirs(), "-host-interface", tp.br)
	if err := createIn(d, p, nsPath(p.ns)); err != nil {
		t.Fatalf("CreateVM: %s", describeErr(err))
	}
	files, err := parseCloudConfig(mustReadFile(t, filepath.Join(d.Dirs.PodsDir, p.id, "userdata")))
	if err != nil {
		t.Fatalf("the sandbox's user-data: %v", err)
	}
	for _, f := range files {
		var a mirrorAPF
		if f.Path == "/run/peerpod/apf.json" && (json.Unmarshal([]byte(*f.Content), &a) != nil ||
			a.PodNetwork == nil || !a.PodNetwork.Dedicated || a.PodNetwork.WorkerNodeIP != "10.244.1.1/24") {
			t.Errorf("apf.json pod-network with -host-interface %s: %+v", tp.br, a.PodNetwork)
		}
	}
	err = d.StartVM(p.id, optsStartVx)
	if err == nil || !strings.Contains(describeErr(err), "second address") {
		t.Errorf("StartVM with a dedicated tunnel interface and one VM address: %s", describeErr(err))
	}
	checkAllGone(t, d, p)
	if err := d.StopVM(p.id); err != nil {
		t.Errorf("StopVM: %s", describeErr(err))
	}
	checkNoState(t, d)
}
