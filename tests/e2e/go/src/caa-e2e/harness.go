package main

// Test harness: per-scenario state (T), daemon process management with
// sd_notify readiness, and ttrpc client helpers that dial a fresh
// connection per call the way the kata shim does.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
	"google.golang.org/grpc/status"
)

// ---------------------------------------------------------------------------
// Global registry of every daemon process we started, so that they can all be
// killed whatever way the runner ends.

var (
	procMu sync.Mutex
	procs  = map[int]*os.Process{}
)

func registerProc(p *os.Process) {
	procMu.Lock()
	procs[p.Pid] = p
	procMu.Unlock()
}

func unregisterProc(p *os.Process) {
	procMu.Lock()
	delete(procs, p.Pid)
	procMu.Unlock()
}

// killAllDaemons sends SIGKILL to every daemon still registered (each in its
// own process group, so anything it forked dies with it).
func killAllDaemons() {
	procMu.Lock()
	defer procMu.Unlock()
	for pid, p := range procs {
		syscall.Kill(-pid, syscall.SIGKILL)
		p.Kill()
	}
}

// ---------------------------------------------------------------------------
// T: one scenario's context.

type T struct {
	name    string
	dir     string
	daemonB string

	mu       sync.Mutex
	failures []string
	logs     []string
	daemons  []*Daemon
	closed   bool
	nextID   int
	fw       *Forwarder // the stand-in pod VM, started with the scenario's first daemon
	fwPort   int        // set by a scenario that starts its forwarder itself, later
	env      []string   // extra KEY=value for every daemon of the scenario
}

// Errorf records a failure and lets the scenario continue.
func (t *T) Errorf(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.failures = append(t.failures, msg)
}

// Fatalf records a failure and ends the scenario goroutine. Only call it
// from the scenario's own goroutine.
// sanitized tells whether the daemon under test is the ASan+UBSan build (its memory figures
// include ASan's quarantine; memcheck cannot run it).
func (t *T) sanitized() bool { return strings.Contains(t.daemonB, "/san/") }

func (t *T) Fatalf(format string, args ...interface{}) {
	t.Errorf(format, args...)
	runtime.Goexit()
}

// Logf records an informational line, printed with the failure report.
func (t *T) Logf(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.logs = append(t.logs, time.Now().Format("15:04:05.000 ")+msg)
}

func (t *T) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.failures) > 0
}

// Dirs the daemon works on; shared between restarts within one scenario.
type Dirs struct {
	Sock    string
	PodsDir string
	FakeDir string
	// Libvirt runs the libvirt provider on the test-driver node of config/ instead of the
	// fake cloud; FakeDir is then its -data-dir (where the cidata ISOs land).
	Libvirt bool
	// LibvirtURI replaces the test-driver node (a real daemon, see tests/libvirt/isolated.sh).
	LibvirtURI string
	// Azure runs the Azure provider against this fake ARM + Entra ID service (fakearm.go).
	Azure *FakeARM
	// Wrap, when set, runs the daemon through this command (which must exec it, so the pid
	// stays the daemon's): bootIDWrap, prlimit, ...
	Wrap []string
}

// bootIDWrap runs the daemon in a mount namespace of its own with file bound over
// /proc/sys/kernel/random/boot_id, so a scenario can stage a node reboot.
func bootIDWrap(file string) []string {
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /proc/sys/kernel/random/boot_id && exec "$@"`, file}
}

func (t *T) defaultDirs() Dirs {
	return Dirs{
		Sock:    filepath.Join(t.dir, "hv.sock"),
		PodsDir: filepath.Join(t.dir, "pods"),
		FakeDir: filepath.Join(t.dir, "cloud"),
	}
}

// ---------------------------------------------------------------------------
// Daemon: one run of the daemon binary.

type Daemon struct {
	t       *T
	Index   int
	Dirs    Dirs
	Args    []string
	LogPath string

	cmd        *exec.Cmd
	notifyPath string
	notifyConn *net.UnixConn

	nmu     sync.Mutex
	notes   []string
	changed chan struct{}

	exited   chan struct{}
	exitErr  error
	exitCode int // -1 if killed by a signal
}

// StartDaemon starts the daemon on fresh default dirs and waits for READY=1.
func (t *T) StartDaemon(extra ...string) *Daemon {
	return t.StartDaemonDirs(t.defaultDirs(), extra...)
}

// StartDaemonDirs starts a daemon working on the given dirs and waits for
// READY=1 (bounded); it fails the scenario if the daemon does not get there.
func (t *T) StartDaemonDirs(dirs Dirs, extra ...string) *Daemon {
	d, err := t.spawnDaemon(dirs, extra...)
	if err != nil {
		t.Fatalf("starting daemon: %v", err)
	}
	if err := d.WaitReady(15 * time.Second); err != nil {
		t.Fatalf("daemon #%d did not become ready: %v", d.Index, err)
	}
	return d
}

func (t *T) spawnDaemon(dirs Dirs, extra ...string) (*Daemon, error) {
	t.mu.Lock()
	t.nextID++
	idx := t.nextID
	t.mu.Unlock()

	if err := os.MkdirAll(dirs.FakeDir, 0o755); err != nil {
		return nil, err
	}
	d := &Daemon{
		t:          t,
		Index:      idx,
		Dirs:       dirs,
		LogPath:    filepath.Join(t.dir, fmt.Sprintf("daemon-%d.log", idx)),
		notifyPath: filepath.Join(t.dir, fmt.Sprintf("notify-%d.sock", idx)),
		changed:    make(chan struct{}),
		exited:     make(chan struct{}),
	}
	d.Args = append([]string{"fake",
		"-socket", dirs.Sock,
		"-pods-dir", dirs.PodsDir,
		"-fake-dir", dirs.FakeDir,
	}, extra...)
	// Every VM of the scenario is served by one stand-in forwarder (fake VMs all get
	// 127.0.0.1; test-driver VMs get 192.168.122.x, local in the runner's namespace).
	disableTLS := dirs.Libvirt
	for _, a := range extra {
		disableTLS = disableTLS || a == "-disable-tls"
	}
	if t.fw == nil && t.fwPort == 0 {
		fw, err := StartForwarder(dirs.FakeDir, !disableTLS)
		if err != nil {
			return nil, fmt.Errorf("stand-in forwarder: %v", err)
		}
		t.fw = fw
	}
	fwPort := t.fwPort
	if t.fw != nil {
		fwPort = t.fw.Port
	}
	d.Args = append(d.Args, "-forwarder-port", fmt.Sprint(fwPort))
	if dirs.Libvirt {
		node, err := filepath.Abs("config/libvirt-test-node.xml")
		if err != nil {
			return nil, err
		}
		uri := "test://" + node
		if dirs.LibvirtURI != "" {
			uri = dirs.LibvirtURI
		}
		d.Args = append([]string{"libvirt",
			"-socket", dirs.Sock,
			"-pods-dir", dirs.PodsDir,
			"-uri", uri,
			"-data-dir", dirs.FakeDir,
			"-forwarder-port", fmt.Sprint(fwPort),
			"-disable-tls",
		}, extra...)
	}
	if dirs.Azure != nil {
		d.Args = append([]string{"azure",
			"-socket", dirs.Sock,
			"-pods-dir", dirs.PodsDir,
			"-forwarder-port", fmt.Sprint(fwPort),
		}, extra...)
	}

	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: d.notifyPath, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %v", err)
	}
	d.notifyConn = nc
	go d.readNotify()

	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		nc.Close()
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "# %s %s\n", t.daemonB, strings.Join(d.Args, " "))

	cmd := exec.Command(t.daemonB, d.Args...)
	if len(dirs.Wrap) > 0 {
		cmd = exec.Command(dirs.Wrap[0], append(append(append([]string(nil), dirs.Wrap[1:]...), t.daemonB), d.Args...)...)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = daemonEnv(d.notifyPath)
	if dirs.Azure != nil {
		cmd.Env = append(cmd.Env, dirs.Azure.Env()...)
	}
	cmd.Env = append(cmd.Env, t.env...) // later entries win
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		nc.Close()
		return nil, err
	}
	registerProc(cmd.Process)
	d.cmd = cmd

	t.mu.Lock()
	t.daemons = append(t.daemons, d)
	t.mu.Unlock()
	t.Logf("daemon #%d pid %d: %s", idx, cmd.Process.Pid, strings.Join(d.Args, " "))

	go func() {
		err := cmd.Wait()
		unregisterProc(cmd.Process)
		d.exitErr = err
		d.exitCode = -1
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Exited() {
			d.exitCode = ws.ExitStatus()
		}
		close(d.exited)
	}()
	return d, nil
}

// daemonEnv is our environment minus anything that could change the daemon's
// configuration behind the scenario's back, plus NOTIFY_SOCKET.
func daemonEnv(notify string) []string {
	drop := map[string]bool{
		"NOTIFY_SOCKET": true, "NODE_NAME": true, "POD_UID": true, "CLOUD_PROVIDER": true,
		"REMOTE_HYPERVISOR_ENDPOINT": true, "PODS_DIR": true, "PEERPODS_LIMIT_PER_NODE": true,
		"INITDATA": true, "CLOUD_CONFIG_VERIFY": true, "PROBE_PORT": true, "VXLAN_PORT": true,
		"KUBERNETES_SERVICE_HOST": true, "KUBERNETES_SERVICE_PORT": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k := kv
		if i := strings.IndexByte(kv, '='); i >= 0 {
			k = kv[:i]
		}
		if drop[k] || strings.HasPrefix(k, "LIBVIRT_") || k == "DISABLECVM" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NOTIFY_SOCKET="+notify)
}

func (d *Daemon) readNotify() {
	buf := make([]byte, 4096)
	for {
		n, _, err := d.notifyConn.ReadFromUnix(buf)
		if err != nil {
			return
		}
		lines := strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")
		d.nmu.Lock()
		d.notes = append(d.notes, lines...)
		close(d.changed)
		d.changed = make(chan struct{})
		d.nmu.Unlock()
	}
}

func (d *Daemon) hasNote(want string) (bool, chan struct{}) {
	d.nmu.Lock()
	defer d.nmu.Unlock()
	for _, n := range d.notes {
		if n == want {
			return true, d.changed
		}
	}
	return false, d.changed
}

func (d *Daemon) Notes() []string {
	d.nmu.Lock()
	defer d.nmu.Unlock()
	return append([]string(nil), d.notes...)
}

// WaitNote waits (bounded) for a notify datagram line equal to want.
// If stopOnExit, it gives up as soon as the process has exited.
func (d *Daemon) WaitNote(want string, timeout time.Duration, stopOnExit bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	exited := d.exited
	if !stopOnExit {
		exited = nil
	}
	for {
		ok, ch := d.hasNote(want)
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-exited:
			if ok, _ := d.hasNote(want); ok {
				return nil
			}
			return fmt.Errorf("daemon exited (%s) before sending %q (notes so far: %q)", d.exitString(), want, d.Notes())
		case <-deadline.C:
			return fmt.Errorf("no %q notification within %v (notes so far: %q)", want, timeout, d.Notes())
		}
	}
}

func (d *Daemon) WaitReady(timeout time.Duration) error {
	return d.WaitNote("READY=1", timeout, true)
}

func (d *Daemon) exitString() string {
	select {
	case <-d.exited:
	default:
		return "still running"
	}
	if d.exitCode >= 0 {
		return fmt.Sprintf("exit code %d", d.exitCode)
	}
	return fmt.Sprintf("%v", d.exitErr)
}

func (d *Daemon) Exited() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// WaitExit waits (bounded) for the process to end.
func (d *Daemon) WaitExit(timeout time.Duration) error {
	select {
	case <-d.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("daemon #%d still running after %v", d.Index, timeout)
	}
}

func (d *Daemon) Signal(sig syscall.Signal) error {
	if d.Exited() {
		return fmt.Errorf("daemon #%d already exited (%s)", d.Index, d.exitString())
	}
	return d.cmd.Process.Signal(sig)
}

// Kill SIGKILLs the daemon (and its process group) and reaps it.
func (d *Daemon) Kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	if !d.Exited() {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		d.cmd.Process.Kill()
	}
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
	}
	d.notifyConn.Close()
}

// ---------------------------------------------------------------------------
// ttrpc calls. Every call dials a new connection, like the kata shim.

type callOpts struct {
	// ServerTimeout is sent to the daemon as Request.timeout_nano
	// (0 = no deadline, as kata does for CreateVM/StopVM).
	ServerTimeout time.Duration
	// ClientWait bounds how long we wait for the answer locally.
	ClientWait time.Duration
}

var (
	// kata: StartVM gets a fresh 600 s deadline.
	optsStart = callOpts{ServerTimeout: 600 * time.Second, ClientWait: 50 * time.Second}
	// kata: CreateVM/StopVM use the caller's context, normally no deadline.
	optsPlain = callOpts{ServerTimeout: 0, ClientWait: 30 * time.Second}
)

// Call performs one unary call on a freshly dialled connection.
func (d *Daemon) Call(service, method string, req, resp proto.Message, o callOpts) error {
	return callSock(d.Dirs.Sock, service, method, req, resp, o)
}

func callSock(sock, service, method string, req, resp proto.Message, o callOpts) error {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s: %w", sock, err)
	}
	timeoutNano := o.ServerTimeout.Nanoseconds()
	client := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(
		func(ctx context.Context, r *ttrpc.Request, rs *ttrpc.Response, _ *ttrpc.UnaryClientInfo, inv ttrpc.Invoker) error {
			// The library derives timeout_nano from the context deadline;
			// we decouple what the server is told from how long we wait.
			r.TimeoutNano = timeoutNano
			return inv(ctx, r, rs)
		}))
	defer client.Close()
	wait := o.ClientWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return client.Call(ctx, service, method, req, resp)
}

// errCode returns the gRPC status code and message carried by err, or
// ok=false if err is not a status error (e.g. a transport error).
func errCode(err error) (code int, msg string, ok bool) {
	if err == nil {
		return 0, "", true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return -1, err.Error(), false
	}
	st, isStatus := status.FromError(err)
	if !isStatus {
		return -1, err.Error(), false
	}
	return int(st.Code()), st.Message(), true
}

func describeErr(err error) string {
	if err == nil {
		return "OK"
	}
	code, msg, ok := errCode(err)
	if !ok {
		return fmt.Sprintf("non-status error %T: %v", err, err)
	}
	return fmt.Sprintf("code %d, message %q", code, msg)
}

// ---------------------------------------------------------------------------
// Hypervisor helpers.

const (
	annSandboxName = "io.kubernetes.cri.sandbox-name"
	annSandboxNS   = "io.kubernetes.cri.sandbox-namespace"
	annMachineType = "io.katacontainers.config.hypervisor.machine_type"
	annImage       = "io.katacontainers.config.hypervisor.image"
	annVCPUs       = "io.katacontainers.config.hypervisor.default_vcpus"
	annMemory      = "io.katacontainers.config.hypervisor.default_memory"
	annInitdata    = "io.katacontainers.config.hypervisor.cc_init_data"
	annGPUs        = "io.katacontainers.config.hypervisor.default_gpus"
	annGPUModel    = "io.katacontainers.config.hypervisor.default_gpu_model"
)

// netnsPath is what we put in CreateVMRequest.networkNamespacePath (flag).
var netnsPath = ""

// kataAnnotations builds exactly the nine keys the kata runtime sends.
func kataAnnotations(pod, ns string) map[string]string {
	return map[string]string{
		annSandboxName: pod,
		annSandboxNS:   ns,
		annMachineType: "",
		annImage:       "",
		annVCPUs:       "1",
		annMemory:      "2048",
		annInitdata:    "",
		annGPUs:        "0",
		annGPUModel:    "",
	}
}

func newSandboxID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func (d *Daemon) CreateVM(id, pod, ns string) (*CreateVMResponse, error) {
	resp := &CreateVMResponse{}
	err := d.Call(hypervisorService, "CreateVM", &CreateVMRequest{
		Id:                   id,
		Annotations:          kataAnnotations(pod, ns),
		NetworkNamespacePath: netnsPath,
	}, resp, optsPlain)
	return resp, err
}

func (d *Daemon) StartVM(id string, o callOpts) error {
	return d.Call(hypervisorService, "StartVM", &StartVMRequest{Id: id}, &StartVMResponse{}, o)
}

func (d *Daemon) StopVM(id string) error {
	return d.Call(hypervisorService, "StopVM", &StopVMRequest{Id: id}, &StopVMResponse{}, optsPlain)
}

func (d *Daemon) GetInfo(pod, ns string, wait bool, o callOpts) (string, error) {
	resp := &GetInfoResponse{}
	err := d.Call(podvminfoService, "GetInfo", &GetInfoRequest{PodName: pod, PodNamespace: ns, Wait: wait}, resp, o)
	return resp.VMID, err
}

// MustCreate runs CreateVM and checks the returned socket path.
func (d *Daemon) MustCreate(id, pod, ns string) {
	t := d.t
	resp, err := d.CreateVM(id, pod, ns)
	if err != nil {
		t.Fatalf("CreateVM(%s/%s, id %.12s…): %s", ns, pod, id, describeErr(err))
	}
	want := filepath.Join(d.Dirs.PodsDir, id, "agent.ttrpc")
	if resp.AgentSocketPath != want {
		t.Fatalf("CreateVM agentSocketPath = %q, want %q", resp.AgentSocketPath, want)
	}
}

// ---------------------------------------------------------------------------
// Naming and file-system helpers.

// instanceName implements the VM name rule of protocols.md §5.1 (max 63).
func instanceName(pod, id string) string {
	sanitize := func(s string) string {
		var b strings.Builder
		for _, r := range strings.ToLower(s) {
			if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
				b.WriteRune(r)
			} else {
				b.WriteByte('-')
			}
		}
		return b.String()
	}
	p := []rune(sanitize(pod))
	sid := []rune(sanitize(id))
	const max = 63
	if 5+len(p)+10 > max {
		p = p[:max-15]
	}
	if len(sid) > 8 {
		sid = sid[:8]
	}
	return "podvm-" + string(p) + "-" + string(sid)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// waitFor polls cond every 10 ms until it holds or the deadline passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listTree returns every path under root (relative, "/"-separated, dirs
// suffixed with "/"), sorted; nil if root does not exist.
func listTree(root string) []string {
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if info.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out
}

// leftovers lists entries of root that are new relative to baseline and are
// either non-directories or directories named like one of ids.
func leftovers(root string, baseline []string, ids map[string]bool) []string {
	base := map[string]bool{}
	for _, b := range baseline {
		base[b] = true
	}
	var out []string
	for _, e := range listTree(root) {
		if base[e] {
			continue
		}
		if strings.HasSuffix(e, "/") {
			name := filepath.Base(strings.TrimSuffix(e, "/"))
			if !ids[name] {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

func tailFile(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{fmt.Sprintf("(cannot open %s: %v)", path, err)}
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	total := 0
	for sc.Scan() {
		total++
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if total > n {
		lines = append([]string{fmt.Sprintf("(… %d earlier lines omitted)", total-n)}, lines...)
	}
	return lines
}
