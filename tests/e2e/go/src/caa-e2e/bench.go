package main

// The relay benchmark (tests/bench/relay.sh): one client drives the stand-in agent three ways
// in the same run, interleaved round by round: through the daemon's relay (agent socket ->
// daemon -> TCP -> forwarder), directly over TCP, and through socat relaying the same
// traffic (agent socket -> socat -> TCP). Small calls measure round-trip latency, 4 MiB
// calls throughput. Only ratios are printed as results.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/ttrpc"
)

type benchPath struct {
	name string
	dial func() (net.Conn, error)
}

func benchRound(p benchPath, small int, big int, payload []byte) (time.Duration, float64, error) {
	conn, err := p.dial()
	if err != nil {
		return 0, 0, err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	began := time.Now()
	for i := 0; i < small; i++ {
		if _, err := agentCallOn(client, "grpc.Health", "Check", nil, 10*time.Second, nil); err != nil {
			return 0, 0, err
		}
	}
	lat := time.Since(began) / time.Duration(small)
	began = time.Now()
	for i := 0; i < big; i++ {
		resp, err := agentCallOn(client, "grpc.AgentService", "CopyFile", payload, 30*time.Second, nil)
		if err != nil || len(resp) != len(payload) {
			return 0, 0, fmt.Errorf("4 MiB echo: %v (%d bytes)", err, len(resp))
		}
	}
	mbps := float64(2*big*len(payload)) / time.Since(began).Seconds() / 1e6
	return lat, mbps, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func runBench(daemonBin string, rounds, small, big int) int {
	dir, err := os.MkdirTemp("", "caa-bench-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	t := &T{name: "bench", dir: dir, daemonB: daemonBin}
	defer t.killDaemons()
	// The stand-in agent runs in a process of its own, as the real agent does: the direct
	// path is then a connection between two processes, like the relay's hops.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	t.fwPort = probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	self, _ := os.Executable()
	agent := exec.Command(self, "-forwarder", fmt.Sprint(t.fwPort))
	if err := agent.Start(); err != nil {
		fmt.Printf("bench: stand-in agent: %v\n", err)
		return 1
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	if !waitFor(10*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", t.fwPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		fmt.Println("bench: the stand-in agent did not start")
		return 1
	}
	d, err := t.spawnDaemon(t.defaultDirs(), "-disable-tls")
	if err == nil {
		err = d.WaitReady(15 * time.Second)
	}
	if err != nil {
		fmt.Printf("bench: daemon: %v\n", err)
		return 1
	}
	id := newSandboxID()
	resp := &CreateVMResponse{}
	if err := d.Call(hypervisorService, "CreateVM", &CreateVMRequest{Id: id, Annotations: kataAnnotations("bench", "default")},
		resp, optsPlain); err != nil {
		fmt.Printf("bench: CreateVM: %v\n", err)
		return 1
	}
	if err := d.StartVM(id, optsStart); err != nil {
		fmt.Printf("bench: StartVM: %v\n", err)
		return 1
	}
	fwAddr := fmt.Sprintf("127.0.0.1:%d", t.fwPort)
	socatSock := filepath.Join(dir, "socat.sock")
	socat := exec.Command("socat", "UNIX-LISTEN:"+socatSock+",fork", "TCP:"+fwAddr+",nodelay")
	if err := socat.Start(); err != nil {
		fmt.Printf("bench: socat: %v\n", err)
		return 1
	}
	defer func() { socat.Process.Kill(); socat.Wait() }()
	waitFor(10*time.Second, func() bool { return exists(socatSock) })
	paths := []benchPath{
		{"relay", func() (net.Conn, error) { return net.DialTimeout("unix", resp.AgentSocketPath, 5*time.Second) }},
		{"direct", func() (net.Conn, error) { return net.DialTimeout("tcp", fwAddr, 5*time.Second) }},
		{"socat", func() (net.Conn, error) { return net.DialTimeout("unix", socatSock, 5*time.Second) }},
	}
	payload := pbBytes(2, make([]byte, 4<<20-1024))
	lat := map[string][]float64{}
	tput := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for _, p := range paths {
			l, m, err := benchRound(p, small, big, payload)
			if err != nil {
				fmt.Printf("bench: %s: %v\n", p.name, err)
				return 1
			}
			lat[p.name] = append(lat[p.name], float64(l.Nanoseconds()))
			tput[p.name] = append(tput[p.name], m)
		}
	}
	relayL, directL, socatL := median(lat["relay"]), median(lat["direct"]), median(lat["socat"])
	relayT, directT, socatT := median(tput["relay"]), median(tput["direct"]), median(tput["socat"])
	fmt.Printf("bench: %d rounds of %d small calls (Health/Check) and %d calls of 4 MiB each way (CopyFile echo), medians\n",
		rounds, small, big)
	fmt.Printf("bench: small-call latency  relay/direct %.2fx   relay/socat %.2fx\n", relayL/directL, relayL/socatL)
	fmt.Printf("bench: 4 MiB throughput    relay/direct %.2fx   relay/socat %.2fx\n", relayT/directT, relayT/socatT)
	if os.Getenv("CAA_BENCH_ABS") != "" {
		fmt.Printf("bench: each round (profiling, not a result): latency ns %v, MB/s %v\n", lat, tput)
	}
	if w := wakeupNs(); w > 0 {
		fmt.Printf("bench: in process-to-process round trips of this machine (tests/bench/wakeup.c): a direct small call "+
			"costs %.2f, the relay adds %.2f, socat adds %.2f (a relay process cannot add less than 1)\n",
			directL/w, (relayL-directL)/w, (socatL-directL)/w)
	}
	return 0
}

// wakeupNs runs the machine-floor probe named by CAA_BENCH_WAKEUP (tests/bench/wakeup.c):
// the median round trip between two processes that block between bounces, in ns; 0 if unset
// or it fails.
func wakeupNs() float64 {
	bin := os.Getenv("CAA_BENCH_WAKEUP")
	if bin == "" {
		return 0
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		fmt.Printf("bench: %s: %v\n", bin, err)
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || v <= 0 {
		return 0
	}
	return v
}

// envInt is the integer in environment variable name, or def when unset or not a number.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
