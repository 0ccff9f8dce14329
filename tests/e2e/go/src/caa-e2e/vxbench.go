package main

// The VXLAN benchmark of tests/bench/vxlan.sh (run through tests/vxlan/run.sh, which gives
// it a node namespace and a private /run/netns):
//
//   - tunnel setup per pod: the daemon's own measure of its setup job (log line "set up ...
//     in N us") against the same steps done in the same run with the iproute2 and nft
//     command-line tools (one process per step, as a shell script would);
//   - TCP throughput from the node to a pod IP through the tunnel (server in the VM pod
//     namespace) against the same namespaces without it (server in a plain CNI pod), rounds
//     interleaved.
//
// Results are printed as ratios, with the setup time also against the 10 ms target.

import (
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"time"
)

func pct(v []float64, p float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	i := int(p * float64(len(s)-1))
	return s[i]
}

// cliSetup builds the worker half for p with the command-line tools; returns its duration.
func cliSetup(t *T, p *vxPod, vni int) time.Duration {
	t0 := time.Now()
	t.must("ip", "link", "add", "vxlan1", "netns", p.ns, "type", "vxlan", "id", strconv.Itoa(vni), "remote", vxVMIP,
		"dstport", "4789")
	t.must("ip", "-n", p.ns, "link", "set", "vxlan1", "up")
	for _, pair := range [][2]string{{"eth0", "vxlan1"}, {"vxlan1", "eth0"}} {
		t.must("tc", "-n", p.ns, "qdisc", "add", "dev", pair[0], "ingress")
		t.must("tc", "-n", p.ns, "filter", "add", "dev", pair[0], "parent", "ffff:", "protocol", "all", "prio", "1",
			"u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", pair[1])
	}
	c := fmt.Sprintf("peerpod [vni:%d]", vni)
	t.must("nft", "add table ip bench; add chain ip bench output { type filter hook output priority raw; }; "+
		"add chain ip bench prerouting { type filter hook prerouting priority raw; }")
	t.must("nft", fmt.Sprintf(`add rule ip bench output ip daddr %s udp dport 4789 notrack comment "%s"`, vxVMIP, c))
	t.must("nft", fmt.Sprintf(`add rule ip bench prerouting ip saddr %s udp dport 4789 notrack comment "%s"`, vxVMIP, c))
	return time.Since(t0)
}

func cliTeardown(p *vxPod) {
	sh("tc", "-n", p.ns, "qdisc", "del", "dev", "eth0", "ingress")
	sh("ip", "-n", p.ns, "link", "del", "vxlan1")
}

// throughput sends n bytes to addr's echo-less sink and returns MB/s.
func throughput(t *T, addr string, n int) float64 {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 256<<10)
	t0 := time.Now()
	for sent := 0; sent < n; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("sending to %s: %v", addr, err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	ack := make([]byte, 1)
	if _, err := io.ReadFull(c, ack); err != nil { // the sink answers once it has read everything
		t.Fatalf("sink %s: %v", addr, err)
	}
	return float64(n) / 1e6 / time.Since(t0).Seconds()
}

// serveSink serves, inside ns, a TCP sink that answers one byte after EOF.
func serveSink(t *T, ns, addr string) net.Listener {
	return serveIn(t, ns, addr, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Write([]byte{1})
	})
}

var setupRe = regexp.MustCompile(`vxlan tunnel \(VNI \d+, remote [^)]*\) set up in \S+ in (\d+) us`)

func benchVxlan(t *T, pods, rounds int) {
	tp := newVxTopo(t)
	defer tp.destroy()
	var ps []*vxPod
	for k := 1; k <= pods+1; k++ {
		ps = append(ps, tp.addBridgePod(k))
	}
	plain := ps[pods] // never tunnelled: the baseline for throughput

	// Setup through the command-line tools, then undone.
	var cli []float64
	for i, p := range ps[:pods] {
		cli = append(cli, float64(cliSetup(t, p, 600000+i).Microseconds()))
		cliTeardown(p)
	}
	sh("nft", "delete", "table", "ip", "bench")

	d := tp.startDaemon(t.defaultDirs(), "-peerpods-limit-per-node", strconv.Itoa(pods))
	var startMs []float64
	for _, p := range ps[:pods] {
		t0 := time.Now()
		tp.podUp(d, p)
		startMs = append(startMs, float64(time.Since(t0).Microseconds())/1000)
	}
	var daemon []float64
	for _, m := range setupRe.FindAllStringSubmatch(string(mustReadFile(t, d.LogPath)), -1) {
		us, _ := strconv.Atoi(m[1])
		daemon = append(daemon, float64(us))
	}
	if len(daemon) != pods {
		t.Fatalf("found %d setup times in the daemon log, want %d", len(daemon), pods)
	}

	tun := ps[0]
	l1 := serveSink(t, tun.vmpod, tun.ip+":7100")
	defer l1.Close()
	l2 := serveSink(t, plain.ns, plain.ip+":7100")
	defer l2.Close()
	const size = 64 << 20
	var viaTunnel, direct []float64
	throughput(t, tun.ip+":7100", 4<<20) // warm-up: ARP, route caches
	throughput(t, plain.ip+":7100", 4<<20)
	for r := 0; r < rounds; r++ {
		viaTunnel = append(viaTunnel, throughput(t, tun.ip+":7100", size))
		direct = append(direct, throughput(t, plain.ip+":7100", size))
	}
	for _, p := range ps[:pods] {
		if err := d.StopVM(p.id); err != nil {
			t.Errorf("StopVM %s: %s", p.name, describeErr(err))
		}
	}

	fmt.Printf("vxlan bench: %d pods, %d throughput rounds of %d MiB\n", pods, rounds, size>>20)
	fmt.Printf("  tunnel setup (daemon job): median %.2f ms, p90 %.2f ms, max %.2f ms (target <= 10 ms: %s)\n",
		median(daemon)/1000, pct(daemon, 0.9)/1000, pct(daemon, 1)/1000, map[bool]string{true: "met", false: "NOT met"}[pct(daemon, 0.9) <= 10000])
	fmt.Printf("  same steps with ip/tc/nft commands: median %.2f ms\n", median(cli)/1000)
	fmt.Printf("  ratio setup daemon/cli: %.2fx\n", median(daemon)/median(cli))
	fmt.Printf("  StartVM wall time (fake cloud, TLS agent link, tunnel): median %.1f ms\n", median(startMs))
	fmt.Printf("  TCP throughput: via tunnel median %.0f MB/s, without tunnel median %.0f MB/s\n", median(viaTunnel),
		median(direct))
	fmt.Printf("  ratio throughput tunnel/direct: %.2fx\n", median(viaTunnel)/median(direct))
	if pct(daemon, 0.9) > 10000 {
		fmt.Fprintln(os.Stderr, "vxlan bench: setup p90 above the 10 ms target")
	}
}
