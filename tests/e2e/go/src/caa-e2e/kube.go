package main

// The daemon in a Kubernetes cluster, against the fake API server of fakekube.go: the node's
// kata.peerpods.io/vm capacity and owner annotation at start-up (before the hypervisor
// socket listens) and their withdrawal at shutdown, also across a rolling update; an API
// that fails, hangs or rotates its token; registry credentials from image pull secrets in
// the pod VM's auth.json; the /startup probe over the node's peer pods, also after a
// restart that kept a sandbox; and no API traffic at all when the daemon is not configured
// for a cluster.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	kubeCapacity = "kata.peerpods.io/vm"
	kubeOwner    = "kata.peerpods.io/caa-owner"
	kubeRemove   = `[{"op":"remove","path":"/status/capacity/kata.peerpods.io~1vm"}]`
)

func kubeOwnerPatch(uid string) string {
	return `{"metadata":{"annotations":{"kata.peerpods.io/caa-owner":"` + uid + `"}}}`
}

func kubeCapacityPatch(limit int) string {
	return fmt.Sprintf(`[{"op":"add","path":"/status/capacity/kata.peerpods.io~1vm","value":"%d"}]`, limit)
}

// kubeRig is one fake API server and the node a scenario's daemons run on.
type kubeRig struct {
	t     *T
	f     *FakeKube
	node  string
	token string
	port  int // PROBE_PORT
}

func kubeToken() string { return "kt-" + newSandboxID()[:40] }

func kubeUID() string {
	h := newSandboxID()
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// startKube starts the fake with one node and a fresh token; the caller defers k.f.Close().
func startKube(t *T, node string) *kubeRig {
	k := &kubeRig{t: t, node: node, token: kubeToken(), port: freePort(t)}
	f, err := StartFakeKube(t.dir, k.token, false)
	if err != nil {
		t.Fatalf("fake Kubernetes API: %v", err)
	}
	k.f = f
	f.AddNode(node, map[string]string{"node.alpha.kubernetes.io/ttl": "0"})
	return k
}

// env is the environment of the DaemonSet's pod on k.node (uid "": no POD_UID).
func (k *kubeRig) env(uid string, extra ...string) []string {
	env := append(k.f.Env(), "NODE_NAME="+k.node, fmt.Sprintf("PROBE_PORT=%d", k.port))
	if uid != "" {
		env = append(env, "POD_UID="+uid)
	}
	return append(env, extra...)
}

// putPod puts pod ns/name on k.node, of runtime class rc ("": none), Ready ready ("": no
// condition yet) since since.
func (k *kubeRig) putPod(ns, name, rc, ready string, since time.Time) {
	k.f.PutPod(kubePod{NS: ns, Name: name, Node: k.node, RuntimeClass: rc, Ready: ready, ReadySince: since})
}

// startupUntil asks /startup until ok accepts the answer, for 5 s at most; false when it
// never did, and the last answer for the message.
func (k *kubeRig) startupUntil(ok func(code int, body string) bool) (bool, string) {
	var code int
	var body string
	var err error
	done := waitFor(5*time.Second, func() bool {
		code, body, err = probeGet(k.port, "GET", "/startup")
		return err == nil && ok(code, body)
	})
	return done, fmt.Sprintf("%d %q %v", code, body, err)
}

// since is what arrived after the first n requests.
func (k *kubeRig) since(n int) []KubeRequest {
	r := k.f.Requests()
	if n >= len(r) {
		return nil
	}
	return r[n:]
}

func kubeOnly(reqs []KubeRequest, calls ...string) []KubeRequest {
	var out []KubeRequest
	for _, r := range reqs {
		for _, c := range calls {
			if r.Call == c {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func kubeList(reqs []KubeRequest) string {
	if len(reqs) == 0 {
		return " (none)"
	}
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "\n  %s %s", r.At.Format("15:04:05.000"), r)
	}
	return b.String()
}

type kubeWant struct {
	method, path, ctype, body string
	status                    int // what the fake must have answered; 0: 200
}

func (w kubeWant) answered(code int) kubeWant {
	w.status = code
	return w
}

func (k *kubeRig) wantOwner(uid string) kubeWant {
	return kubeWant{"PATCH", "/api/v1/nodes/" + k.node, "application/merge-patch+json", kubeOwnerPatch(uid), 0}
}
func (k *kubeRig) wantCapacity(limit int) kubeWant {
	return kubeWant{"PATCH", "/api/v1/nodes/" + k.node + "/status", "application/json-patch+json", kubeCapacityPatch(limit), 0}
}
func (k *kubeRig) wantNodeGet() kubeWant {
	return kubeWant{method: "GET", path: "/api/v1/nodes/" + k.node}
}
func (k *kubeRig) wantRemove() kubeWant {
	return kubeWant{"PATCH", "/api/v1/nodes/" + k.node + "/status", "application/json-patch+json", kubeRemove, 0}
}
func kubeGet(path string) kubeWant { return kubeWant{method: "GET", path: path} }

// checkReq checks one request against w (a path may carry a query, compared decoded) and the
// headers every request must have.
func (k *kubeRig) checkReq(what string, r KubeRequest, token string, w kubeWant) bool {
	var bad []string
	wantStatus := w.status
	if wantStatus == 0 {
		wantStatus = 200
	}
	path, query := w.path, ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	gotQ, err1 := url.ParseQuery(r.Query)
	wantQ, _ := url.ParseQuery(query)
	if r.Method != w.method || r.Path != path || err1 != nil || gotQ.Encode() != wantQ.Encode() {
		bad = append(bad, fmt.Sprintf("got %s %s?%s, want %s %s", r.Method, r.Path, r.Query, w.method, w.path))
	}
	if w.method == "GET" {
		if r.Body != "" {
			bad = append(bad, fmt.Sprintf("a GET with a body %q", r.Body))
		}
	} else {
		if r.ContentType != w.ctype {
			bad = append(bad, fmt.Sprintf("Content-Type %q, want %q", r.ContentType, w.ctype))
		}
		if r.Body != w.body {
			bad = append(bad, fmt.Sprintf("body %q, want %q", r.Body, w.body))
		}
	}
	if r.Auth != "Bearer "+token { // never print a token
		bad = append(bad, fmt.Sprintf("Authorization is not \"Bearer <the token file's token>\" (%d bytes, Bearer prefix %v)",
			len(r.Auth), strings.HasPrefix(r.Auth, "Bearer ")))
	}
	if r.Accept != "application/json" {
		bad = append(bad, fmt.Sprintf("Accept %q, want application/json", r.Accept))
	}
	if !strings.HasPrefix(r.UserAgent, "cloud-api-adaptor/") {
		bad = append(bad, fmt.Sprintf("User-Agent %q, want cloud-api-adaptor/...", r.UserAgent))
	}
	if r.Status != wantStatus {
		bad = append(bad, fmt.Sprintf("the fake answered %d, want %d", r.Status, wantStatus))
	}
	if len(bad) > 0 {
		k.t.Errorf("%s: %s", what, strings.Join(bad, "; "))
		return false
	}
	return true
}

// expectSeq requires exactly the wanted requests, in order.
func (k *kubeRig) expectSeq(what string, reqs []KubeRequest, token string, want ...kubeWant) bool {
	if len(reqs) != len(want) {
		k.t.Errorf("%s: %d API requests, want %d:%s", what, len(reqs), len(want), kubeList(reqs))
		return false
	}
	ok := true
	for i, w := range want {
		ok = k.checkReq(fmt.Sprintf("%s, request %d", what, i+1), reqs[i], token, w) && ok
	}
	return ok
}

func (k *kubeRig) field(where, key string) string {
	v, ok := k.f.NodeField(k.node, where, key)
	if !ok {
		return "<absent>"
	}
	return v
}

// waitField waits (bounded) for a node field to become want ("<absent>": to disappear).
func (k *kubeRig) waitField(where, key, want string, within time.Duration) bool {
	return waitFor(within, func() bool { return k.field(where, key) == want })
}

// podVM takes a pod through CreateVM and StartVM and returns its user-data files and how
// long CreateVM took.
func podVM(t *T, d *Daemon, pod, ns string) (map[string]*string, string, time.Duration) {
	id := newSandboxID()
	began := time.Now()
	_, err := d.CreateVM(id, pod, ns)
	took := time.Since(began)
	if err != nil {
		t.Fatalf("CreateVM(%s/%s) after %v: %s", ns, pod, took.Round(time.Millisecond), describeErr(err))
	}
	mustOK(t, "StartVM "+pod, d.StartVM(id, optsStart))
	return vmDocument(t, d, instanceName(pod, id)), id, took
}

// authJSON is the pod VM's auth.json ("" and false when the document has none).
func authJSON(files map[string]*string) (string, bool) {
	c, ok := files["/run/peerpod/auth.json"]
	if !ok {
		return "", false
	}
	if c == nil {
		return "", true
	}
	return *c, true
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// ---------------------------------------------------------------------------

func scKubeNodeCapacity(t *T) {
	k := startKube(t, "worker-1")
	defer k.f.Close()
	uid := kubeUID()
	dirs := t.defaultDirs()
	k.f.WatchSocket(dirs.Sock)
	t.env = k.env(uid, "PEERPODS_LIMIT_PER_NODE=7")
	d := t.StartDaemonDirs(dirs)
	if !sockListening(dirs.Sock) {
		t.Fatalf("harness: /proc/net/unix shows no listener on %s after READY=1, so the ordering check would prove nothing", dirs.Sock)
	}
	start := k.f.Requests()
	if k.expectSeq("start-up", start, k.token, k.wantOwner(uid), k.wantCapacity(7)) {
		for i, r := range start {
			if r.Listening {
				t.Errorf("start-up request %d (%s) arrived while the hypervisor socket was already listening", i+1, r)
			}
		}
	}
	if v := k.field("capacity", kubeCapacity); v != "7" {
		t.Errorf("node capacity %s = %s, want 7", kubeCapacity, v)
	}
	if v := k.field("annotation", kubeOwner); v != uid {
		t.Errorf("node annotation %s = %s, want the POD_UID %s", kubeOwner, v, uid)
	}
	if k.field("annotation", "node.alpha.kubernetes.io/ttl") != "0" || k.field("capacity", "cpu") != "4" {
		t.Errorf("the patches lost what the node had: %s", k.f.NodeJSON(k.node))
	}
	resp := &VersionResponse{}
	mustOK(t, "Version", d.Call(hypervisorService, "Version", &VersionRequest{}, resp, optsPlain))
	if idle := k.since(len(start)); len(idle) != 0 {
		t.Errorf("API requests while idle:%s", kubeList(idle))
	}

	sigtermExit(t, d, 10*time.Second)
	k.expectSeq("shutdown", k.since(len(start)), k.token, k.wantNodeGet(), k.wantRemove())
	if v := k.field("capacity", kubeCapacity); v != "<absent>" {
		t.Errorf("node capacity %s = %s after shutdown, want it removed", kubeCapacity, v)
	}
	if k.field("capacity", "cpu") != "4" {
		t.Errorf("the remove patch lost the node's other capacity: %s", k.f.NodeJSON(k.node))
	}
	if exists(dirs.Sock) {
		t.Errorf("socket %s still exists after shutdown", dirs.Sock)
	}
}

// A negative limit advertises nothing; the control daemon with limit 0 shows the same set-up
// would have seen a patch (0 is a limit: no peer pods here).
func scKubeLimitNegative(t *T) {
	k := startKube(t, "worker-nolimit")
	defer k.f.Close()
	uid := kubeUID()
	t.env = k.env(uid, "PEERPODS_LIMIT_PER_NODE=-1")
	d := t.StartDaemon()
	resp := &VersionResponse{}
	mustOK(t, "Version", d.Call(hypervisorService, "Version", &VersionRequest{}, resp, optsPlain))
	// Start-up patches precede listening, so any patch would be recorded by now.
	if p := kubeOnly(k.f.Requests(), "node-patch", "status-patch"); len(p) > 0 {
		t.Errorf("PEERPODS_LIMIT_PER_NODE=-1: the daemon patched the node:%s", kubeList(p))
	}
	if v := k.field("capacity", kubeCapacity); v != "<absent>" {
		t.Errorf("PEERPODS_LIMIT_PER_NODE=-1: node capacity %s = %s", kubeCapacity, v)
	}
	sigtermExit(t, d, 10*time.Second)

	n := len(k.f.Requests())
	t.env = k.env(uid, "PEERPODS_LIMIT_PER_NODE=0")
	d2 := t.StartDaemonDirs(d.Dirs)
	k.expectSeq("control with PEERPODS_LIMIT_PER_NODE=0", k.since(n), k.token, k.wantOwner(uid), k.wantCapacity(0))
	if v := k.field("capacity", kubeCapacity); v != "0" {
		t.Errorf("PEERPODS_LIMIT_PER_NODE=0: node capacity %s = %s, want 0", kubeCapacity, v)
	}
	sigtermExit(t, d2, 10*time.Second)
}

// RollingUpdate with maxSurge 1 and maxUnavailable 0: the new pod B starts on the node while
// the old pod A still runs, on the same host paths (socket, pods dir) and the same probe port
// (SO_REUSEPORT), as the DaemonSet mounts them. A's exit must not withdraw B's capacity.
func scKubeRollingUpdate(t *T) {
	k := startKube(t, "worker-ru")
	defer k.f.Close()
	uidA, uidB := kubeUID(), kubeUID()
	dirs := t.defaultDirs()
	t.env = k.env(uidA)
	a := t.StartDaemonDirs(dirs)
	k.expectSeq("A's start-up", k.f.Requests(), k.token, k.wantOwner(uidA), k.wantCapacity(10))
	if v := k.field("annotation", kubeOwner); v != uidA {
		t.Fatalf("owner after A started = %s, want %s", v, uidA)
	}

	n := len(k.f.Requests())
	t.env = k.env(uidB)
	b := t.StartDaemonDirs(dirs)
	k.expectSeq("B's start-up", k.since(n), k.token, k.wantOwner(uidB), k.wantCapacity(10))
	if v := k.field("annotation", kubeOwner); v != uidB {
		t.Errorf("owner after B started = %s, want %s", v, uidB)
	}
	if a.Exited() {
		t.Fatalf("A exited when B started: %s", a.exitString())
	}

	n = len(k.f.Requests())
	sigtermExit(t, a, 10*time.Second)
	k.expectSeq("A's shutdown (no longer the owner)", k.since(n), k.token, k.wantNodeGet())
	if v := k.field("capacity", kubeCapacity); v != "10" {
		t.Errorf("node capacity %s = %s after A left, want B's 10", kubeCapacity, v)
	}
	resp := &VersionResponse{}
	mustOK(t, "Version to B after A left", b.Call(hypervisorService, "Version", &VersionRequest{}, resp, optsPlain))

	n = len(k.f.Requests())
	sigtermExit(t, b, 10*time.Second)
	k.expectSeq("B's shutdown", k.since(n), k.token, k.wantNodeGet(), k.wantRemove())
	if v := k.field("capacity", kubeCapacity); v != "<absent>" {
		t.Errorf("node capacity %s = %s after B left, want it removed", kubeCapacity, v)
	}
}

// The API failing at start-up: the daemon serves anyway within the start-up bound and keeps
// advertising in the background with back-off until it lands. First 500s and a reset; then
// a patch that hangs past the bound.
func scKubeAPIDownAtStart(t *T) {
	k := startKube(t, "worker-down")
	defer k.f.Close()
	uid := kubeUID()
	k.f.AddFault(KubeFault{Status: 500, Times: 2})
	k.f.AddFault(KubeFault{Reset: true, Times: 1})
	t.env = k.env(uid)
	began := time.Now()
	d, err := t.spawnDaemon(t.defaultDirs())
	if err != nil {
		t.Fatalf("starting daemon: %v", err)
	}
	kubeServesSoon(t, d, began)
	if !k.waitField("capacity", kubeCapacity, "10", time.Until(began.Add(15*time.Second))) {
		t.Errorf("capacity not advertised 15s after start with an API failing 3 times:%s", kubeList(k.f.Requests()))
	} else if k.field("annotation", kubeOwner) != uid {
		t.Errorf("capacity advertised but owner annotation = %s, want %s", k.field("annotation", kubeOwner), uid)
	}
	reqs := k.f.Requests()
	t.Logf("requests:%s", kubeList(reqs))
	failed := 0
	for _, r := range reqs {
		if r.Status != 200 {
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("%d failed requests, want the 3 faults", failed)
	}
	// The last two are the advertisement that landed; every attempt before starts with a patch.
	if len(reqs) >= 2 {
		k.checkReq("landed owner patch", reqs[len(reqs)-2], k.token, k.wantOwner(uid))
		k.checkReq("landed capacity patch", reqs[len(reqs)-1], k.token, k.wantCapacity(10))
	}
	// After a 500, a back-off. After the reset, libcurl may at once re-send the request on a
	// fresh connection by itself (it does so when a reused connection dies before any reply).
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].At.Sub(reqs[i-1].At); reqs[i-1].Status >= 400 && gap < 900*time.Millisecond {
			t.Errorf("request %d came %v after a 500: want a back-off of at least 1s", i+1, gap)
		}
	}

	// A patch that hangs: serving must not wait for it.
	k2 := *k
	k2.node, k2.port = "worker-hang", freePort(t)
	k.f.AddNode(k2.node, nil)
	k.f.AddFault(KubeFault{Call: "node-patch", Path: "/api/v1/nodes/" + k2.node, Hang: true, Times: 1})
	t.env = k2.env(uid)
	dirs := t.defaultDirs()
	dirs.Sock, dirs.PodsDir = filepath.Join(t.dir, "hv2.sock"), filepath.Join(t.dir, "pods2")
	began = time.Now()
	d2, err := t.spawnDaemon(dirs)
	if err != nil {
		t.Fatalf("starting daemon: %v", err)
	}
	kubeServesSoon(t, d2, began)
	k.f.ReleaseHangs()
	if !k2.waitField("capacity", kubeCapacity, "10", 10*time.Second) {
		t.Errorf("capacity not advertised 10s after the hanging patch was let go:%s", kubeList(k.f.Requests()))
	}
	sigtermExit(t, d, 10*time.Second)
	sigtermExit(t, d2, 10*time.Second)
}

// kubeServesSoon requires READY=1 and a Version answer within 7.5s of the daemon's start.
func kubeServesSoon(t *T, d *Daemon, began time.Time) {
	if err := d.WaitReady(time.Until(began.Add(7500 * time.Millisecond))); err != nil {
		t.Fatalf("daemon #%d with a failing API: %v", d.Index, err)
	}
	resp := &VersionResponse{}
	mustOK(t, "Version", d.Call(hypervisorService, "Version", &VersionRequest{}, resp,
		callOpts{ClientWait: time.Until(began.Add(7500 * time.Millisecond))}))
	t.Logf("daemon #%d served Version %v after its start", d.Index, time.Since(began).Round(time.Millisecond))
}

// An API that hangs at shutdown (first the node GET, then the remove patch) must not keep
// the daemon from exiting.
func scKubeShutdownHangs(t *T) {
	k := startKube(t, "worker-stuck")
	defer k.f.Close()
	uid := kubeUID()
	t.env = k.env(uid)
	for _, call := range []string{"node-get", "status-patch"} {
		d := t.StartDaemon()
		if v := k.field("capacity", kubeCapacity); v != "10" {
			t.Fatalf("capacity %s before the shutdown = %s, want 10", kubeCapacity, v)
		}
		n := len(k.f.Requests())
		k.f.AddFault(KubeFault{Call: call, Hang: true})
		if err := d.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
		began := time.Now()
		if err := d.WaitExit(10 * time.Second); err != nil {
			t.Fatalf("with the %s hanging: %v after SIGTERM:%s", call, err, kubeList(k.since(n)))
		}
		t.Logf("with the %s hanging: exited %v after SIGTERM (%s)", call, time.Since(began).Round(time.Millisecond), d.exitString())
		if d.exitCode != 0 {
			t.Errorf("with the %s hanging: %s, want exit code 0", call, d.exitString())
		}
		k.f.ReleaseHangs()
		// The hung request is recorded once the fake lets go of it.
		if !waitFor(5*time.Second, func() bool { return len(kubeOnly(k.since(n), call)) > 0 }) {
			t.Errorf("with the %s hanging: the daemon never sent it:%s", call, kubeList(k.since(n)))
		}
		if exists(d.Dirs.Sock) {
			t.Errorf("with the %s hanging: socket %s still exists after shutdown", call, d.Dirs.Sock)
		}
	}
	// A second signal while the shutdown waits for the API: exit code 1 at once (spec 7.4).
	d := t.StartDaemon()
	k.f.AddFault(KubeFault{Call: "node-get", Hang: true})
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if !waitFor(5*time.Second, func() bool { return logHas(d, "received signal") }) {
		t.Fatalf("the first SIGTERM was not taken")
	}
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("second SIGTERM: %v", err)
	}
	if err := d.WaitExit(3 * time.Second); err != nil {
		t.Fatalf("after a second SIGTERM: %v", err)
	}
	if d.exitCode != 1 || !logHas(d, "second signal") {
		t.Errorf("after a second SIGTERM: %s, want exit code 1 and the log line", d.exitString())
	}
	k.f.ReleaseHangs()
}

// SIGTERM while start-up waits for the API server: an orderly shutdown once start-up is
// through (it killed the daemon outright, shutdown undone, before the watchers ran).
func scKubeSigtermDuringStartup(t *T) {
	k := startKube(t, "worker-early")
	defer k.f.Close()
	t.env = k.env(kubeUID())
	k.f.AddFault(KubeFault{Call: "node-get", Hang: true, Times: 1})
	d, err := t.spawnDaemon(t.defaultDirs())
	if err != nil {
		t.Fatalf("starting daemon: %v", err)
	}
	if !waitFor(5*time.Second, func() bool { return k.f.Conns() > 0 }) {
		t.Fatalf("the daemon never reached the API server")
	}
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	k.f.ReleaseHangs()
	if err := d.WaitExit(15 * time.Second); err != nil {
		t.Fatalf("after SIGTERM during start-up: %v", err)
	}
	if d.exitCode != 0 || !logHas(d, "received signal") {
		t.Errorf("SIGTERM during start-up: %s, want an orderly exit (code 0, \"received signal\" logged)", d.exitString())
	}
}

// The service-account token rotates: the daemon re-reads the file on a 401 and retries once.
func scKubeTokenRotation(t *T) {
	k := startKube(t, "worker-rot")
	defer k.f.Close()
	uid := kubeUID()
	ns := "team-a"
	auth := b64("robot$team-a:" + newSandboxID()[:24])
	k.f.PutServiceAccount(ns, "default", "regcred")
	k.f.PutSecret(ns, "regcred", "kubernetes.io/dockerconfigjson",
		dockerConfigJSON(map[string]dockerCred{"quay.io": {Auth: auth}}))
	for _, p := range []string{"rotated", "refused"} {
		k.putPod(ns, p, "kata-remote", "False", time.Time{})
	}
	t.env = k.env(uid)
	d := t.StartDaemon()
	k.expectSeq("start-up with the first token", k.f.Requests(), k.token, k.wantOwner(uid), k.wantCapacity(10))

	t2 := kubeToken()
	if err := k.f.WriteToken(t2); err != nil {
		t.Fatalf("%v", err)
	}
	k.f.AcceptTokens(t2)
	n := len(k.f.Requests())
	files, id, _ := podVM(t, d, "rotated", ns)
	got := kubeOnly(k.since(n), "pod-get", "sa-get", "secret-get") // not the PeerPod create (no CRD here)
	if a, ok := authJSON(files); !ok || a != `{"auths":{"quay.io":{"auth":"`+auth+`"}}}`+"\n" {
		t.Errorf("auth.json after the rotation: present %v, %d bytes, want the quay.io credential; requests:%s", ok, len(a), kubeList(got))
	}
	if len(got) == 3 && got[0].Auth == "Bearer "+t2 {
		// The daemon's periodic re-read (every minute) came first: no 401 to recover from here;
		// the refused case below still needs the re-read on a 401.
		t.Logf("the token was re-read before the first lookup:%s", kubeList(got))
		k.expectSeq("lookups after the rotation", got, t2, kubeGet("/api/v1/namespaces/team-a/pods/rotated"),
			kubeGet("/api/v1/namespaces/team-a/serviceaccounts/default"), kubeGet("/api/v1/namespaces/team-a/secrets/regcred"))
	} else if len(got) == 4 {
		k.checkReq("rejected pod lookup", got[0], k.token, kubeGet("/api/v1/namespaces/team-a/pods/rotated").answered(401))
		k.expectSeq("lookups after the 401", got[1:], t2, kubeGet("/api/v1/namespaces/team-a/pods/rotated"),
			kubeGet("/api/v1/namespaces/team-a/serviceaccounts/default"), kubeGet("/api/v1/namespaces/team-a/secrets/regcred"))
	} else {
		t.Errorf("%d requests after the rotation, want 4 (pod 401, pod, service account, secret):%s", len(got), kubeList(got))
	}
	mustOK(t, "StopVM", d.StopVM(id))

	// A token the API refuses even after the re-read: one retry, then CreateVM goes on without credentials.
	t3 := kubeToken()
	if err := k.f.WriteToken(t3); err != nil {
		t.Fatalf("%v", err)
	}
	k.f.AcceptTokens(kubeToken())
	n = len(k.f.Requests())
	files, id, _ = podVM(t, d, "refused", ns)
	if _, ok := authJSON(files); ok {
		t.Errorf("auth.json although every lookup was refused")
	}
	got = k.since(n)
	if len(got) != 2 || got[0].Call != "pod-get" || got[1].Call != "pod-get" || got[0].Status != 401 ||
		got[1].Status != 401 || got[1].Auth != "Bearer "+t3 {
		t.Errorf("with a refused token: want the pod lookup twice (the second with the re-read token), both 401:%s", kubeList(got))
	}
	mustOK(t, "StopVM", d.StopVM(id))

	k.f.AcceptTokens(t3)
	sigtermExit(t, d, 10*time.Second)
	if v := k.field("capacity", kubeCapacity); v != "<absent>" {
		t.Errorf("capacity %s = %s after shutdown, want it removed:%s", kubeCapacity, v, kubeList(k.since(n)))
	}
}

// Image pull secrets of the service account, then of the pod, into auth.json; and every way
// the lookups can go wrong leaves the pod VM without one but CreateVM unharmed.
func scKubePullSecrets(t *T) {
	k := startKube(t, "worker-pull")
	defer k.f.Close()
	ns := "coco"
	rnd := newSandboxID()
	a1 := b64("svc-robot:" + rnd[:20])
	quayPW := "quay-pw-" + rnd[20:36]
	a2 := b64("gh-bot:" + rnd[36:56])
	k.f.PutServiceAccount(ns, "builder", "sa-pull")
	k.f.PutServiceAccount(ns, "default")
	k.f.PutServiceAccount(ns, "slow-sa", "sa-pull")
	saData := dockerConfigJSON(map[string]dockerCred{
		"registry.example.com:5000": {Auth: a1},
		"ghcr.io":                   {Username: "gh-old", Password: "gh-old-pw-" + rnd[:12]}, // replaced by the pod's
		"Quay.io":                   {Username: "quay-user", Password: quayPW, AuthKey: true},
	})
	// With .dockerconfigjson present, .dockercfg is not read.
	for key, v := range dockerCfg(map[string]dockerCred{"decoy.example.com": {Auth: b64("decoy:" + rnd[:16])}}) {
		saData[key] = v
	}
	k.f.PutSecret(ns, "sa-pull", "kubernetes.io/dockerconfigjson", saData)
	k.f.PutSecret(ns, "pod-cfg", "kubernetes.io/dockercfg", dockerCfg(map[string]dockerCred{
		"ghcr.io":                     {Auth: a2, Username: "x", Password: "y-" + rnd[:10], Email: "ops@example.com"},
		"https://index.docker.io/v1/": {Username: "only-user"},
	}))
	k.f.PutSecret(ns, "good-cfg", "kubernetes.io/dockerconfigjson",
		dockerConfigJSON(map[string]dockerCred{"good.example.com": {Auth: b64("good:" + rnd[:18])}}))
	k.f.PutSecret(ns, "bad-b64", "kubernetes.io/dockerconfigjson", map[string]string{".dockerconfigjson": "%%not*base64%%"})
	k.f.PutSecret(ns, "bad-json", "kubernetes.io/dockerconfigjson", map[string]string{".dockerconfigjson": b64(`{"auths":{"x.io":`)})
	k.f.PutSecret(ns, "empty-auths", "kubernetes.io/dockerconfigjson", map[string]string{".dockerconfigjson": b64(`{"auths":{}}`)})
	k.f.PutSecret(ns, "opaque", "Opaque", map[string]string{"password": b64("not-a-registry-" + rnd[:8])})
	pods := []kubePod{
		{Name: "puller", SA: "builder", PullSecrets: []string{"pod-cfg", "not-there"}},
		{Name: "plain"},
		{Name: "no-registries", PullSecrets: []string{"empty-auths", "opaque"}},
		{Name: "broken-b64", PullSecrets: []string{"good-cfg", "bad-b64"}},
		{Name: "broken-json", PullSecrets: []string{"bad-json"}},
		{Name: "lookup-500", PullSecrets: []string{"pod-cfg"}},
		{Name: "sa-ghost", SA: "ghost", PullSecrets: []string{"pod-cfg"}},
		{Name: "sa-hangs", SA: "slow-sa", PullSecrets: []string{"pod-cfg"}},
	}
	for _, p := range pods {
		p.NS, p.Node, p.RuntimeClass, p.Ready = ns, k.node, "kata-remote", "False"
		k.f.PutPod(p)
	}
	t.env = k.env(kubeUID())
	d := t.StartDaemon()

	lookups := func(n int) []KubeRequest { return kubeOnly(k.since(n), "pod-get", "sa-get", "secret-get") }
	path := func(kind, name string) kubeWant { return kubeGet("/api/v1/namespaces/coco/" + kind + "/" + name) }

	n := len(k.f.Requests())
	files, id, _ := podVM(t, d, "puller", ns)
	want := `{"auths":{"Quay.io":{"auth":"` + b64("quay-user:"+quayPW) + `"},"ghcr.io":{"auth":"` + a2 +
		`"},"registry.example.com:5000":{"auth":"` + a1 + `"}}}` + "\n"
	if a, ok := authJSON(files); !ok || a != want {
		t.Errorf("puller: auth.json %q (present %v), want %q", a, ok, want)
	}
	if o := *files["#order"]; o != "/run/peerpod/apf.json,/run/peerpod/auth.json" {
		t.Errorf("puller: write_files %s, want apf.json then auth.json", o)
	}
	k.expectSeq("puller's lookups", lookups(n), k.token, path("pods", "puller"), path("serviceaccounts", "builder"),
		path("secrets", "sa-pull"), path("secrets", "pod-cfg"), path("secrets", "not-there").answered(404))
	mustOK(t, "StopVM puller", d.StopVM(id))

	n = len(k.f.Requests())
	files, id, _ = podVM(t, d, "plain", ns)
	if _, ok := authJSON(files); ok {
		t.Errorf("plain: auth.json for a pod without pull secrets")
	}
	k.expectSeq("plain's lookups", lookups(n), k.token, path("pods", "plain"), path("serviceaccounts", "default"))
	mustOK(t, "StopVM plain", d.StopVM(id))

	for _, pod := range []string{"no-registries", "broken-b64", "broken-json"} {
		n = len(k.f.Requests())
		files, id, _ = podVM(t, d, pod, ns)
		if a, ok := authJSON(files); ok {
			t.Errorf("%s: auth.json (%d bytes) although the pod's secrets give no usable credentials", pod, len(a))
		}
		if len(kubeOnly(k.since(n), "secret-get")) == 0 {
			t.Errorf("%s: its secrets were never read, so this proves nothing:%s", pod, kubeList(k.since(n)))
		}
		mustOK(t, "StopVM "+pod, d.StopVM(id))
	}

	k.f.AddFault(KubeFault{Call: "pod-get", Path: "/api/v1/namespaces/coco/pods/lookup-500", Status: 500})
	n = len(k.f.Requests())
	files, id, took := podVM(t, d, "lookup-500", ns)
	if _, ok := authJSON(files); ok {
		t.Errorf("lookup-500: auth.json although the pod lookup failed")
	}
	if took > 5*time.Second {
		t.Errorf("lookup-500: CreateVM took %v with the pod lookup answered 500 at once", took)
	}
	if got := lookups(n); len(got) == 0 || len(kubeOnly(got, "sa-get", "secret-get")) > 0 {
		t.Errorf("lookup-500: want pod lookups only:%s", kubeList(got))
	}
	if log := string(mustReadFile(t, d.LogPath)); !strings.Contains(log, "reading pod coco/lookup-500: ") {
		t.Errorf("lookup-500: no warning naming the failed pod lookup in the log")
	}
	mustOK(t, "StopVM lookup-500", d.StopVM(id))

	n = len(k.f.Requests())
	files, id, _ = podVM(t, d, "sa-ghost", ns)
	if _, ok := authJSON(files); ok {
		t.Errorf("sa-ghost: auth.json although the service account lookup failed (404)")
	}
	if sa := kubeOnly(k.since(n), "sa-get"); len(sa) == 0 || sa[0].Status != 404 {
		t.Errorf("sa-ghost: want a service account lookup answered 404:%s", kubeList(k.since(n)))
	}
	if log := string(mustReadFile(t, d.LogPath)); !strings.Contains(log, "reading service account coco/") {
		t.Errorf("sa-ghost: no warning naming the failed service account lookup in the log")
	}
	mustOK(t, "StopVM sa-ghost", d.StopVM(id))

	k.f.AddFault(KubeFault{Call: "sa-get", Path: "/api/v1/namespaces/coco/serviceaccounts/slow-sa", Hang: true})
	n = len(k.f.Requests())
	files, id, took = podVM(t, d, "sa-hangs", ns)
	t.Logf("sa-hangs: CreateVM took %v", took.Round(time.Millisecond))
	if _, ok := authJSON(files); ok {
		t.Errorf("sa-hangs: auth.json although the service account lookup never answered")
	}
	if took > 12500*time.Millisecond {
		t.Errorf("sa-hangs: CreateVM took %v with a hanging API, want the lookup bounded (~10s)", took)
	}
	k.f.ReleaseHangs()
	if !waitFor(5*time.Second, func() bool { return len(kubeOnly(k.since(n), "sa-get")) > 0 }) {
		t.Errorf("sa-hangs: the service account was never looked up:%s", kubeList(k.since(n)))
	}
	mustOK(t, "StopVM sa-hangs", d.StopVM(id))
	sigtermExit(t, d, 10*time.Second)
}

// /startup in a cluster: every peer pod of the node Ready since the daemon started (or known
// from before it), cached once it passed.
func scKubeStartupProbe(t *T) {
	k := startKube(t, "worker-s")
	defer k.f.Close()
	ns := "apps"
	before := time.Now().Add(-time.Hour)
	k.putPod(ns, "web-stale", "kata-remote", "True", before)
	k.putPod(ns, "runc-job", "", "False", before)          // not a peer pod
	k.putPod(ns, "other-rc", "kata-qemu", "False", before) // another runtime class
	k.putPod(ns, "pending", "kata-remote", "", before)     // no Ready condition yet
	k.f.PutPod(kubePod{NS: ns, Name: "elsewhere", Node: "worker-x", RuntimeClass: "kata-remote", Ready: "False", ReadySince: before})
	t.env = k.env(kubeUID())
	d := t.StartDaemon()
	readyAt := time.Now()
	after := readyAt.Truncate(time.Second).Add(time.Second) // strictly after the start, in whole seconds

	code, body, err := probeGet(k.port, "GET", "/startup")
	if err != nil || code != 500 || !strings.Contains(body, "web-stale") {
		t.Errorf("/startup with web-stale Ready since before the start: %d %q %v; want 500 naming web-stale", code, body, err)
	}
	lists := kubeOnly(k.f.Requests(), "pod-list")
	if len(lists) == 0 {
		t.Fatalf("/startup listed no pods:%s", kubeList(k.f.Requests()))
	}
	k.checkReq("pod list", lists[0], k.token, kubeGet("/api/v1/pods?fieldSelector=spec.nodeName%3D"+k.node))

	k.putPod(ns, "web-stale", "kata-remote", "True", after)
	k.putPod(ns, "web-2", "kata-remote", "False", after)
	if ok, got := k.startupUntil(func(code int, body string) bool {
		return code == 500 && strings.Contains(body, "web-2")
	}); !ok {
		t.Errorf("/startup with web-2 not Ready: %s; want 500 naming web-2", got)
	}
	k.putPod(ns, "web-2", "kata-remote", "True", after)
	if ok, got := k.startupUntil(func(code int, _ string) bool { return code == 200 }); !ok {
		t.Fatalf("/startup with every peer pod Ready since the start: %s; want 200:%s", got,
			kubeList(kubeOnly(k.f.Requests(), "pod-list")))
	}
	// Passed once: cached, no more listing.
	n := len(kubeOnly(k.f.Requests(), "pod-list"))
	k.putPod(ns, "web-stale", "kata-remote", "True", before)
	k.putPod(ns, "web-2", "kata-remote", "False", after)
	for i := 0; i < 3; i++ {
		if code, body, err := probeGet(k.port, "GET", "/startup"); err != nil || code != 200 {
			t.Errorf("/startup after it passed once: %d %q %v; want 200 (cached)", code, body, err)
		}
	}
	if m := len(kubeOnly(k.f.Requests(), "pod-list")); m != n {
		t.Errorf("/startup listed pods %d more times after it passed", m-n)
	}

	// RUNTIMECLASS_NAME is the class that counts: now other-rc's, whose pod is not Ready.
	k2 := *k
	k2.port = freePort(t)
	t.env = k2.env(kubeUID(), "RUNTIMECLASS_NAME=kata-qemu")
	dirs := t.defaultDirs()
	dirs.Sock, dirs.PodsDir = filepath.Join(t.dir, "hv2.sock"), filepath.Join(t.dir, "pods2")
	t.StartDaemonDirs(dirs)
	code, body, err = probeGet(k2.port, "GET", "/startup")
	if err != nil || code != 500 || !strings.Contains(body, "other-rc") {
		t.Errorf("/startup with RUNTIMECLASS_NAME=kata-qemu: %d %q %v; want 500 naming other-rc", code, body, err)
	}
	sigtermExit(t, d, 10*time.Second)
}

// After a restart, a pod whose sandbox the daemon kept has been Ready since before the new
// daemon started and will never be re-created: it passes; a stale pod it does not know fails.
func scKubeStartupRestart(t *T) {
	k := startKube(t, "worker-r")
	defer k.f.Close()
	ns := "apps"
	before := time.Now().Add(-time.Hour)
	k.putPod(ns, "survivor", "kata-remote", "True", before)
	t.env = k.env(kubeUID())
	d := t.StartDaemon()
	dirs := d.Dirs
	id := newSandboxID()
	d.MustCreate(id, "survivor", ns)
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	sigtermExit(t, d, 10*time.Second)
	if !exists(filepath.Join(dirs.FakeDir, instanceName("survivor", id))) {
		t.Fatalf("the survivor's VM did not survive the shutdown")
	}

	k.putPod(ns, "newcomer", "kata-remote", "True", before)
	d2 := t.StartDaemonDirs(dirs)
	after := time.Now().Truncate(time.Second).Add(time.Second)
	code, body, err := probeGet(k.port, "GET", "/startup")
	if err != nil || code != 500 || !strings.Contains(body, "newcomer") || strings.Contains(body, "survivor") {
		t.Errorf("/startup after the restart with newcomer stale: %d %q %v; want 500 naming newcomer only", code, body, err)
	}
	k.putPod(ns, "newcomer", "kata-remote", "True", after)
	if ok, got := k.startupUntil(func(code int, _ string) bool { return code == 200 }); !ok {
		t.Errorf("/startup with survivor recovered and newcomer Ready since the start: %s; want 200", got)
	}
	mustOK(t, "StopVM after restart", d2.StopVM(id))
	sigtermExit(t, d2, 10*time.Second)
}

// Not configured for a cluster, the daemon never calls the API: NODE_NAME without
// KUBERNETES_SERVICE_HOST, without a token file, or the API without NODE_NAME. The last daemon,
// configured fully, shows the fake would have seen it.
func scKubeNotConfigured(t *T) {
	k := startKube(t, "worker-nc")
	defer k.f.Close()
	ns := "coco"
	auth := b64("nc:" + newSandboxID()[:20])
	k.f.PutServiceAccount(ns, "default", "regcred")
	k.f.PutSecret(ns, "regcred", "kubernetes.io/dockerconfigjson",
		dockerConfigJSON(map[string]dockerCred{"quay.io": {Auth: auth}}))
	k.putPod(ns, "app", "kata-remote", "True", time.Now().Add(-time.Hour))
	noToken := filepath.Join(t.dir, "sa-without-token")
	if err := os.MkdirAll(noToken, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	for _, f := range []string{"ca.crt", "namespace"} {
		if err := os.WriteFile(filepath.Join(noToken, f), mustReadFile(t, filepath.Join(k.f.SADir, f)), 0o644); err != nil {
			t.Fatalf("%v", err)
		}
	}
	uid := kubeUID()
	all := k.env(uid)
	without := func(env []string, key string) []string {
		var out []string
		for _, kv := range env {
			if !strings.HasPrefix(kv, key+"=") {
				out = append(out, kv)
			}
		}
		return out
	}
	cases := []struct {
		name string
		env  []string
		warn string // the daemon's warning names it
	}{
		{"no KUBERNETES_SERVICE_HOST", without(all, "KUBERNETES_SERVICE_HOST"), "KUBERNETES_SERVICE_HOST"},
		{"no token file", append(without(all, "K8S_SERVICE_ACCOUNT_DIR"), "K8S_SERVICE_ACCOUNT_DIR="+noToken), "token"},
		{"no NODE_NAME", without(all, "NODE_NAME"), ""},
		{"control: configured", all, ""},
	}
	for i, c := range cases {
		t.env = c.env
		d := t.StartDaemon()
		files, id, _ := podVM(t, d, "app", ns)
		code, body, err := probeGet(k.port, "GET", "/startup")
		mustOK(t, "StopVM", d.StopVM(id))
		sigtermExit(t, d, 10*time.Second)
		_, hasAuth := authJSON(files)
		if i == len(cases)-1 {
			if k.f.Conns() == 0 || !hasAuth || code != 500 {
				t.Errorf("%s: %d connections, auth.json %v, /startup %d; want API traffic, auth.json and 500 (app is stale)",
					c.name, k.f.Conns(), hasAuth, code)
			}
			break
		}
		if k.f.Conns() != 0 {
			t.Errorf("%s: the daemon opened %d connections to the API:%s", c.name, k.f.Conns(), kubeList(k.f.Requests()))
		}
		if hasAuth {
			t.Errorf("%s: the pod VM got an auth.json", c.name)
		}
		if err != nil || code != 200 {
			t.Errorf("%s: /startup %d %q %v; want 200 (no cluster to ask)", c.name, code, body, err)
		}
		if c.warn != "" && !kubeWarned(d, c.warn) {
			t.Errorf("%s: no WARN line naming %q in the daemon log", c.name, c.warn)
		}
	}
}

func kubeWarned(d *Daemon, word string) bool {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, " WARN ") && strings.Contains(l, word) {
			return true
		}
	}
	return false
}

// KUBERNETES_SERVICE_HOST as an IPv6 address: the URL needs brackets.
func scKubeIPv6(t *T) {
	token := kubeToken()
	f, err := StartFakeKube(t.dir, token, true)
	if err != nil {
		t.Logf("no IPv6 loopback here (%v): nothing to check", err)
		return
	}
	defer f.Close()
	k := &kubeRig{t: t, f: f, node: "worker-v6", token: token, port: freePort(t)}
	f.AddNode(k.node, nil)
	uid := kubeUID()
	t.env = k.env(uid)
	d := t.StartDaemon()
	t.Logf("KUBERNETES_SERVICE_HOST=%s", f.Host)
	k.expectSeq("start-up over IPv6", f.Requests(), token, k.wantOwner(uid), k.wantCapacity(10))
	sigtermExit(t, d, 10*time.Second)
}

// ---------------------------------------------------------------------------
// PeerPod objects for peerpod-ctrl (spec network-and-operations.md B.4).

func peerpodName(pod, id string) string { return pod + "-resource-" + id[:8] }

// waitPeerPod waits until the PeerPod ns/name satisfies ok; the last state (nil: absent) on
// failure.
func (k *kubeRig) waitPeerPod(ns, name string, ok func(o map[string]interface{}) bool) (bool, map[string]interface{}) {
	var o map[string]interface{}
	done := waitFor(5*time.Second, func() bool {
		o = k.f.PeerPods()[ns+"/"+name]
		return ok(o)
	})
	return done, o
}

func hasFinalizer(o map[string]interface{}) bool {
	md, _ := o["metadata"].(map[string]interface{})
	f, _ := md["finalizers"].([]interface{})
	return len(f) == 1 && f[0] == "peer.pod/finalizer"
}

// With the CRD installed, a pod VM gets a PeerPod owned by its Pod (name, uid, controller),
// naming the provider and instance, with peerpod-ctrl's finalizer; StopVM removes the
// finalizer after the VM is deleted — also when a restarted daemon does the StopVM, and
// only once a failing delete has succeeded. The pod's uid comes from the pull-secret read:
// one pod GET per pod, as before.
func scKubePeerPod(t *T) {
	k := startKube(t, "worker-pp")
	defer k.f.Close()
	k.f.InstallPeerPodCRD()
	ns := "team-pp"
	for _, p := range []string{"web-0", "web-1", "web-2"} {
		k.putPod(ns, p, "kata-remote", "False", time.Time{})
	}
	t.env = k.env(kubeUID())
	d := t.StartDaemon("-fake-delete-fail-count", "0")
	n := len(k.f.Requests())
	_, id, _ := podVM(t, d, "web-0", ns)
	name := peerpodName("web-0", id)
	ok, o := k.waitPeerPod(ns, name, func(o map[string]interface{}) bool { return o != nil })
	if !ok {
		t.Fatalf("no PeerPod %s/%s after StartVM:%s", ns, name, kubeList(k.since(n)))
	}
	want := map[string]interface{}{
		"apiVersion": "confidentialcontainers.org/v1alpha1", "kind": "PeerPod",
		"spec": map[string]interface{}{"cloudProvider": "fake", "instanceID": "fake-" + instanceName("web-0", id)},
	}
	for key, v := range want {
		if got, _ := json.Marshal(o[key]); string(got) != mustJSON(v) {
			t.Errorf("PeerPod %s: %s = %s, want %s", name, key, got, mustJSON(v))
		}
	}
	md, _ := o["metadata"].(map[string]interface{})
	owners, _ := md["ownerReferences"].([]interface{})
	wantOwner := `[{"apiVersion":"v1","blockOwnerDeletion":true,"controller":true,"kind":"Pod","name":"web-0","uid":"pod-uid-web-0"}]`
	if got, _ := json.Marshal(owners); string(got) != wantOwner {
		t.Errorf("PeerPod %s: ownerReferences %s, want %s", name, got, wantOwner)
	}
	if !hasFinalizer(o) {
		t.Errorf("PeerPod %s: finalizers %v, want [peer.pod/finalizer]", name, md["finalizers"])
	}
	if pg := kubeOnly(k.since(n), "pod-get"); len(pg) != 1 {
		t.Errorf("%d pod GETs for one pod, want 1 (the uid comes with the pull secrets):%s", len(pg), kubeList(pg))
	}
	// StopVM: VM deleted, then the finalizer removed with the Go daemon's JSON patch.
	n = len(k.f.Requests())
	mustOK(t, "StopVM web-0", d.StopVM(id))
	if ok, o := k.waitPeerPod(ns, name, func(o map[string]interface{}) bool { return o != nil && !hasFinalizer(o) }); !ok {
		t.Errorf("PeerPod %s keeps its finalizer after StopVM: %v%s", name, o, kubeList(k.since(n)))
	}
	if p := kubeOnly(k.since(n), "peerpod-patch"); len(p) != 1 || p[0].Body != `[{"op":"remove","path":"/metadata/finalizers"}]` ||
		p[0].ContentType != "application/json-patch+json" {
		t.Errorf("release: want one JSON patch removing /metadata/finalizers:%s", kubeList(p))
	}

	// A restart between StartVM and StopVM: the new daemon knows the name.
	_, id1, _ := podVM(t, d, "web-1", ns)
	name1 := peerpodName("web-1", id1)
	if ok, _ := k.waitPeerPod(ns, name1, hasFinalizer); !ok {
		t.Fatalf("no PeerPod %s after StartVM", name1)
	}
	sigtermExit(t, d, 10*time.Second)
	d = t.StartDaemonDirs(d.Dirs, "-fake-delete-fail-count", "2")
	mustOK(t, "StopVM web-1 (restarted daemon, first delete fails)", d.StopVM(id1))
	// The delete failed and is queued: the finalizer stays until the VM is really gone.
	if o := k.f.PeerPods()[ns+"/"+name1]; !hasFinalizer(o) {
		t.Errorf("PeerPod %s lost its finalizer while the VM delete was still failing", name1)
	}
	if ok, o := k.waitPeerPod(ns, name1, func(o map[string]interface{}) bool { return o != nil && !hasFinalizer(o) }); !ok {
		t.Errorf("PeerPod %s keeps its finalizer after the queued delete succeeded: %v", name1, o)
	}
	if !waitFor(5*time.Second, func() bool { return !exists(filepath.Join(d.Dirs.FakeDir, instanceName("web-1", id1))) }) {
		t.Errorf("VM of web-1 not deleted")
	}

	// A pod whose PeerPod create is refused (RBAC): the pod still runs, one warning says why.
	k.f.AddFault(KubeFault{Call: "peerpod-create", Status: 403, Times: 1})
	_, id2, _ := podVM(t, d, "web-2", ns)
	if !waitFor(5*time.Second, func() bool {
		return strings.Contains(string(mustReadFile(t, d.LogPath)), "needs create and patch on peerpods")
	}) {
		t.Errorf("no warning naming the missing PeerPod rights after a 403")
	}
	mustOK(t, "StopVM web-2", d.StopVM(id2))
	if len(k.f.PeerPods()) != 2 {
		t.Errorf("PeerPods: %v, want web-0's and web-1's only", k.f.PeerPods())
	}
}

// Without the CRD the pods run as before; the daemon says so once and does not ask again
// for every pod (a 404 per pod filled the Go daemon's logs, upstream #1315).
func scKubePeerPodNoCRD(t *T) {
	k := startKube(t, "worker-nocrd")
	defer k.f.Close()
	ns := "plain"
	for _, p := range []string{"a", "b", "c"} {
		k.putPod(ns, p, "kata-remote", "False", time.Time{})
	}
	t.env = k.env(kubeUID())
	d := t.StartDaemon()
	n := len(k.f.Requests())
	var ids []string
	for _, p := range []string{"a", "b", "c"} {
		_, id, _ := podVM(t, d, p, ns)
		ids = append(ids, id)
	}
	for _, id := range ids {
		mustOK(t, "StopVM", d.StopVM(id))
	}
	got := kubeOnly(k.since(n), "peerpod-create", "peerpod-patch", "peerpod-get")
	if len(got) != 1 || got[0].Call != "peerpod-create" || got[0].Status != 404 {
		t.Errorf("without the CRD: want one PeerPod create (404) and nothing more:%s", kubeList(got))
	}
	if c := strings.Count(string(mustReadFile(t, d.LogPath)), "is not installed"); c != 1 {
		t.Errorf("%d log lines about the missing PeerPod CRD, want 1", c)
	}
}

// A PeerPod create refused because the pod's namespace is going away (404 naming the
// namespace) is that pod's problem: the next pod, elsewhere, still gets its PeerPod (the
// daemon once took any 404 for a missing CRD and stopped making PeerPods for 10 minutes).
func scKubePeerPodNamespaceGone(t *T) {
	k := startKube(t, "worker-nsgone")
	defer k.f.Close()
	k.f.InstallPeerPodCRD()
	k.putPod("going", "a", "kata-remote", "False", time.Time{})
	k.putPod("staying", "b", "kata-remote", "False", time.Time{})
	k.f.SetNamespaceGone("going")
	t.env = k.env(kubeUID())
	d := t.StartDaemon()
	n := len(k.f.Requests())
	_, ida, _ := podVM(t, d, "a", "going")
	if !waitFor(5*time.Second, func() bool { return len(kubeOnly(k.since(n), "peerpod-create")) == 1 }) {
		t.Fatalf("no PeerPod create for the pod of the vanishing namespace:%s", kubeList(k.since(n)))
	}
	_, idb, _ := podVM(t, d, "b", "staying")
	name := peerpodName("b", idb)
	if ok, _ := k.waitPeerPod("staying", name, hasFinalizer); !ok {
		t.Errorf("no PeerPod for a pod in another namespace after one namespace's 404:%s", kubeList(k.since(n)))
	}
	mustOK(t, "StopVM a", d.StopVM(ida))
	mustOK(t, "StopVM b", d.StopVM(idb))
	if strings.Contains(string(mustReadFile(t, d.LogPath)), "is not installed") {
		t.Errorf("a namespace's 404 was logged as the PeerPod CRD missing")
	}
}

// StopVM while the PeerPod create is unanswered, and the create then never gets an answer
// (every try's connection drops): it may have landed, so the finalizer is released anyway.
func scKubePeerPodCreateLost(t *T) {
	k := startKube(t, "worker-pplost")
	defer k.f.Close()
	k.f.InstallPeerPodCRD()
	k.putPod("lost", "a", "kata-remote", "False", time.Time{})
	k.f.AddFault(KubeFault{Call: "peerpod-create", Hang: true, Times: 1})
	k.f.AddFault(KubeFault{Call: "peerpod-create", Reset: true, Times: 100}) // every retry too
	t.env = k.env(kubeUID())
	d := t.StartDaemon()
	n := len(k.f.Requests())
	_, id, _ := podVM(t, d, "a", "lost")
	mustOK(t, "StopVM", d.StopVM(id)) // the create is held (a request is logged when it ends)
	k.f.ReleaseHangs()
	if !waitFor(30*time.Second, func() bool { return len(kubeOnly(k.since(n), "peerpod-create")) >= 1 }) {
		t.Fatalf("no PeerPod create:%s", kubeList(k.since(n)))
	}
	if !waitFor(30*time.Second, func() bool { return len(kubeOnly(k.since(n), "peerpod-patch")) == 1 }) {
		t.Errorf("no finalizer release after a create whose answer was lost:%s", kubeList(k.since(n)))
	}
}

func mustJSON(v interface{}) string {
	b, _ := json.Marshal(v)
	return string(b)
}
