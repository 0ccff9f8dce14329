package main

// The server benchmark (tests/bench/server.sh), issue 9's P1 and P3:
//   - Version calls against the daemon and against a Go containerd/ttrpc server answering the
//     same bytes (a process of its own, the library the kata shim and the Go daemon use), same
//     Go client, 1 and 8 connections: server CPU per call (utime+stime from /proc/<pid>/stat)
//     and calls/s, as ratios daemon / Go;
//   - CreateVM + StartVM + StopVM with the instant fake provider: p50/p99, and the ratio to one
//     Version round trip measured in the same run;
//   - RSS idle and with 500 running sandboxes (VmRSS from /proc/<pid>/status).
// Results are printed; nothing here is a pass/fail test.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
)

// serveTTRPCEcho is the Go side of P1: a containerd/ttrpc server whose Version answers the
// daemon's exact bytes. Runs until killed.
func serveTTRPCEcho(sock string) int {
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv.Register(hypervisorService, map[string]ttrpc.Method{
		"Version": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req rawMsg
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &rawMsg{b: []byte{0x0a, 0x05, '0', '.', '0', '.', '0'}}, nil
		},
	})
	if err := srv.Serve(context.Background(), ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k, nil
}

// statusKiB reads one kB field of /proc/<pid>/status (VmRSS, RssAnon, ...).
func statusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return -1
}

// versionLoad makes calls Version calls over conns connections (each sequential) and
// returns the wall time and the server's CPU ticks for them.
func versionLoad(sock string, pid, conns, calls int) (time.Duration, int64, error) {
	clients := make([]*ttrpc.Client, conns)
	for i := range clients {
		c, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			return 0, 0, err
		}
		clients[i] = ttrpc.NewClient(c)
		defer clients[i].Close()
	}
	before, err := cpuTicks(pid)
	if err != nil {
		return 0, 0, err
	}
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for _, cl := range clients {
		wg.Add(1)
		go func(cl *ttrpc.Client) {
			defer wg.Done()
			for i := 0; i < calls/conns; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp := &rawMsg{}
				err := cl.Call(ctx, hypervisorService, "Version", &rawMsg{}, resp)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}(cl)
	}
	wg.Wait()
	el := time.Since(began)
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	after, err := cpuTicks(pid)
	return el, after - before, err
}

func runServerBench(daemonBin string, calls int) int {
	if os.Getenv("CAA_BENCH_P4_ONLY") != "" {
		return benchScale(daemonBin)
	}
	dir, err := os.MkdirTemp("", "sb-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	t := &T{name: "server-bench", dir: dir, daemonB: daemonBin}
	defer t.killDaemons()
	d := t.StartDaemon("-disable-tls", "-peerpods-limit-per-node", "1000")
	if t.Failed() {
		return 1
	}
	dpid := d.cmd.Process.Pid
	idle, idleAnon := statusKiB(dpid, "VmRSS"), statusKiB(dpid, "RssAnon") // before any load grows the heap
	self, _ := os.Executable()
	echoSock := filepath.Join(dir, "echo.sock")
	echo := exec.Command(self, "-ttrpc-echo", echoSock)
	echo.Stderr = os.Stderr
	if err := echo.Start(); err != nil {
		fmt.Println(err)
		return 1
	}
	registerProc(echo.Process)
	defer func() { echo.Process.Kill(); echo.Wait(); unregisterProc(echo.Process) }()
	up := func() bool {
		c, err := net.Dial("unix", echoSock)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if !waitFor(10*time.Second, up) {
		fmt.Println("bench: the Go ttrpc server did not come up")
		return 1
	}

	fmt.Printf("P1 Version: %d calls per run, server CPU from /proc/<pid>/stat\n", calls)
	connSet := []int{1, 8}
	if os.Getenv("CAA_BENCH_P1_ONLY") == "8" {
		connSet = []int{8}
	}
	for _, conns := range connSet {
		// Warm up both, then interleave 3 rounds each.
		versionLoad(d.Dirs.Sock, dpid, conns, calls/10)
		versionLoad(echoSock, echo.Process.Pid, conns, calls/10)
		var dw, gw time.Duration
		var dc, gc int64
		for r := 0; r < 3; r++ {
			w, c, err := versionLoad(d.Dirs.Sock, dpid, conns, calls)
			if err != nil {
				fmt.Printf("bench: daemon: %v\n", err)
				return 1
			}
			dw, dc = dw+w, dc+c
			w, c, err = versionLoad(echoSock, echo.Process.Pid, conns, calls)
			if err != nil {
				fmt.Printf("bench: go server: %v\n", err)
				return 1
			}
			gw, gc = gw+w, gc+c
		}
		n := float64(3 * calls)
		cpuRatio := float64(dc) / float64(gc)
		fmt.Printf("  %d conn: CPU per call daemon/go %.2fx (go uses %.1fx the daemon's CPU), calls/s daemon/go %.2fx"+
			" [daemon %.0f calls/s, %.1f us CPU/call; go %.0f calls/s, %.1f us CPU/call]\n",
			conns, cpuRatio, 1/cpuRatio, gw.Seconds()/dw.Seconds(),
			n/dw.Seconds(), float64(dc)*1e4/n, n/gw.Seconds(), float64(gc)*1e4/n)
	}

	if os.Getenv("CAA_BENCH_P1_ONLY") != "" { // profiling the Version path
		return 0
	}
	// One Version round trip on a fresh connection: the baseline of the lifecycle numbers.
	var base []time.Duration
	for i := 0; i < 600; i++ {
		began := time.Now()
		if err := d.Call(hypervisorService, "Version", &VersionRequest{}, &VersionResponse{}, optsPlain); err != nil {
			fmt.Printf("bench: %v\n", err)
			return 1
		}
		base = append(base, time.Since(began))
	}
	sort.Slice(base, func(i, j int) bool { return base[i] < base[j] })
	if os.Getenv("CAA_BENCH_PHASES") != "" {
		fmt.Printf("    Version on a fresh connection: p50 %v p99 %v\n", base[len(base)/2].Round(time.Microsecond),
			base[len(base)*99/100].Round(time.Microsecond))
	}
	p50, p99, err := lifecycles(d, 200)
	if err != nil {
		fmt.Printf("bench: %v\n", err)
		return 1
	}
	fmt.Printf("Create+Start+Stop, instant fake provider, 200 sequential, pods dir on disk (%s): p50 %v p99 %v "+
		"(target p99 < 2 ms); p50 = %.1fx one Version round trip on a fresh connection (%v)\n", fsType(d.Dirs.PodsDir),
		p50.Round(time.Microsecond), p99.Round(time.Microsecond), float64(p50)/float64(base[len(base)/2]),
		base[len(base)/2].Round(time.Microsecond))
	// The DaemonSet's pods dir is /run/peerpod/pods, a tmpfs on the node: syncs cost nothing there.
	if shm, err := os.MkdirTemp("/dev/shm", "p"); err == nil {
		dirs := t.defaultDirs()
		dirs.Sock = filepath.Join(dir, "hv-tmpfs.sock")
		dirs.PodsDir = filepath.Join(shm, "pods")
		dirs.FakeDir = filepath.Join(shm, "cloud") // the instant provider's own files cost nothing either
		d2 := t.StartDaemonDirs(dirs, "-disable-tls", "-peerpods-limit-per-node", "1000")
		p50, p99, err := lifecycles(d2, 200)
		d2.Kill()
		os.RemoveAll(shm)
		if err != nil {
			fmt.Printf("bench: %v\n", err)
			return 1
		}
		fmt.Printf("  the same with the pods dir on tmpfs (as /run/peerpod on a node): p50 %v p99 %v (target p99 < 2 ms: "+
			"%.2fx of it)\n", p50.Round(time.Microsecond), p99.Round(time.Microsecond), float64(p99)/float64(2*time.Millisecond))
		if w := wakeupNs(); w > 0 {
			fmt.Printf("  in process-to-process round trips of this machine (tests/bench/wakeup.c): p50 %.1f, p99 %.1f; "+
				"one Version on a fresh connection p50 %.1f\n", float64(p50)/w, float64(p99)/w, float64(base[len(base)/2])/w)
		}
	}

	ids := make([]string, 500)
	for i := range ids {
		ids[i] = newSandboxID()
		if _, err := d.CreateVM(ids[i], fmt.Sprintf("rss-%03d", i), "bench"); err != nil {
			fmt.Printf("bench: CreateVM: %s\n", describeErr(err))
			return 1
		}
		if err := d.StartVM(ids[i], optsStart); err != nil {
			fmt.Printf("bench: StartVM: %s\n", describeErr(err))
			return 1
		}
	}
	full, fullAnon := statusKiB(dpid, "VmRSS"), statusKiB(dpid, "RssAnon")
	fmt.Printf("P3 memory: idle RSS %.2f MiB of which anonymous %.2f MiB (target <= 4 MiB: %.2fx of it; the rest is "+
		"shared library pages); 500 running sandboxes: RSS %.2f MiB, anonymous %.2f MiB, %.1f KiB anonymous per "+
		"sandbox (target <= 64 KiB: %.2fx of it)\n",
		float64(idle)/1024, float64(idleAnon)/1024, float64(idleAnon)/4096, float64(full)/1024, float64(fullAnon)/1024,
		float64(fullAnon-idleAnon)/500, float64(fullAnon-idleAnon)/500/64)
	for _, id := range ids {
		d.StopVM(id)
	}
	if rc := benchMemoryTLS(daemonBin); rc != 0 {
		return rc
	}
	if rc := benchScale(daemonBin); rc != 0 {
		return rc
	}
	return benchForwarderUp(daemonBin)
}

// benchMemoryTLS is P3 again with mutual TLS to the forwarders (the default): what an SSL
// object and the plaintext buffer add per running sandbox.
func benchMemoryTLS(daemonBin string) int {
	dir, err := os.MkdirTemp("", "mt-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	t := &T{name: "tls-memory-bench", dir: dir, daemonB: daemonBin}
	defer t.killDaemons()
	d := t.StartDaemon("-peerpods-limit-per-node", "1000")
	if t.Failed() {
		return 1
	}
	pid := d.cmd.Process.Pid
	idle := statusKiB(pid, "RssAnon")
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = newSandboxID()
	}
	if _, err := startAll(d, ids[:1], "warm"); err != nil { // the first TLS link loads OpenSSL's tables
		fmt.Printf("bench: %v\n", err)
		return 1
	}
	warm := statusKiB(pid, "RssAnon")
	for i := 1; i < len(ids); i++ {
		if _, err := startAll(d, ids[i:i+1], fmt.Sprintf("tls%03d", i)); err != nil {
			fmt.Printf("bench: %v\n", err)
			return 1
		}
	}
	full := statusKiB(pid, "RssAnon")
	fmt.Printf("P3 memory with mutual TLS: anonymous %.2f MiB idle, %.2f MiB after the first link, %.2f MiB with 500 "+
		"sandboxes: %.1f KiB per sandbox (target <= 64 KiB: %.2fx of it)\n", float64(idle)/1024, float64(warm)/1024,
		float64(full)/1024, float64(full-warm)/499, float64(full-warm)/499/64)
	for _, id := range ids {
		d.StopVM(id)
	}
	return 0
}

// startAll runs CreateVM + StartVM for every id at once and returns the wall time.
func startAll(d *Daemon, ids []string, pod string) (time.Duration, error) {
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	created := make([]time.Duration, len(ids))
	started := make([]time.Duration, len(ids))
	for i, id := range ids {
		wg.Add(1)
		go func(i int, id string) {
			defer wg.Done()
			if _, err := d.CreateVM(id, fmt.Sprintf("%s-%03d", pod, i), "bench"); err != nil {
				errs <- fmt.Errorf("CreateVM: %s", describeErr(err))
				return
			}
			created[i] = time.Since(began)
			if err := d.StartVM(id, optsStart); err != nil {
				errs <- fmt.Errorf("StartVM: %s", describeErr(err))
			}
			started[i] = time.Since(began)
		}(i, id)
	}
	wg.Wait()
	el := time.Since(began)
	if os.Getenv("CAA_BENCH_PHASES") != "" && len(ids) > 1 {
		q := func(v []time.Duration) string {
			w := append([]time.Duration(nil), v...)
			sort.Slice(w, func(i, j int) bool { return w[i] < w[j] })
			return fmt.Sprintf("first %v median %v last %v", w[0].Round(time.Millisecond),
				w[len(w)/2].Round(time.Millisecond), w[len(w)-1].Round(time.Millisecond))
		}
		fmt.Printf("    CreateVM answered: %s; StartVM answered: %s\n", q(created), q(started))
	}
	close(errs)
	return el, <-errs
}

// benchScale is P4: 500 pods at once against a fake cloud whose creates take 2 s, against
// one pod alone on the same daemon: total time / one pod's time. Run twice: with the pods dir
// and the fake cloud's files on tmpfs (as /run/peerpod on a node), and on the runner's disk.
func benchScale(daemonBin string) int {
	if rc := benchScaleOn(daemonBin, "/dev/shm"); rc != 0 {
		return rc
	}
	return benchScaleOn(daemonBin, "")
}

func benchScaleOn(daemonBin, base string) int {
	dir, err := os.MkdirTemp(base, "sc-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	t := &T{name: "scale-bench", dir: dir, daemonB: daemonBin}
	defer t.killDaemons()
	d := t.StartDaemon("-disable-tls", "-peerpods-limit-per-node", "1000", "-fake-create-delay", "2s")
	if t.Failed() {
		return 1
	}
	one := []string{newSandboxID()}
	single, err := startAll(d, one, "one")
	if err != nil {
		fmt.Printf("bench: %v\n", err)
		return 1
	}
	d.StopVM(one[0])
	many := make([]string, 500)
	for i := range many {
		many[i] = newSandboxID()
	}
	total, err := startAll(d, many, "many")
	if err != nil {
		fmt.Printf("bench: %v\n", err)
		return 1
	}
	for _, id := range many {
		d.StopVM(id)
	}
	fmt.Printf("P4 500 pods at once, creates taking 2 s, pods dir on %s: %v in all, one pod alone %v: %.2fx (target <= 1.5x)\n",
		fsType(d.Dirs.PodsDir), total.Round(time.Millisecond), single.Round(time.Millisecond), total.Seconds()/single.Seconds())
	return 0
}

// benchForwarderUp is P5: how long StartVM takes to return once the pod VM's forwarder
// starts listening, the forwarder coming up at several delays after StartVM began.
func benchForwarderUp(daemonBin string) int {
	dir, err := os.MkdirTemp("", "fu-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	t := &T{name: "fwup-bench", dir: dir, daemonB: daemonBin, fwPort: port}
	defer t.killDaemons()
	d := t.StartDaemon("-disable-tls", "-fake-address-early")
	if t.Failed() {
		return 1
	}
	var gaps []time.Duration
	for _, delay := range []time.Duration{100, 300, 600, 900, 1300, 1900, 2500} {
		delay *= time.Millisecond
		id := newSandboxID()
		if _, err := d.CreateVM(id, "fwup", "bench"); err != nil {
			fmt.Printf("bench: CreateVM: %s\n", describeErr(err))
			return 1
		}
		ch := startAsync(d, id, optsStart)
		time.Sleep(delay) // the pod VM boots: this is the scenario's input, not a synchronisation
		fw, err := StartForwarderAt(fmt.Sprintf("127.0.0.1:%d", port), filepath.Join(dir, "cloud"), false)
		if err != nil {
			fmt.Printf("bench: forwarder: %v\n", err)
			return 1
		}
		up := time.Now()
		r, ok := waitResult(ch, 30*time.Second)
		fw.Close()
		if !ok || r.err != nil {
			fmt.Printf("bench: StartVM: done %v, %s\n", ok, describeErr(r.err))
			return 1
		}
		gaps = append(gaps, r.at.Sub(up))
		d.StopVM(id)
	}
	sorted := append([]time.Duration(nil), gaps...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	fmt.Printf("P5 StartVM return after the forwarder listens (forwarder up 0.1-2.5 s after StartVM): median %v, worst %v "+
		"(target <= 100 ms: worst %.1fx of it); each: %v\n", sorted[len(sorted)/2].Round(time.Millisecond),
		sorted[len(sorted)-1].Round(time.Millisecond), float64(sorted[len(sorted)-1])/float64(100*time.Millisecond), gaps)
	return 0
}

// runLifecycleBench runs only the tmpfs lifecycle measurement, n times, for profiling
// the daemon's lifecycle path (CAA_BENCH_PHASES prints each call's percentiles).
func runLifecycleBench(daemonBin string, n int) int {
	dir, err := os.MkdirTemp(os.Getenv("CAA_BENCH_TMP"), "sb-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	shm, err := os.MkdirTemp("/dev/shm", "p")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(shm)
	t := &T{name: "lifecycle-bench", dir: dir, daemonB: daemonBin}
	defer t.killDaemons()
	dirs := t.defaultDirs()
	dirs.PodsDir = filepath.Join(shm, "pods")
	dirs.FakeDir = filepath.Join(shm, "cloud")
	d := t.StartDaemonDirs(dirs, "-disable-tls", "-peerpods-limit-per-node", "1000")
	if t.Failed() {
		return 1
	}
	fmt.Printf("daemon pid %d\n", d.cmd.Process.Pid)
	p50, p99, err := lifecycles(d, n)
	if err != nil {
		fmt.Printf("bench: %v\n", err)
		return 1
	}
	fmt.Printf("Create+Start+Stop, pods dir on tmpfs, %d sequential: p50 %v p99 %v (target p99 < 2 ms)\n", n,
		p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	return 0
}

// lifecycles runs n sequential CreateVM+StartVM+StopVM and returns the p50 and p99 of the
// whole; with CAA_BENCH_PHASES set it also prints each call's.
func lifecycles(d *Daemon, n int) (p50, p99 time.Duration, err error) {
	var lc []time.Duration
	phases := [3][]time.Duration{}
	var lcAt []time.Duration
	t0 := time.Now()
	for i := 0; i < n; i++ {
		id := newSandboxID()
		began := time.Now()
		if _, err := d.CreateVM(id, fmt.Sprintf("bench-%03d", i), "bench"); err != nil {
			return 0, 0, fmt.Errorf("CreateVM: %s", describeErr(err))
		}
		t1 := time.Now()
		if err := d.StartVM(id, optsStart); err != nil {
			return 0, 0, fmt.Errorf("StartVM: %s", describeErr(err))
		}
		t2 := time.Now()
		if err := d.StopVM(id); err != nil {
			return 0, 0, fmt.Errorf("StopVM: %s", describeErr(err))
		}
		t3 := time.Now()
		lc = append(lc, t3.Sub(began))
		lcAt = append(lcAt, began.Sub(t0))
		phases[0] = append(phases[0], t1.Sub(began))
		phases[1] = append(phases[1], t2.Sub(t1))
		phases[2] = append(phases[2], t3.Sub(t2))
	}
	pct := func(v []time.Duration) (time.Duration, time.Duration) {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2], v[len(v)*99/100]
	}
	if os.Getenv("CAA_BENCH_SLOW") != "" {
		for i, v := range lc {
			if v > 2*time.Millisecond {
				fmt.Printf("    slow #%d at %v: %v (create %v start %v stop %v)\n", i, lcAt[i].Round(time.Millisecond), v.Round(time.Microsecond),
					phases[0][i].Round(time.Microsecond), phases[1][i].Round(time.Microsecond), phases[2][i].Round(time.Microsecond))
			}
		}
	}
	if os.Getenv("CAA_BENCH_PHASES") != "" {
		for i, name := range []string{"CreateVM", "StartVM", "StopVM"} {
			a, b := pct(phases[i])
			fmt.Printf("    %s p50 %v p99 %v\n", name, a.Round(time.Microsecond), b.Round(time.Microsecond))
		}
	}
	p50, p99 = pct(lc)
	return p50, p99, nil
}

// fsType names the file system holding path (ext4, tmpfs, ...), from /proc/self/mounts.
func fsType(path string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && strings.HasPrefix(path, f[1]) && len(f[1]) >= len(best) {
			best, typ = f[1], f[2]
		}
	}
	return typ
}
