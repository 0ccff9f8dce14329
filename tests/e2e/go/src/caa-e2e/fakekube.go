package main

// A fake Kubernetes API server over HTTPS on loopback (Go's net/http and crypto/tls:
// independent of the daemon's libcurl client), serving the few calls the daemon makes:
// Node GET and PATCH (merge patch on the object, JSON patch on the status subresource, both
// applied to an in-memory Node), Pod, ServiceAccount and Secret GETs, and the PodList of a
// node by field selector, and PeerPod objects (confidentialcontainers.org/v1alpha1; create,
// get, patch) once InstallPeerPodCRD was called, 404 for the resource before. Every request is checked for a bearer token the fake accepts now
// (401 otherwise) and recorded with its headers and body, and with whether the watched
// hypervisor socket was listening when it arrived; faults (a status, a reset, a hang) can be
// queued per call. It also writes the service-account directory the daemon reads.

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KubeRequest is one request as the fake saw it.
type KubeRequest struct {
	At          time.Time
	Call        string // kubeCall's name for it
	Method      string
	Path        string
	Query       string // raw
	ContentType string
	Accept      string
	UserAgent   string
	Auth        string
	Body        string
	Status      int  // what it was answered; 0: hung up without an answer
	Listening   bool // the watched hypervisor socket was listening when the request arrived
}

func (r KubeRequest) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	if r.Body != "" {
		s += " " + r.Body
	}
	return fmt.Sprintf("%s -> %d", s, r.Status)
}

// KubeFault answers the next Times requests (0: all) of one call ("" = any call) with Status, or by
// closing the connection (Reset), or not at all (Hang: until ReleaseHangs, the client gives
// up, or the fake closes).
type KubeFault struct {
	Call   string
	Path   string // "" = any path
	Status int
	Reset  bool
	Hang   bool
	Times  int
	Fired  int
}

type FakeKube struct {
	Host, Port string // what KUBERNETES_SERVICE_HOST/PORT must say
	SADir      string // K8S_SERVICE_ACCOUNT_DIR: token, ca.crt, namespace
	CAPool     *x509.CertPool

	srv      *http.Server
	closed   chan struct{}
	closeOne sync.Once

	mu       sync.Mutex
	tokens   map[string]bool // accepted bearer tokens
	nodes    map[string]map[string]interface{}
	pods     map[string]map[string]interface{} // "ns/name"
	sas      map[string]map[string]interface{}
	secrets  map[string]map[string]interface{}
	peerpods map[string]map[string]interface{} // "ns/name"; nil: the CRD is not installed
	goneNS   string                            // PeerPod creates in it answer "namespace not found"
	requests []KubeRequest
	faults   []*KubeFault
	release  chan struct{}
	conns    int
	watch    string // hypervisor socket path whose listening state each request records
	rv       int
}

// StartFakeKube serves on 127.0.0.1 (or ::1 with ipv6) and writes <dir>/serviceaccount with
// token (plus a trailing newline, as kubelet's projected tokens have none but admins' files
// often do), the CA that signed the server certificate, and the namespace.
func StartFakeKube(dir, token string, ipv6 bool) (*FakeKube, error) {
	ca, err := newFakeCA("fake-kube-ca")
	if err != nil {
		return nil, err
	}
	cert, err := ca.ServerCert("kube-apiserver", []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, "kubernetes.default.svc")
	if err != nil {
		return nil, err
	}
	f := &FakeKube{
		SADir: filepath.Join(dir, "serviceaccount"), CAPool: x509.NewCertPool(), closed: make(chan struct{}),
		tokens: map[string]bool{token: true}, nodes: map[string]map[string]interface{}{},
		pods: map[string]map[string]interface{}{}, sas: map[string]map[string]interface{}{},
		secrets: map[string]map[string]interface{}{}, release: make(chan struct{}),
	}
	f.CAPool.AddCert(ca.Cert)
	if err := os.MkdirAll(f.SADir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(f.SADir, "ca.crt"), ca.PEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(f.SADir, "namespace"), []byte("confidential-containers-system"), 0o644); err != nil {
		return nil, err
	}
	if err := f.WriteToken(token); err != nil {
		return nil, err
	}
	noteSecret("a Kubernetes bearer token", token)
	addr := "127.0.0.1:0"
	if ipv6 {
		addr = "[::1]:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f.Host, f.Port, _ = net.SplitHostPort(ln.Addr().String())
	f.srv = serveTLS(ln, cert, f.handle, &f.mu, &f.conns)
	return f, nil
}

func (f *FakeKube) Close() {
	f.closeOne.Do(func() { close(f.closed) })
	f.srv.Close()
}

// Env is the in-cluster configuration pointing at this fake.
func (f *FakeKube) Env() []string {
	return []string{"KUBERNETES_SERVICE_HOST=" + f.Host, "KUBERNETES_SERVICE_PORT=" + f.Port,
		"K8S_SERVICE_ACCOUNT_DIR=" + f.SADir}
}

// URL is how a client other than the daemon reaches the fake.
func (f *FakeKube) URL() string { return "https://" + net.JoinHostPort(f.Host, f.Port) }

// WriteToken replaces the token file the way kubelet does (a new file renamed over the old
// one), so the daemon never reads half a token.
func (f *FakeKube) WriteToken(token string) error {
	p := filepath.Join(f.SADir, "token")
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	noteSecret("a Kubernetes bearer token", token)
	return os.Rename(tmp, p)
}

// AcceptTokens makes these the only bearer tokens accepted from now on.
func (f *FakeKube) AcceptTokens(tokens ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = map[string]bool{}
	for _, t := range tokens {
		f.tokens[t] = true
	}
}

// WatchSocket makes every request record whether path was a listening socket then.
func (f *FakeKube) WatchSocket(path string) {
	f.mu.Lock()
	f.watch = path
	f.mu.Unlock()
}

func (f *FakeKube) AddFault(fl KubeFault) *KubeFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &fl
	f.faults = append(f.faults, p)
	return p
}

// ReleaseHangs hangs up every request held by a Hang fault, and lets later ones through.
func (f *FakeKube) ReleaseHangs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	var left []*KubeFault
	for _, fl := range f.faults {
		if !fl.Hang {
			left = append(left, fl)
		}
	}
	f.faults = left
	close(f.release)
	f.release = make(chan struct{})
}

// Requests returns what arrived so far, in order.
func (f *FakeKube) Requests() []KubeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]KubeRequest(nil), f.requests...)
}

// Conns is how many connections clients opened (a request that never got through TLS counts).
func (f *FakeKube) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// ---------------------------------------------------------------------------
// Objects.

func (f *FakeKube) nextRV() string {
	f.rv++
	return strconv.Itoa(f.rv)
}

// AddNode creates a node with some capacity of its own (what kubelet reports).
func (f *FakeKube) AddNode(name string, annotations map[string]string) {
	ann := map[string]interface{}{}
	for k, v := range annotations {
		ann[k] = v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[name] = map[string]interface{}{
		"kind": "Node", "apiVersion": "v1",
		"metadata": map[string]interface{}{"name": name, "uid": "node-uid-" + name, "resourceVersion": f.nextRV(),
			"annotations": ann, "labels": map[string]interface{}{"kubernetes.io/hostname": name}},
		"spec": map[string]interface{}{},
		"status": map[string]interface{}{
			"capacity":    map[string]interface{}{"cpu": "4", "memory": "16302208Ki", "pods": "110"},
			"allocatable": map[string]interface{}{"cpu": "4", "memory": "16199808Ki", "pods": "110"},
		},
	}
}

// NodeField returns a string at status.capacity[key] ("capacity") or
// metadata.annotations[key] ("annotation") of a node.
func (f *FakeKube) NodeField(node, where, key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[node]
	if n == nil {
		return "", false
	}
	var m interface{}
	switch where {
	case "capacity":
		m = dig(n, "status", "capacity")
	case "annotation":
		m = dig(n, "metadata", "annotations")
	}
	mm, _ := m.(map[string]interface{})
	v, ok := mm[key].(string)
	return v, ok
}

// NodeJSON is the node as a client would GET it.
func (f *FakeKube) NodeJSON(node string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(f.nodes[node])
	return string(b)
}

type kubePod struct {
	NS, Name, Node, RuntimeClass, SA string
	PullSecrets                      []string
	Ready                            string // "True", "False", or "": no Ready condition yet
	ReadySince                       time.Time
}

// PutPod creates or replaces a pod.
func (f *FakeKube) PutPod(p kubePod) {
	spec := map[string]interface{}{
		"nodeName":   p.Node,
		"containers": []interface{}{map[string]interface{}{"name": "app", "image": "quay.io/example/app:1"}},
	}
	if p.RuntimeClass != "" {
		spec["runtimeClassName"] = p.RuntimeClass
	}
	if p.SA != "" {
		spec["serviceAccountName"] = p.SA
	}
	if len(p.PullSecrets) > 0 {
		var l []interface{}
		for _, s := range p.PullSecrets {
			l = append(l, map[string]interface{}{"name": s})
		}
		spec["imagePullSecrets"] = l
	}
	since := p.ReadySince
	if since.IsZero() {
		since = time.Now()
	}
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	conds := []interface{}{map[string]interface{}{"type": "PodScheduled", "status": "True",
		"lastProbeTime": nil, "lastTransitionTime": rfc(since.Add(-time.Minute))}}
	phase := "Pending"
	if p.Ready != "" {
		phase = "Running"
		conds = append(conds,
			map[string]interface{}{"type": "Initialized", "status": "True", "lastProbeTime": nil,
				"lastTransitionTime": rfc(since.Add(-30 * time.Second))},
			map[string]interface{}{"type": "Ready", "status": p.Ready, "lastProbeTime": nil,
				"lastTransitionTime": rfc(since)},
			map[string]interface{}{"type": "ContainersReady", "status": p.Ready, "lastProbeTime": nil,
				"lastTransitionTime": rfc(since)})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[p.NS+"/"+p.Name] = map[string]interface{}{
		"kind": "Pod", "apiVersion": "v1",
		"metadata": map[string]interface{}{"name": p.Name, "namespace": p.NS, "uid": "pod-uid-" + p.Name,
			"resourceVersion": f.nextRV(), "creationTimestamp": rfc(since.Add(-2 * time.Minute))},
		"spec":   spec,
		"status": map[string]interface{}{"phase": phase, "conditions": conds},
	}
}

func (f *FakeKube) DeletePod(ns, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pods, ns+"/"+name)
}

// PutServiceAccount creates or replaces a service account with these imagePullSecrets.
func (f *FakeKube) PutServiceAccount(ns, name string, pullSecrets ...string) {
	sa := map[string]interface{}{"kind": "ServiceAccount", "apiVersion": "v1",
		"metadata": map[string]interface{}{"name": name, "namespace": ns, "uid": "sa-uid-" + name}}
	if len(pullSecrets) > 0 {
		var l []interface{}
		for _, s := range pullSecrets {
			l = append(l, map[string]interface{}{"name": s})
		}
		sa["imagePullSecrets"] = l
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sa["metadata"].(map[string]interface{})["resourceVersion"] = f.nextRV()
	f.sas[ns+"/"+name] = sa
}

// PutSecret creates or replaces a secret; data values are sent as given (already base64,
// or deliberately not).
func (f *FakeKube) PutSecret(ns, name, typ string, data map[string]string) {
	d := map[string]interface{}{}
	for k, v := range data {
		d[k] = v
		noteSecret("a registry credential", v)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[ns+"/"+name] = map[string]interface{}{"kind": "Secret", "apiVersion": "v1", "type": typ,
		"metadata": map[string]interface{}{"name": name, "namespace": ns, "resourceVersion": f.nextRV()},
		"data":     d}
}

// ---------------------------------------------------------------------------
// Serving.

func kubeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]interface{}{"kind": "Status", "apiVersion": "v1",
		"metadata": map[string]interface{}{}, "status": "Failure", "message": msg, "reason": reason, "code": code})
}

func kubeReply(w http.ResponseWriter, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	json.NewEncoder(w).Encode(v)
}

// kubeCall names a request: node-patch, status-patch, node-get, pod-get, sa-get, secret-get,
// pod-list; "" for anything else.
// InstallPeerPodCRD makes the peerpods resource exist (empty).
func (f *FakeKube) InstallPeerPodCRD() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peerpods == nil {
		f.peerpods = map[string]map[string]interface{}{}
	}
}

// PeerPods returns a copy of the PeerPod objects by "ns/name".
func (f *FakeKube) PeerPods() map[string]map[string]interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]interface{}{}
	for k, v := range f.peerpods {
		out[k] = deepCopyJSON(v).(map[string]interface{})
	}
	return out
}

var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// peerpodCreate stores a PeerPod as the API server would (schema of the CRD: apiVersion,
// kind, metadata, spec.cloudProvider/instanceID strings; nothing else at the top level).
// SetNamespaceGone makes PeerPod creates in ns fail as in a namespace being deleted: 404 with
// the Status naming the namespace (the CRD exists; only this namespace is gone).
func (f *FakeKube) SetNamespaceGone(ns string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.goneNS = ns
}

func (f *FakeKube) peerpodCreate(w http.ResponseWriter, ns string, body []byte) {
	if f.goneNS != "" && ns == f.goneNS {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		json.NewEncoder(w).Encode(map[string]interface{}{"kind": "Status", "apiVersion": "v1",
			"metadata": map[string]interface{}{}, "status": "Failure", "message": fmt.Sprintf("namespaces %q not found", ns),
			"reason": "NotFound", "details": map[string]interface{}{"name": ns, "kind": "namespaces"}, "code": 404})
		return
	}
	var o map[string]interface{}
	if err := json.Unmarshal(body, &o); err != nil {
		kubeStatus(w, 400, "BadRequest", fmt.Sprintf("invalid body: %v", err))
		return
	}
	md, _ := o["metadata"].(map[string]interface{})
	spec, _ := o["spec"].(map[string]interface{})
	name, _ := md["name"].(string)
	switch {
	case o["apiVersion"] != "confidentialcontainers.org/v1alpha1" || o["kind"] != "PeerPod":
		kubeStatus(w, 400, "BadRequest", fmt.Sprintf("the API version in the data (%v) does not match the expected API version (confidentialcontainers.org/v1alpha1) or kind %v", o["apiVersion"], o["kind"]))
		return
	case md == nil || spec == nil:
		kubeStatus(w, 422, "Invalid", "metadata and spec are required")
		return
	case len(name) > 253 || !dnsSubdomain.MatchString(name):
		kubeStatus(w, 422, "Invalid", fmt.Sprintf("PeerPod %q is invalid: metadata.name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters", name))
		return
	case md["namespace"] != nil && md["namespace"] != ns:
		kubeStatus(w, 400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
		return
	}
	for k := range o {
		if k != "apiVersion" && k != "kind" && k != "metadata" && k != "spec" && k != "status" {
			kubeStatus(w, 400, "BadRequest", fmt.Sprintf("unknown field %q", k))
			return
		}
	}
	for k, v := range spec {
		if _, ok := v.(string); !ok || (k != "cloudProvider" && k != "instanceID") {
			kubeStatus(w, 400, "BadRequest", fmt.Sprintf("spec.%s: unknown field or not a string", k))
			return
		}
	}
	if f.peerpods[ns+"/"+name] != nil {
		kubeStatus(w, 409, "AlreadyExists", fmt.Sprintf("peerpods.confidentialcontainers.org %q already exists", name))
		return
	}
	md["namespace"] = ns
	md["uid"] = "peerpod-uid-" + name
	md["resourceVersion"] = f.nextRV()
	md["creationTimestamp"] = time.Now().UTC().Format(time.RFC3339)
	f.peerpods[ns+"/"+name] = o
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(201)
	json.NewEncoder(w).Encode(o)
}

func kubeCall(method, path string) string {
	p := strings.Split(strings.Trim(path, "/"), "/")
	if len(p) >= 6 && p[0] == "apis" && p[1] == "confidentialcontainers.org" && p[2] == "v1alpha1" &&
		p[3] == "namespaces" && p[5] == "peerpods" {
		switch {
		case len(p) == 6 && method == "POST":
			return "peerpod-create"
		case len(p) == 7:
			return map[string]string{"GET": "peerpod-get", "PATCH": "peerpod-patch"}[method]
		}
		return ""
	}
	if len(p) < 3 || p[0] != "api" || p[1] != "v1" {
		return ""
	}
	switch {
	case len(p) == 3 && p[2] == "pods" && method == "GET":
		return "pod-list"
	case len(p) == 4 && p[2] == "nodes":
		return map[string]string{"GET": "node-get", "PATCH": "node-patch"}[method]
	case len(p) == 5 && p[2] == "nodes" && p[4] == "status":
		return map[string]string{"GET": "node-get", "PATCH": "status-patch"}[method]
	case len(p) == 6 && p[2] == "namespaces" && method == "GET":
		return map[string]string{"pods": "pod-get", "serviceaccounts": "sa-get", "secrets": "secret-get"}[p[4]]
	}
	return ""
}

// sockListening reads /proc/net/unix (our network namespace is the daemon's) for a
// listening socket (__SO_ACCEPTCON, 0x10000) bound to path.
func sockListening(path string) bool {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) >= 8 && fs[7] == path {
			if fl, err := strconv.ParseUint(fs[3], 16, 32); err == nil && fl&0x10000 != 0 {
				return true
			}
		}
	}
	return false
}

func (f *FakeKube) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	f.mu.Lock()
	watch := f.watch
	f.mu.Unlock()
	req := KubeRequest{At: time.Now(), Call: kubeCall(r.Method, r.URL.Path), Method: r.Method, Path: r.URL.Path,
		Query: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept"),
		UserAgent: r.Header.Get("User-Agent"), Auth: r.Header.Get("Authorization"), Body: string(body)}
	if watch != "" {
		req.Listening = sockListening(watch)
	}
	rec := &statusRecorder{ResponseWriter: w}
	f.serve(rec, r, req.Call, body)
	req.Status = rec.code
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	if req.Call != "" {
		kubeCallsMu.Lock()
		kubeCallsSeen[req.Call] = true
		kubeCallsMu.Unlock()
	}
}

// Every kind of API call any daemon of the run made, for kube_rbac_covers_calls.
var (
	kubeCallsMu   sync.Mutex
	kubeCallsSeen = map[string]bool{}
)

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return s.ResponseWriter.(http.Hijacker).Hijack()
}

func (f *FakeKube) serve(w http.ResponseWriter, r *http.Request, call string, body []byte) {
	f.mu.Lock()
	authorized := strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") &&
		f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	var fault *KubeFault
	if authorized {
		for _, fl := range f.faults {
			if (fl.Call == "" || fl.Call == call) && (fl.Path == "" || fl.Path == r.URL.Path) &&
				(fl.Times == 0 || fl.Fired < fl.Times) {
				fl.Fired++
				fault = fl
				break
			}
		}
	}
	release := f.release
	f.mu.Unlock()
	if !authorized {
		kubeStatus(w, 401, "Unauthorized", "Unauthorized")
		return
	}
	if fault != nil {
		switch {
		case fault.Hang:
			select { // held until the test lets go, the client gives up, or the fake closes
			case <-release:
			case <-r.Context().Done():
			case <-f.closed:
			}
			hangUp(w)
			return
		case fault.Reset:
			hangUp(w)
			return
		default:
			kubeStatus(w, fault.Status, "InternalError", "fake fault")
			return
		}
	}

	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch call {
	case "node-get":
		n := f.nodes[p[3]]
		if n == nil {
			kubeStatus(w, 404, "NotFound", fmt.Sprintf("nodes %q not found", p[3]))
			return
		}
		kubeReply(w, n)
	case "node-patch", "status-patch":
		n := f.nodes[p[3]]
		if n == nil {
			kubeStatus(w, 404, "NotFound", fmt.Sprintf("nodes %q not found", p[3]))
			return
		}
		patched, code, msg := applyPatch(n, r.Header.Get("Content-Type"), body)
		if code != 0 {
			kubeStatus(w, code, http.StatusText(code), msg)
			return
		}
		// The status subresource takes only status changes, the object everything else.
		if call == "status-patch" {
			n["status"] = patched["status"]
		} else {
			status := n["status"]
			for k := range n {
				delete(n, k)
			}
			for k, v := range patched {
				n[k] = v
			}
			n["status"] = status
		}
		if md, ok := n["metadata"].(map[string]interface{}); ok {
			md["resourceVersion"] = f.nextRV()
		}
		kubeReply(w, n)
	case "pod-get", "sa-get", "secret-get":
		store := map[string]map[string]map[string]interface{}{"pod-get": f.pods, "sa-get": f.sas, "secret-get": f.secrets}[call]
		o := store[p[3]+"/"+p[5]]
		if o == nil {
			kubeStatus(w, 404, "NotFound", fmt.Sprintf("%s %q not found", p[4], p[5]))
			return
		}
		kubeReply(w, o)
	case "pod-list":
		sel := r.URL.Query().Get("fieldSelector")
		node, bad := "", false
		if sel != "" {
			if !strings.HasPrefix(sel, "spec.nodeName=") {
				bad = true
			}
			node = strings.TrimPrefix(strings.TrimPrefix(sel, "spec.nodeName="), "=") // "==" also means equal
		}
		if bad {
			kubeStatus(w, 400, "BadRequest", fmt.Sprintf("field label not supported: %s", sel))
			return
		}
		var keys []string
		for k, o := range f.pods {
			if sel == "" || dig(o, "spec", "nodeName") == node {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		items := []interface{}{}
		for _, k := range keys {
			items = append(items, f.pods[k])
		}
		kubeReply(w, map[string]interface{}{"kind": "PodList", "apiVersion": "v1",
			"metadata": map[string]interface{}{"resourceVersion": strconv.Itoa(f.rv)}, "items": items})
	case "peerpod-create", "peerpod-get", "peerpod-patch":
		if f.peerpods == nil {
			kubeStatus(w, 404, "NotFound", "the server could not find the requested resource")
			return
		}
		if call == "peerpod-create" {
			f.peerpodCreate(w, p[4], body)
			return
		}
		o := f.peerpods[p[4]+"/"+p[6]]
		if o == nil {
			kubeStatus(w, 404, "NotFound", fmt.Sprintf("peerpods.confidentialcontainers.org %q not found", p[6]))
			return
		}
		if call == "peerpod-patch" {
			patched, code, msg := applyPatch(o, r.Header.Get("Content-Type"), body)
			if code != 0 {
				kubeStatus(w, code, http.StatusText(code), msg)
				return
			}
			if md, ok := patched["metadata"].(map[string]interface{}); ok {
				md["resourceVersion"] = f.nextRV()
			}
			f.peerpods[p[4]+"/"+p[6]] = patched
			o = patched
		}
		kubeReply(w, o)
	default:
		kubeStatus(w, 404, "NotFound", "the server could not find the requested resource")
	}
}

// ---------------------------------------------------------------------------
// Patches: RFC 7386 merge patch and RFC 6902 JSON patch, on a deep copy of the object.

func deepCopyJSON(v interface{}) interface{} {
	b, _ := json.Marshal(v)
	var out interface{}
	json.Unmarshal(b, &out)
	return out
}

// applyPatch returns the patched copy, or an HTTP status and message.
func applyPatch(obj map[string]interface{}, contentType string, body []byte) (map[string]interface{}, int, string) {
	ct := strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0])
	doc := deepCopyJSON(obj)
	dec := json.NewDecoder(bytes.NewReader(body))
	switch ct {
	case "application/merge-patch+json":
		var patch interface{}
		if err := dec.Decode(&patch); err != nil || dec.More() {
			return nil, 400, fmt.Sprintf("invalid merge patch: %v", err)
		}
		if _, ok := patch.(map[string]interface{}); !ok {
			return nil, 422, "a merge patch of an object must be an object"
		}
		doc = mergePatch(doc, patch)
	case "application/json-patch+json":
		var ops []map[string]interface{}
		if err := dec.Decode(&ops); err != nil || dec.More() {
			return nil, 400, fmt.Sprintf("invalid JSON patch: %v", err)
		}
		for i, op := range ops {
			var err error
			if doc, err = jsonPatchOp(doc, op); err != nil {
				return nil, 422, fmt.Sprintf("JSON patch operation %d: %v", i, err)
			}
		}
	default:
		return nil, 415, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got %q)", contentType)
	}
	m, ok := doc.(map[string]interface{})
	if !ok {
		return nil, 422, "the patch replaced the object with a non-object"
	}
	return m, 0, ""
}

func mergePatch(target, patch interface{}) interface{} {
	p, ok := patch.(map[string]interface{})
	if !ok {
		return patch
	}
	t, ok := target.(map[string]interface{})
	if !ok {
		t = map[string]interface{}{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = mergePatch(t[k], v)
		}
	}
	return t
}

// jsonPointer splits an RFC 6901 pointer into unescaped tokens.
func jsonPointer(ptr string) ([]string, error) {
	if ptr == "" {
		return nil, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("path %q does not start with /", ptr)
	}
	toks := strings.Split(ptr[1:], "/")
	for i, t := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

func jsonPatchOp(doc interface{}, op map[string]interface{}) (interface{}, error) {
	kind, _ := op["op"].(string)
	path, ok := op["path"].(string)
	if !ok {
		return nil, fmt.Errorf("no path")
	}
	toks, err := jsonPointer(path)
	if err != nil {
		return nil, err
	}
	value, hasValue := op["value"]
	switch kind {
	case "add", "replace":
		if !hasValue {
			return nil, fmt.Errorf("%s %s: no value", kind, path)
		}
	case "remove":
	case "test":
		got, err := pointerGet(doc, toks)
		if err != nil {
			return nil, err
		}
		if a, b := deepCopyJSON(got), deepCopyJSON(value); fmt.Sprint(a) != fmt.Sprint(b) {
			return nil, fmt.Errorf("test %s failed", path)
		}
		return doc, nil
	default:
		return nil, fmt.Errorf("unsupported op %q", kind)
	}
	if len(toks) == 0 {
		if kind == "remove" {
			return nil, fmt.Errorf("cannot remove the whole document")
		}
		return value, nil
	}
	parent, err := pointerGet(doc, toks[:len(toks)-1])
	if err != nil {
		return nil, err
	}
	last := toks[len(toks)-1]
	switch c := parent.(type) {
	case map[string]interface{}:
		_, present := c[last]
		if (kind == "remove" || kind == "replace") && !present {
			return nil, fmt.Errorf("%s %s: path does not exist", kind, path)
		}
		if kind == "remove" {
			delete(c, last)
		} else {
			c[last] = value
		}
		return doc, nil
	case []interface{}:
		i := len(c)
		if last != "-" {
			if i, err = strconv.Atoi(last); err != nil || i < 0 || i > len(c) || (kind != "add" && i == len(c)) {
				return nil, fmt.Errorf("%s %s: bad array index", kind, path)
			}
		} else if kind != "add" {
			return nil, fmt.Errorf("%s %s: '-' only for add", kind, path)
		}
		var n []interface{}
		switch kind {
		case "add":
			n = append(append(append(n, c[:i]...), value), c[i:]...)
		case "remove":
			n = append(append(n, c[:i]...), c[i+1:]...)
		default:
			n = append(n, c...)
			n[i] = value
		}
		// Slices are values: write the new one back into its parent.
		if len(toks) == 1 {
			return n, nil
		}
		gp, _ := pointerGet(doc, toks[:len(toks)-2])
		switch g := gp.(type) {
		case map[string]interface{}:
			g[toks[len(toks)-2]] = n
		case []interface{}:
			j, _ := strconv.Atoi(toks[len(toks)-2])
			g[j] = n
		}
		return doc, nil
	}
	return nil, fmt.Errorf("%s %s: parent is not an object or array", kind, path)
}

func pointerGet(doc interface{}, toks []string) (interface{}, error) {
	cur := doc
	for i, t := range toks {
		switch c := cur.(type) {
		case map[string]interface{}:
			v, ok := c[t]
			if !ok {
				return nil, fmt.Errorf("path /%s does not exist", strings.Join(toks[:i+1], "/"))
			}
			cur = v
		case []interface{}:
			j, err := strconv.Atoi(t)
			if err != nil || j < 0 || j >= len(c) {
				return nil, fmt.Errorf("path /%s: bad array index", strings.Join(toks[:i+1], "/"))
			}
			cur = c[j]
		default:
			return nil, fmt.Errorf("path /%s: not a container", strings.Join(toks[:i+1], "/"))
		}
	}
	return cur, nil
}

// ---------------------------------------------------------------------------
// Pull-secret documents.

type dockerCred struct {
	Username, Password, Auth, Email string
	AuthKey                         bool // write "auth" even when empty
}

func (c dockerCred) obj() map[string]interface{} {
	m := map[string]interface{}{}
	if c.Username != "" {
		m["username"] = c.Username
	}
	if c.Password != "" {
		m["password"] = c.Password
	}
	if c.Auth != "" || c.AuthKey {
		m["auth"] = c.Auth
	}
	if c.Email != "" {
		m["email"] = c.Email
	}
	return m
}

// dockerConfigJSON is a kubernetes.io/dockerconfigjson secret's data, base64 as the API sends it.
func dockerConfigJSON(regs map[string]dockerCred) map[string]string {
	auths := map[string]interface{}{}
	for r, c := range regs {
		auths[r] = c.obj()
		noteCred(c)
	}
	b, _ := json.Marshal(map[string]interface{}{"auths": auths})
	return map[string]string{".dockerconfigjson": base64.StdEncoding.EncodeToString(b)}
}

// dockerCfg is a kubernetes.io/dockercfg secret's data (the bare registry map).
func dockerCfg(regs map[string]dockerCred) map[string]string {
	m := map[string]interface{}{}
	for r, c := range regs {
		m[r] = c.obj()
		noteCred(c)
	}
	b, _ := json.Marshal(m)
	return map[string]string{".dockercfg": base64.StdEncoding.EncodeToString(b)}
}

func noteCred(c dockerCred) {
	noteSecret("a registry credential", c.Password)
	noteSecret("a registry credential", c.Auth)
	if c.Username != "" && c.Password != "" {
		noteSecret("a registry credential", base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password)))
	}
}
