// caa-e2e drives the cloud-api-adaptor daemon binary (built with its `fake`
// test provider) over its real hypervisor socket, using containerd/ttrpc —
// the same client library the kata shim uses — plus hand-made raw frames.
//
// Usage: caa-e2e [-daemon build/test/cloud-api-adaptor] [-run REGEXP]
//
//	[-timeout 60s] [-keep] [-v] [-netns PATH] [-list]
//
// Each scenario gets its own temporary directory and daemon instance(s).
// Output: one "--- PASS: name (dur)" or "--- FAIL: name: reason" line per
// scenario, then a final "N passed, N failed" line. Exit status 1 if any
// scenario failed.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

type scenario struct {
	name string
	fn   func(t *T)
}

func main() {
	os.Exit(run())
}

func run() (rc int) {
	daemon := flag.String("daemon", "build/test/cloud-api-adaptor", "path of the daemon binary under test")
	runRe := flag.String("run", "", "only run scenarios whose name matches this regular expression")
	timeout := flag.Duration("timeout", 60*time.Second, "per-scenario time limit")
	keep := flag.Bool("keep", false, "keep every scenario's temporary directory (failed ones are always kept)")
	verbose := flag.Bool("v", false, "print harness logs and daemon logs for passing scenarios too")
	list := flag.Bool("list", false, "list scenario names and exit")
	flag.StringVar(&netnsPath, "netns", "", "networkNamespacePath to send in CreateVM")
	demoSock := flag.String("demo", "", "play the kata shim for one pod against the daemon at this socket (make demo)")
	serveFw := flag.String("forwarder", "", "serve the stand-in pod VM (plain TCP forwarder + agent) on this port until killed")
	bench := flag.Int("bench", 0, "run the relay benchmark with this many rounds (tests/bench/relay.sh)")
	benchVx := flag.Int("bench-vxlan", 0, "run the VXLAN benchmark with this many pods (tests/bench/vxlan.sh, under tests/vxlan/run.sh)")
	mirror := flag.String("mirror", "", "build the pod VM side of the VXLAN pod network this apf.json describes, then exit")
	mirrorVM := flag.String("mirror-vm-netns", "", "with -mirror: the VM host network namespace path")
	mirrorPod := flag.String("mirror-pod-netns", "", "with -mirror: the VM pod network namespace path")
	mirrorDown := flag.Bool("mirror-teardown", false, "with -mirror: delete what -mirror built instead")
	echoSock := flag.String("ttrpc-echo", "", "serve Version on this socket with Go's containerd/ttrpc until killed (server benchmark)")
	benchSrv := flag.Int("bench-server", 0, "run the server benchmark with this many Version calls per run (tests/bench/server.sh)")
	benchLc := flag.Int("bench-lifecycle", 0, "run only the lifecycle part of the server benchmark (pods dir on tmpfs) this many times")
	probe := flag.String("probe-version", "", "send Version to the daemon at this socket every 10 ms until stdin closes (fd 3 gets a byte after the first), then print the round trips")
	probePid := flag.Int("probe-pid", 0, "with -probe-version: the daemon's pid, whose loop thread's CPU time and run-queue wait each probe also reads")
	flag.Parse()
	if *probe != "" {
		return runProbe(*probe, *probePid)
	}
	if *echoSock != "" {
		return serveTTRPCEcho(*echoSock)
	}
	if *benchLc > 0 {
		return runLifecycleBench(*daemon, *benchLc)
	}
	if *benchSrv > 0 {
		return runServerBench(*daemon, *benchSrv)
	}
	if *mirror != "" {
		return runMirror(*mirror, *mirrorVM, *mirrorPod, *mirrorDown)
	}
	if *bench > 0 {
		return runBench(*daemon, *bench, envInt("CAA_BENCH_SMALL", 2000), 20)
	}
	if *demoSock != "" {
		return runDemo(*demoSock, netnsPath)
	}
	if *serveFw != "" {
		return serveForwarder(*serveFw)
	}

	// Whatever happens, no daemon outlives the runner.
	defer killAllDaemons()
	defer func() {
		if r := recover(); r != nil {
			fmt.Printf("runner panic: %v\n%s\n", r, debug.Stack())
			killAllDaemons()
			rc = 2
		}
	}()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigc
		fmt.Printf("caa-e2e: got %v, killing daemons\n", s)
		killAllDaemons()
		os.Exit(130)
	}()

	all := append(append(append(append(scenarios(), userdataScenarios()...), libvirtScenarios()...), relayScenarios()...), libvirtdScenarios()...)
	all = append(all, vxlanScenarios()...)
	all = append(all, azureScenarios()...)
	all = append(all, nodeScenarios()...)
	all = append(all, probeScenarios()...)
	if os.Getenv("CAA_E2E_NODE") == "" && os.Getenv("CAA_E2E_VXLAN") == "" && os.Getenv("CAA_E2E_LIBVIRT_URI") == "" {
		all = append(all, secretsScenario()...) // last: reads what the others left
	}
	noteInitdataSeeds()
	if *list {
		for _, s := range all {
			fmt.Println(s.name)
		}
		return 0
	}
	var re *regexp.Regexp
	if *runRe != "" {
		var err error
		if re, err = regexp.Compile(*runRe); err != nil {
			fmt.Printf("bad -run regexp: %v\n", err)
			return 2
		}
	}
	var selected []scenario
	for _, s := range all {
		if re == nil || re.MatchString(s.name) {
			selected = append(selected, s)
		}
	}
	if *benchVx > 0 {
		n := *benchVx
		selected = []scenario{{"bench_vxlan", func(t *T) { benchVxlan(t, n, 5) }}}
	}

	bin, err := filepath.Abs(*daemon)
	if err == nil {
		var st os.FileInfo
		st, err = os.Stat(bin)
		if err == nil && (st.IsDir() || st.Mode()&0o111 == 0) {
			err = fmt.Errorf("%s is not an executable file", bin)
		}
	}
	if err != nil {
		for _, s := range selected {
			fmt.Printf("--- FAIL: %s: daemon binary unusable: %v\n", s.name, err)
		}
		fmt.Printf("%d passed, %d failed\n", 0, len(selected))
		return 1
	}

	passed, failed := 0, 0
	start := time.Now()
	for _, s := range selected {
		if runOne(s, bin, *timeout, *keep, *verbose) {
			passed++
		} else {
			failed++
		}
	}
	fmt.Printf("(total %s)\n", time.Since(start).Round(time.Millisecond))
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

func runOne(s scenario, bin string, timeout time.Duration, keep, verbose bool) bool {
	dir, err := os.MkdirTemp("", "caa-e2e-")
	if err != nil {
		fmt.Printf("--- FAIL: %s: creating temp dir: %v\n", s.name, err)
		return false
	}
	t := &T{name: s.name, dir: dir, daemonB: bin}
	fmt.Printf("=== RUN   %s\n", s.name)
	began := time.Now()

	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		s.fn(t)
	}()

	select {
	case <-done:
	case <-time.After(timeout):
		t.Errorf("scenario timed out after %v", timeout)
		t.killDaemons()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("scenario goroutine still running 10s after its daemons were killed")
		}
	}
	if os.Getenv("CAA_E2E_KILL") == "" {
		t.stopDaemonsGracefully()
	}
	t.killDaemons()
	if t.fw != nil {
		t.fw.Close()
	}
	// A sanitizer report anywhere in a daemon's log fails the scenario, whatever it checked.
	t.mu.Lock()
	started := append([]*Daemon(nil), t.daemons...)
	t.mu.Unlock()
	for _, d := range started {
		if b, err := os.ReadFile(d.LogPath); err == nil {
			for _, bad := range []string{"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"} {
				if strings.Contains(string(b), bad) {
					t.Errorf("daemon #%d log has a sanitizer report (%q): %s", d.Index, bad, d.LogPath)
				}
			}
		}
	}
	collectEvidence(t)
	dur := time.Since(began).Round(time.Millisecond)

	t.mu.Lock()
	t.closed = true
	failures := append([]string(nil), t.failures...)
	logs := append([]string(nil), t.logs...)
	daemons := append([]*Daemon(nil), t.daemons...)
	t.mu.Unlock()

	ok := len(failures) == 0
	if ok {
		fmt.Printf("--- PASS: %s (%s)\n", s.name, dur)
	} else {
		first := strings.SplitN(failures[0], "\n", 2)[0]
		if len(failures) > 1 {
			first += fmt.Sprintf(" (+%d more)", len(failures)-1)
		}
		fmt.Printf("--- FAIL: %s: %s\n", s.name, first)
		fmt.Printf("    duration %s, temp dir kept: %s\n", dur, dir)
		for i, f := range failures {
			fmt.Printf("    failure %d: %s\n", i+1, indent(f, "      "))
		}
	}
	if !ok || verbose {
		for _, l := range logs {
			fmt.Printf("    log: %s\n", l)
		}
		for _, d := range daemons {
			fmt.Printf("    ---- daemon #%d stderr (%s, %s) ----\n", d.Index, d.LogPath, d.exitString())
			for _, l := range tailFile(d.LogPath, 150) {
				fmt.Printf("    | %s\n", l)
			}
		}
	}
	if ok && !keep {
		os.RemoveAll(dir)
	}
	return ok
}

// stopDaemonsGracefully sends SIGTERM to every daemon still running and waits (bounded) for
// it to exit 0, so that a sanitizer build's leak check at exit runs over whatever state the
// scenario left behind.
func (t *T) stopDaemonsGracefully() {
	t.mu.Lock()
	ds := append([]*Daemon(nil), t.daemons...)
	t.mu.Unlock()
	for _, d := range ds {
		if d.cmd == nil || d.cmd.Process == nil || d.Exited() {
			continue
		}
		if err := d.Signal(syscall.SIGTERM); err != nil {
			continue
		}
		if err := d.WaitExit(15 * time.Second); err != nil {
			t.Errorf("daemon #%d did not exit within 15 s of SIGTERM at the end of the scenario", d.Index)
		} else if d.exitCode != 0 {
			t.Errorf("daemon #%d exited with %s on SIGTERM at the end of the scenario", d.Index, d.exitString())
		}
	}
}

func (t *T) killDaemons() {
	t.mu.Lock()
	ds := append([]*Daemon(nil), t.daemons...)
	t.mu.Unlock()
	for _, d := range ds {
		d.Kill()
	}
}

func indent(s, pfx string) string {
	return strings.ReplaceAll(s, "\n", "\n"+pfx)
}
