package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func scenarios() []scenario {
	return []scenario{
		{"version", scVersion},
		{"version_raw_bytes", scVersionRaw},
		{"lifecycle", scLifecycle},
		{"stop_unknown_id", scStopUnknown},
		{"start_unknown_id", scStartUnknown},
		{"missing_annotations", scMissingAnnotations},
		{"pod_name_rules", scPodNameRules},
		{"getinfo_wait_wakeup", scGetInfoWaitWakeup},
		{"getinfo_unknown_pod", scGetInfoUnknown},
		{"unknown_service_and_method", scUnknownServiceMethod},
		{"oversized_frame", scOversizedFrame},
		{"garbage_request", scGarbageRequest},
		{"even_stream_id", scEvenStreamID},
		{"stream_id_reuse", scStreamIDReuse},
		{"multiplexed_connection", scMultiplexed},
		{"bad_sandbox_ids", scBadSandboxIDs},
		{"peer_stops_reading", scPeerStopsReading},
		{"getinfo_waiters_peer_stops_reading", scGetInfoWaitersStopReading},
		{"peerpods_limit", scLimit},
		{"create_failure", scCreateFailure},
		{"delete_failure_retried", scDeleteFailure},
		{"stop_during_start", scStopDuringStart},
		{"start_deadline", scStartDeadline},
		{"stop_outlives_its_caller", scStopOutlivesCaller},
		{"crash_and_restart", scCrashRestart},
		{"sigterm", scSigterm},
		{"restart_keeps_sandbox", scRestartKeepsSandbox},
		{"tmpfs_pods_dir", scTmpfsPodsDir},
		{"node_reboot", scNodeReboot},
		{"descriptor_table", scDescriptorTable},
		{"loop_priority", scLoopPriority},
		{"concurrent_200", scConcurrent200},
		{"sigterm_during_start", scSigtermDuringStart},
		{"socket_not_ours", scSocketNotOurs},
		{"sigterm_with_running_pods", scSigtermWithRunningPods},
		{"stopvm_concurrent", scStopVMConcurrent},
		{"start_idempotent", scStartIdempotent},
		{"create_duplicate", scCreateDuplicate},
		{"log_lines", scLogLines},
		// Kubernetes integration against the fake API server (kube.go, fakekube.go).
		{"kube_node_capacity", scKubeNodeCapacity},
		{"kube_limit_negative", scKubeLimitNegative},
		{"kube_rolling_update", scKubeRollingUpdate},
		{"kube_api_down_at_start", scKubeAPIDownAtStart},
		{"kube_shutdown_api_hangs", scKubeShutdownHangs},
		{"kube_sigterm_during_startup", scKubeSigtermDuringStartup},
		{"kube_token_rotation", scKubeTokenRotation},
		{"kube_pull_secrets", scKubePullSecrets},
		{"kube_startup_probe", scKubeStartupProbe},
		{"kube_startup_probe_restart", scKubeStartupRestart},
		{"kube_not_configured", scKubeNotConfigured},
		{"kube_ipv6_service_host", scKubeIPv6},
		{"kube_peerpod", scKubePeerPod},
		{"kube_peerpod_no_crd", scKubePeerPodNoCRD},
		{"kube_peerpod_namespace_gone", scKubePeerPodNamespaceGone},
		{"kube_peerpod_create_lost", scKubePeerPodCreateLost},
		{"kube_rbac_covers_calls", scKubeRBAC}, // after the kube_ scenarios: checks the calls they saw
	}
}

// ---------------------------------------------------------------------------
// assertion helpers

// expectCode fails the scenario unless err carries status code want and the
// message satisfies check (nil = any message).
func expectCode(t *T, what string, err error, want int, check func(string) bool, desc string) bool {
	code, msg, ok := errCode(err)
	if err == nil {
		t.Errorf("%s: got OK, want code %d%s", what, want, descSuffix(desc))
		return false
	}
	if !ok {
		t.Errorf("%s: got %s, want status code %d%s", what, describeErr(err), want, descSuffix(desc))
		return false
	}
	if code != want || (check != nil && !check(msg)) {
		t.Errorf("%s: got code %d message %q, want code %d%s", what, code, msg, want, descSuffix(desc))
		return false
	}
	return true
}

func descSuffix(desc string) string {
	if desc == "" {
		return ""
	}
	return " with message " + desc
}

func msgEquals(s string) func(string) bool { return func(m string) bool { return m == s } }
func msgContains(s string) func(string) bool {
	return func(m string) bool { return strings.Contains(m, s) }
}
func msgPrefix(s string) func(string) bool {
	return func(m string) bool { return strings.HasPrefix(m, s) }
}

func mustOK(t *T, what string, err error) {
	if err != nil {
		t.Fatalf("%s: %s", what, describeErr(err))
	}
}

// startAsync runs StartVM in the background; the result arrives on the
// channel together with when it returned.
type asyncResult struct {
	err error
	at  time.Time
}

func startAsync(d *Daemon, id string, o callOpts) <-chan asyncResult {
	ch := make(chan asyncResult, 1)
	go func() {
		err := d.StartVM(id, o)
		ch <- asyncResult{err, time.Now()}
	}()
	return ch
}

func waitResult(ch <-chan asyncResult, timeout time.Duration) (asyncResult, bool) {
	select {
	case r := <-ch:
		return r, true
	case <-time.After(timeout):
		return asyncResult{}, false
	}
}

// ---------------------------------------------------------------------------
// scenarios

func scVersion(t *T) {
	d := t.StartDaemon()
	resp := &VersionResponse{}
	mustOK(t, "Version", d.Call(hypervisorService, "Version", &VersionRequest{}, resp, optsPlain))
	if resp.Version != "0.0.0" {
		t.Errorf("Version = %q, want \"0.0.0\"", resp.Version)
	}
	// A client that states its own version gets the same answer.
	resp = &VersionResponse{}
	mustOK(t, "Version(1.2.3)", d.Call(hypervisorService, "Version", &VersionRequest{Version: "1.2.3"}, resp, optsPlain))
	if resp.Version != "0.0.0" {
		t.Errorf("Version(1.2.3) = %q, want \"0.0.0\"", resp.Version)
	}
}

// Bytes of protocols.md §1.6.
func versionRequestFrame(stream uint32) []byte {
	return encodeFrame(stream, msgTypeRequest, 0, encodeRequest(hypervisorService, "Version", nil, 0))
}

func versionResponseFrame(stream uint32) []byte {
	return encodeFrame(stream, msgTypeResponse, 0, []byte{0x0a, 0x00, 0x12, 0x07, 0x0a, 0x05, '0', '.', '0', '.', '0'})
}

// expectVersionOn sends a Version request on the given stream of c and
// requires the exact response bytes of §1.6.
func expectVersionOn(t *T, c *rawConn, stream uint32, what string) bool {
	if err := c.send(versionRequestFrame(stream)); err != nil {
		t.Errorf("%s: writing Version request on stream %d: %v", what, stream, err)
		return false
	}
	f, err := readFrame(c, 10*time.Second)
	if err != nil {
		t.Errorf("%s: reading Version response on stream %d: %v", what, stream, err)
		return false
	}
	got := encodeFrame(f.StreamID, f.Type, f.Flags, f.Data)
	want := versionResponseFrame(stream)
	if !bytes.Equal(got, want) {
		t.Errorf("%s: Version response frame\n got % x\nwant % x", what, got, want)
		return false
	}
	return true
}

func scVersionRaw(t *T) {
	// Self-check: our encoder produces exactly the frame written in §1.6.
	specReq, _ := hex.DecodeString("0000002000000001" + "0100" + "0a15" + hex.EncodeToString([]byte("hypervisor.Hypervisor")) + "1207" + hex.EncodeToString([]byte("Version")))
	if !bytes.Equal(specReq, versionRequestFrame(1)) {
		t.Fatalf("harness bug: request frame % x differs from spec % x", versionRequestFrame(1), specReq)
	}
	specResp, _ := hex.DecodeString("0000000b00000001" + "0200" + "0a00" + "1207" + "0a05302e302e30")
	if !bytes.Equal(specResp, versionResponseFrame(1)) {
		t.Fatalf("harness bug: response frame differs from spec")
	}

	d := t.StartDaemon()
	c, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if !expectVersionOn(t, c, 1, "first call") {
		return
	}
	// The connection stays open for more calls; stream ids go up by 2.
	expectVersionOn(t, c, 3, "second call on the same connection")
	expectVersionOn(t, c, 5, "third call on the same connection")
}

func scLifecycle(t *T) {
	d := t.StartDaemon("-fake-create-delay", "200ms")
	id := newSandboxID()
	pod, ns := "nginx-e2e-7f9c", "e2e-ns"
	name := instanceName(pod, id)
	inst := filepath.Join(d.Dirs.FakeDir, name)
	sbDir := filepath.Join(d.Dirs.PodsDir, id)

	d.MustCreate(id, pod, ns)
	if exists(inst) {
		t.Errorf("instance file %s exists after CreateVM (CreateVM must not touch the cloud)", name)
	}
	if st, err := os.Stat(sbDir); err != nil || !st.IsDir() {
		t.Errorf("sandbox dir %s missing after CreateVM: %v", sbDir, err)
	}

	began := time.Now()
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	took := time.Since(began)
	if took < 200*time.Millisecond {
		t.Errorf("StartVM returned after %v, before the 200ms fake create delay elapsed", took)
	}
	if !exists(inst) {
		t.Errorf("instance file %s missing after StartVM OK (fake-dir: %q)", name, listTree(d.Dirs.FakeDir))
	}

	vmid, err := d.GetInfo(pod, ns, false, optsPlain)
	if err != nil {
		t.Errorf("GetInfo(%s/%s): %s", ns, pod, describeErr(err))
	} else if vmid != "fake-"+name {
		t.Errorf("GetInfo VMID = %q, want %q", vmid, "fake-"+name)
	}
	vmid, err = d.GetInfo(pod, ns, true, callOpts{ServerTimeout: 5 * time.Second, ClientWait: 10 * time.Second})
	if err != nil || vmid != "fake-"+name {
		t.Errorf("GetInfo(Wait=true) for a started pod = %q, %s; want %q", vmid, describeErr(err), "fake-"+name)
	}

	mustOK(t, "StopVM", d.StopVM(id))
	if exists(inst) {
		t.Errorf("instance file %s still present when StopVM returned", name)
	}
	if exists(sbDir) {
		t.Errorf("sandbox dir %s still present when StopVM returned: %q", sbDir, listTree(sbDir))
	}
	_, err = d.GetInfo(pod, ns, false, optsPlain)
	expectCode(t, "GetInfo after StopVM", err, 5, nil, "")

	// A second StopVM of the same id is fine too (idempotent).
	mustOK(t, "second StopVM", d.StopVM(id))
}

func scStopUnknown(t *T) {
	d := t.StartDaemon()
	mustOK(t, "StopVM(unknown id)", d.StopVM(newSandboxID()))
}

func scGetInfoUnknown(t *T) {
	d := t.StartDaemon()
	_, err := d.GetInfo("no-such-pod", "default", false, optsPlain)
	expectCode(t, "GetInfo(Wait=false) unknown pod", err, 5, nil, "")

	began := time.Now()
	_, err = d.GetInfo("no-such-pod", "default", true, callOpts{ServerTimeout: 300 * time.Millisecond, ClientWait: 5 * time.Second})
	took := time.Since(began)
	expectCode(t, "GetInfo(Wait=true, 300ms deadline) unknown pod", err, 4, nil, "")
	if took > 1200*time.Millisecond {
		t.Errorf("GetInfo(Wait=true, 300ms deadline) took %v, want ~300ms (< 1.2s)", took)
	}
}

func scUnknownServiceMethod(t *T) {
	d := t.StartDaemon()
	err := d.Call("foo.Bar", "Version", &VersionRequest{}, &VersionResponse{}, optsPlain)
	expectCode(t, "unknown service foo.Bar", err, 12, msgEquals("service foo.Bar"), `"service foo.Bar"`)
	err = d.Call(hypervisorService, "Nope", &VersionRequest{}, &VersionResponse{}, optsPlain)
	expectCode(t, "unknown method Nope", err, 12, msgEquals("method Nope"), `"method Nope"`)
	err = d.Call(podvminfoService, "Nope", &GetInfoRequest{}, &GetInfoResponse{}, optsPlain)
	expectCode(t, "unknown method podvminfo.PodVMInfo/Nope", err, 12, msgEquals("method Nope"), `"method Nope"`)
}

func scOversizedFrame(t *T) {
	d := t.StartDaemon()
	c, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()

	const size = 5 << 20
	writeErr := make(chan error, 1)
	go func() {
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := c.Write(frameHeader(size, 1, msgTypeRequest, 0))
		if err == nil {
			_, err = c.Write(bytes.Repeat([]byte{0x5a}, size))
		}
		writeErr <- err
	}()
	_, r, err := c.expectResponse(1, 20*time.Second)
	if err != nil {
		t.Fatalf("response to the 5 MiB frame: %v", err)
	}
	wantMsg := "message length 5242880 exceed maximum message size of 4194304"
	if !r.HasStatus || r.Code != 8 || r.Message != wantMsg {
		t.Errorf("response to the 5 MiB frame: status present=%v code %d message %q; want code 8 %q", r.HasStatus, r.Code, r.Message, wantMsg)
	}
	if len(r.Payload) != 0 {
		t.Errorf("error response carries a payload: % x", r.Payload)
	}
	select {
	case err := <-writeErr:
		if err != nil {
			t.Fatalf("writing the 5 MiB body: %v (the daemon must read and discard it)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the daemon did not consume the 5 MiB body")
	}
	expectVersionOn(t, c, 3, "Version on the same connection after the oversized frame")
}

func scGarbageRequest(t *T) {
	d := t.StartDaemon()
	c, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.send(encodeFrame(1, msgTypeRequest, 0, []byte{0xff, 0xff, 0xff, 0xff, 0xff})); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, r, err := c.expectResponse(1, 10*time.Second)
	if err != nil {
		t.Fatalf("response to the garbage request: %v", err)
	}
	if r.Code != 3 || !strings.HasPrefix(r.Message, "unmarshal request error") {
		t.Errorf("garbage request: code %d message %q; want code 3, message starting \"unmarshal request error\"", r.Code, r.Message)
	}
	expectVersionOn(t, c, 3, "Version on the same connection after the garbage request")

	// A well-formed Request whose payload is not a valid VersionRequest:
	// §1.5 says code 13 "ttrpc: error unmarshalling payload: …".
	req := encodeRequest(hypervisorService, "Version", []byte{0xff, 0xff, 0xff, 0xff, 0xff}, 0)
	if err := c.send(encodeFrame(5, msgTypeRequest, 0, req)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, r, err = c.expectResponse(5, 10*time.Second)
	if err != nil {
		t.Fatalf("response to the bad payload: %v", err)
	}
	if r.Code != 13 {
		t.Errorf("request with an undecodable payload: code %d message %q; want code 13 (protocols.md §1.5)", r.Code, r.Message)
	}
	expectVersionOn(t, c, 7, "Version on the same connection after the bad payload")
}

func scEvenStreamID(t *T) {
	d := t.StartDaemon()
	c, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.send(versionRequestFrame(2)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, r, err := c.expectResponse(2, 10*time.Second)
	if err != nil {
		t.Fatalf("response to the even stream id: %v", err)
	}
	want := "StreamID must be odd for client initiated streams"
	if r.Code != 3 || r.Message != want {
		t.Errorf("even stream id: code %d message %q; want code 3 %q", r.Code, r.Message, want)
	}
	expectVersionOn(t, c, 3, "Version on stream 3 after the even stream id")
}

func scStreamIDReuse(t *T) {
	d := t.StartDaemon()
	c, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if !expectVersionOn(t, c, 5, "Version on stream 5") {
		return
	}
	for _, sid := range []uint32{5, 3} {
		if err := c.send(versionRequestFrame(sid)); err != nil {
			t.Fatalf("write: %v", err)
		}
		_, r, err := c.expectResponse(sid, 10*time.Second)
		if err != nil {
			t.Fatalf("response to re-used stream id %d: %v", sid, err)
		}
		want := "StreamID cannot be re-used and must increment"
		if r.Code != 3 || r.Message != want {
			t.Errorf("stream id %d after 5: code %d message %q; want code 3 %q (protocols.md §1.3)", sid, r.Code, r.Message, want)
		}
	}
	expectVersionOn(t, c, 7, "Version on stream 7")
}

// Calls on one connection are handled concurrently: a quick call is not
// held up behind a slow StartVM on the same connection (§1.3).
func scMultiplexed(t *T) {
	d := t.StartDaemon("-fake-create-delay", "3s")
	id := newSandboxID()
	d.MustCreate(id, "mux-pod", "default")

	c, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	payload := appendBytesField(nil, 1, []byte(id))
	if err := c.send(encodeFrame(1, msgTypeRequest, 0, encodeRequest(hypervisorService, "StartVM", payload, int64(600*time.Second)))); err != nil {
		t.Fatalf("write StartVM: %v", err)
	}
	began := time.Now()
	if err := c.send(versionRequestFrame(3)); err != nil {
		t.Fatalf("write Version: %v", err)
	}
	f, err := readFrame(c, 10*time.Second)
	if err != nil {
		t.Fatalf("reading first response: %v", err)
	}
	if f.StreamID != 3 {
		t.Errorf("first response is for stream %d after %v; the Version call (stream 3) was held up behind StartVM (stream 1)", f.StreamID, time.Since(began))
		return
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Version on a connection with a pending StartVM took %v", took)
	}
	_, r, err := c.expectResponse(1, 20*time.Second)
	if err != nil {
		t.Fatalf("StartVM response: %v", err)
	}
	if r.Code != 0 {
		t.Errorf("StartVM: code %d message %q", r.Code, r.Message)
	}
	mustOK(t, "StopVM", d.StopVM(id))
}

// A client that stops reading without hanging up (shutdown(SHUT_RD): the daemon's answer
// fails with EPIPE) on the hypervisor socket and on an agent socket: that connection ends,
// the daemon keeps serving (a SIGPIPE left at its default killed the process).
func scPeerStopsReading(t *T) {
	d := t.StartDaemon()
	refuse := func(sock string, frame []byte) {
		c, err := dialRaw(sock)
		if err != nil {
			t.Fatalf("dial %s: %v", sock, err)
		}
		defer c.Close()
		if err := c.Conn.(*net.UnixConn).CloseRead(); err != nil {
			t.Fatalf("shutdown(SHUT_RD): %v", err)
		}
		if err := c.send(frame); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	refuse(d.Dirs.Sock, versionRequestFrame(1))
	// That request was readable before this connection existed: the daemon answered it (and
	// met the refusal) before it answers these.
	for i := 0; i < 2; i++ {
		c, err := dialRaw(d.Dirs.Sock)
		if err != nil {
			t.Fatalf("the daemon is gone after a client stopped reading: %v", err)
		}
		expectVersionOn(t, c, 1, "Version after a client stopped reading")
		c.Close()
	}
	id := newSandboxID()
	sock := mustCreateStart(t, d, id, "norecv", kataAnnotations("norecv", "default"))
	refuse(sock, encodeFrame(1, msgTypeRequest, 0, encodeRequest("grpc.Health", "Check", nil, 0)))
	for i := 0; i < 2; i++ {
		if _, err := agentCallRaw(sock, "grpc.Health", "Check", nil, 10*time.Second, nil); err != nil {
			t.Fatalf("Health after a shim connection stopped reading: %s", describeErr(err))
		}
	}
	mustOK(t, "StopVM", d.StopVM(id))
}

// Two GetInfo(Wait) calls on a connection whose client stopped reading: when the pod's VM
// appears, the first answer fails, which closes that connection and cancels the second
// waiter; waking the waiters must not touch the cancelled one (it crashed the daemon).
func scGetInfoWaitersStopReading(t *T) {
	d := t.StartDaemon()
	c, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer c.Close()
	req := appendBytesField(appendBytesField(nil, 1, []byte("waitpod")), 2, []byte("default"))
	req = append(req, 3<<3, 1) // Wait: true
	for _, sid := range []uint32{1, 3} {
		if err := c.send(encodeFrame(sid, msgTypeRequest, 0, encodeRequest(podvminfoService, "GetInfo", req, 0))); err != nil {
			t.Fatalf("%v", err)
		}
	}
	// Answered at once, so both GetInfo calls (sent before it) wait in the daemon now.
	expectVersionOn(t, c, 5, "Version behind the two waiting GetInfo calls")
	if err := c.Conn.(*net.UnixConn).CloseRead(); err != nil {
		t.Fatalf("shutdown(SHUT_RD): %v", err)
	}
	id := newSandboxID()
	d.MustCreate(id, "waitpod", "default")
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	c2, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("the daemon is gone after waking the waiters: %v", err)
	}
	expectVersionOn(t, c2, 1, "Version after the waiters were woken")
	c2.Close()
	mustOK(t, "StopVM", d.StopVM(id))
}

func scBadSandboxIDs(t *T) {
	d := t.StartDaemon()
	base := listTree(d.Dirs.PodsDir)
	long := strings.Repeat("a", 200)
	bad := []string{"../x", "a/b", "", long, "..", ".", "a:b", "x\x00y"}
	for _, id := range bad {
		_, err := d.CreateVM(id, "bad-id-pod", "default")
		expectCode(t, fmt.Sprintf("CreateVM(id %q)", abbrev(id)), err, 3, msgContains("sandbox id"), `containing "sandbox id"`)
	}
	if got := listTree(d.Dirs.PodsDir); strings.Join(got, ",") != strings.Join(base, ",") {
		t.Errorf("pods-dir changed by rejected CreateVMs: before %q, after %q", base, got)
	}
	if got := listTree(filepath.Dir(d.Dirs.PodsDir)); containsAny(got, "x/", "b/", "x") {
		t.Errorf("something escaped pods-dir: %q", got)
	}
	if got := listTree(d.Dirs.FakeDir); len(got) != 0 {
		t.Errorf("fake-dir not empty: %q", got)
	}
	// StartVM/StopVM with bad ids must not misbehave either.
	err := d.StartVM("../x", callOpts{ServerTimeout: 5 * time.Second, ClientWait: 10 * time.Second})
	if err == nil {
		t.Errorf("StartVM(\"../x\") returned OK")
	}
	if err := d.StopVM("../x"); err != nil {
		code, _, _ := errCode(err)
		if code != 3 {
			t.Errorf("StopVM(\"../x\"): %s; want OK or code 3", describeErr(err))
		}
	}
}

func abbrev(s string) string {
	if len(s) > 20 {
		return fmt.Sprintf("%s…(%d chars)", s[:12], len(s))
	}
	return s
}

func containsAny(list []string, names ...string) bool {
	for _, l := range list {
		for _, n := range names {
			if l == n {
				return true
			}
		}
	}
	return false
}

func scLimit(t *T) {
	d := t.StartDaemon("-peerpods-limit-per-node", "2")
	a, b, c := newSandboxID(), newSandboxID(), newSandboxID()
	d.MustCreate(a, "lim-a", "default")
	d.MustCreate(b, "lim-b", "default")
	_, err := d.CreateVM(c, "lim-c", "default")
	expectCode(t, "third CreateVM with limit 2", err, 8, msgContains("PEERPODS_LIMIT_PER_NODE"), `containing "PEERPODS_LIMIT_PER_NODE"`)
	if exists(filepath.Join(d.Dirs.PodsDir, c)) {
		t.Errorf("refused CreateVM left %s behind", filepath.Join(d.Dirs.PodsDir, c))
	}
	mustOK(t, "StopVM(a)", d.StopVM(a))
	d.MustCreate(c, "lim-c", "default")
	mustOK(t, "StopVM(b)", d.StopVM(b))
	mustOK(t, "StopVM(c)", d.StopVM(c))
}

func scCreateFailure(t *T) {
	d := t.StartDaemon("-fake-create-fail", "-fake-create-delay", "500ms")
	id := newSandboxID()
	pod := "fail-pod"
	inst := filepath.Join(d.Dirs.FakeDir, instanceName(pod, id))
	d.MustCreate(id, pod, "default")
	ch := startAsync(d, id, optsStart)
	// Watch the fake cloud while StartVM runs: the instance must appear
	// (else the check below would prove nothing) and be gone on return.
	seen := false
	var r asyncResult
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case r = <-ch:
			break wait
		case <-deadline:
			t.Fatalf("StartVM did not return within 30s")
		case <-tick.C:
			if exists(inst) {
				seen = true
			}
		}
	}
	goneAtReturn := !exists(inst)
	if !seen {
		t.Errorf("instance file %s never appeared while the failing StartVM ran (fake create should create it at the start)", filepath.Base(inst))
	}
	if r.err == nil {
		t.Errorf("StartVM returned OK with -fake-create-fail")
	} else if code, msg, ok := errCode(r.err); !ok || code == 0 || !strings.Contains(msg, "fake: injected create failure") {
		t.Errorf("StartVM: %s; want a status error whose message contains \"fake: injected create failure\"", describeErr(r.err))
	}
	if !goneAtReturn {
		t.Errorf("instance file %s still exists when the failed StartVM returned", filepath.Base(inst))
	}
	mustOK(t, "StopVM after failed StartVM", d.StopVM(id))
	if exists(filepath.Join(d.Dirs.PodsDir, id)) {
		t.Errorf("sandbox dir still present after StopVM: %q", listTree(filepath.Join(d.Dirs.PodsDir, id)))
	}
	if got := listTree(d.Dirs.FakeDir); len(got) != 0 {
		t.Errorf("fake-dir not empty: %q", got)
	}
}

func scDeleteFailure(t *T) {
	d := t.StartDaemon("-fake-delete-fail-count", "2")
	id := newSandboxID()
	pod := "delfail-pod"
	inst := filepath.Join(d.Dirs.FakeDir, instanceName(pod, id))
	d.MustCreate(id, pod, "default")
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	if !exists(inst) {
		t.Fatalf("instance file missing after StartVM")
	}
	began := time.Now()
	mustOK(t, "StopVM (deletes failing)", d.StopVM(id))
	t.Logf("StopVM returned after %v", time.Since(began))
	if !waitFor(20*time.Second, func() bool { return !exists(inst) }) {
		t.Errorf("instance file %s still present 20s after StopVM; the failed delete was not retried", filepath.Base(inst))
	} else {
		t.Logf("instance file gone %v after StopVM", time.Since(began))
	}
	if !waitFor(5*time.Second, func() bool { return !exists(filepath.Join(d.Dirs.PodsDir, id)) }) {
		t.Errorf("sandbox dir still present after the delete succeeded: %q", listTree(filepath.Join(d.Dirs.PodsDir, id)))
	}
}

func scStopDuringStart(t *T) {
	d := t.StartDaemon("-fake-create-delay", "30s")
	id := newSandboxID()
	pod := "stop-during-start"
	inst := filepath.Join(d.Dirs.FakeDir, instanceName(pod, id))
	d.MustCreate(id, pod, "default")
	ch := startAsync(d, id, optsStart)
	if !waitFor(10*time.Second, func() bool { return exists(inst) }) {
		t.Fatalf("instance file never appeared while StartVM was in flight (fake-dir %q)", listTree(d.Dirs.FakeDir))
	}
	began := time.Now()
	mustOK(t, "StopVM during StartVM", d.StopVM(id))
	t.Logf("StopVM returned after %v", time.Since(began))
	r, ok := waitResult(ch, 5*time.Second)
	if !ok {
		t.Fatalf("StartVM still pending 5s after StopVM returned")
	}
	t.Logf("StartVM returned %v after StopVM was issued: %s", r.at.Sub(began), describeErr(r.err))
	expectCode(t, "StartVM interrupted by StopVM", r.err, 1, nil, "")
	if !waitFor(5*time.Second, func() bool { return !exists(inst) }) {
		t.Errorf("instance file still present 5s after StopVM")
	}
	if !waitFor(5*time.Second, func() bool { return !exists(filepath.Join(d.Dirs.PodsDir, id)) }) {
		t.Errorf("sandbox dir still present 5s after StopVM: %q", listTree(filepath.Join(d.Dirs.PodsDir, id)))
	}
}

// A StopVM that waits behind the StartVM it cancelled, and whose own deadline passes first,
// is answered but still carried out (DECISIONS 2): here the rollback's delete fails, so only
// the StopVM's own delete removes the VM, the record and the node's pod slot.
func scStopOutlivesCaller(t *T) {
	d := t.StartDaemon("-fake-create-delay", "30s", "-fake-delete-delay", "2s", "-fake-delete-fail-count", "1",
		"-peerpods-limit-per-node", "1")
	id := newSandboxID()
	pod := "stop-outlives"
	inst := filepath.Join(d.Dirs.FakeDir, instanceName(pod, id))
	d.MustCreate(id, pod, "default")
	ch := startAsync(d, id, optsStart)
	if !waitFor(10*time.Second, func() bool { return exists(inst) }) {
		t.Fatalf("instance file never appeared while StartVM was in flight")
	}
	err := d.Call(hypervisorService, "StopVM", &StopVMRequest{Id: id}, &StopVMResponse{},
		callOpts{ServerTimeout: time.Second, ClientWait: 15 * time.Second})
	expectCode(t, "StopVM with a 1s deadline behind a slow rollback", err, 4, nil, "")
	r, ok := waitResult(ch, 15*time.Second)
	if !ok {
		t.Fatalf("StartVM still pending")
	}
	expectCode(t, "StartVM cancelled by StopVM, rollback delete failed", r.err, 1,
		msgContains("deleting the VM failed"), `naming the failed delete, not "the VM was deleted"`)
	if !waitFor(15*time.Second, func() bool { return !exists(inst) }) {
		t.Errorf("the VM is still there 15 s after the StopVM whose caller gave up: %q", listTree(d.Dirs.FakeDir))
	}
	if !waitFor(5*time.Second, func() bool { return !exists(filepath.Join(d.Dirs.PodsDir, id)) }) {
		t.Errorf("sandbox record still present: %q", listTree(filepath.Join(d.Dirs.PodsDir, id)))
	}
	// The pod slot is free again (limit 1).
	id2 := newSandboxID()
	if _, err := d.CreateVM(id2, "after", "default"); err != nil {
		t.Errorf("CreateVM after the stop: %s", describeErr(err))
	} else {
		mustOK(t, "StopVM", d.StopVM(id2))
	}
}

func scStartDeadline(t *T) {
	d := t.StartDaemon("-fake-create-delay", "30s")
	id := newSandboxID()
	pod := "deadline-pod"
	inst := filepath.Join(d.Dirs.FakeDir, instanceName(pod, id))
	d.MustCreate(id, pod, "default")
	began := time.Now()
	err := d.StartVM(id, callOpts{ServerTimeout: time.Second, ClientWait: 15 * time.Second})
	took := time.Since(began)
	expectCode(t, "StartVM with a 1s deadline", err, 4, nil, "")
	if took > 2500*time.Millisecond {
		t.Errorf("StartVM with a 1s deadline returned after %v, want ~1s (< 2.5s)", took)
	}
	if !waitFor(5*time.Second, func() bool { return !exists(inst) }) {
		t.Errorf("instance file still present 5s after the timed-out StartVM")
	}
	mustOK(t, "StopVM", d.StopVM(id))
	if !waitFor(5*time.Second, func() bool { return !exists(filepath.Join(d.Dirs.PodsDir, id)) }) {
		t.Errorf("sandbox dir still present after StopVM")
	}
}

func scCrashRestart(t *T) {
	d := t.StartDaemon("-fake-create-delay", "30s")
	dirs := d.Dirs
	id := newSandboxID()
	pod := "crash-pod"
	inst := filepath.Join(dirs.FakeDir, instanceName(pod, id))
	d.MustCreate(id, pod, "default")
	ch := startAsync(d, id, optsStart)
	if !waitFor(10*time.Second, func() bool { return exists(inst) }) {
		t.Fatalf("instance file never appeared while StartVM was in flight (fake-dir %q)", listTree(dirs.FakeDir))
	}
	d.Kill()
	t.Logf("daemon #%d killed with SIGKILL", d.Index)
	r, ok := waitResult(ch, 5*time.Second)
	if !ok {
		t.Fatalf("StartVM still pending 5s after the daemon was killed")
	}
	if r.err == nil {
		t.Errorf("StartVM returned OK although the daemon was killed")
	}
	t.Logf("StartVM after kill: %s", describeErr(r.err))

	d2 := t.StartDaemonDirs(dirs)
	mustOK(t, "StopVM after restart", d2.StopVM(id))
	sb := filepath.Join(dirs.PodsDir, id)
	if !waitFor(10*time.Second, func() bool { return len(listTree(dirs.FakeDir)) == 0 && !exists(sb) }) {
		t.Errorf("10s after StopVM on the restarted daemon: fake-dir %q, sandbox dir exists=%v %q",
			listTree(dirs.FakeDir), exists(sb), listTree(sb))
	}
}

func scSigterm(t *T) {
	d := t.StartDaemon()
	resp := &VersionResponse{}
	mustOK(t, "Version", d.Call(hypervisorService, "Version", &VersionRequest{}, resp, optsPlain))
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	began := time.Now()
	if err := d.WaitExit(10 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	t.Logf("exited %v after SIGTERM: %s", time.Since(began), d.exitString())
	if d.exitCode != 0 {
		t.Errorf("exit after SIGTERM: %s, want exit code 0", d.exitString())
	}
	if exists(d.Dirs.Sock) {
		t.Errorf("socket %s still exists after shutdown", d.Dirs.Sock)
	}
	if err := d.WaitNote("STOPPING=1", 2*time.Second, false); err != nil {
		t.Errorf("STOPPING=1: %v", err)
	}
}

func scConcurrent200(t *T) {
	d := t.StartDaemon("-peerpods-limit-per-node", "1000", "-fake-create-delay", "50ms")
	baseFake := listTree(d.Dirs.FakeDir)
	basePods := listTree(d.Dirs.PodsDir)
	const n = 200
	ids := map[string]bool{}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []string
		failed int
	)
	type job struct{ id, pod string }
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i] = job{newSandboxID(), fmt.Sprintf("conc-pod-%03d", i)}
		ids[jobs[i].id] = true
	}
	began := time.Now()
	for i := range jobs {
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			fail := func(format string, args ...interface{}) {
				mu.Lock()
				defer mu.Unlock()
				failed++
				if len(errs) < 10 {
					errs = append(errs, fmt.Sprintf("%s (id %.12s…): ", j.pod, j.id)+fmt.Sprintf(format, args...))
				}
			}
			resp, err := d.CreateVM(j.id, j.pod, "conc")
			if err != nil {
				fail("CreateVM: %s", describeErr(err))
				return
			}
			if want := filepath.Join(d.Dirs.PodsDir, j.id, "agent.ttrpc"); resp.AgentSocketPath != want {
				fail("CreateVM agentSocketPath %q, want %q", resp.AgentSocketPath, want)
			}
			if err := d.StartVM(j.id, optsStart); err != nil {
				fail("StartVM: %s", describeErr(err))
			} else {
				name := instanceName(j.pod, j.id)
				vmid, err := d.GetInfo(j.pod, "conc", false, optsPlain)
				if err != nil || vmid != "fake-"+name {
					fail("GetInfo = %q, %s; want %q", vmid, describeErr(err), "fake-"+name)
				}
			}
			if err := d.StopVM(j.id); err != nil {
				fail("StopVM: %s", describeErr(err))
			}
		}(jobs[i])
	}
	wg.Wait()
	t.Logf("%d lifecycles finished in %v", n, time.Since(began))
	if failed > 0 {
		t.Errorf("%d of %d lifecycles had failures; first ones:\n%s", failed, n, strings.Join(errs, "\n"))
	}
	if l := leftovers(d.Dirs.FakeDir, baseFake, ids); len(l) > 0 {
		t.Errorf("%d entries left in fake-dir after all StopVMs returned, e.g. %q", len(l), first(l, 5))
	}
	if l := leftovers(d.Dirs.PodsDir, basePods, ids); len(l) > 0 {
		t.Errorf("%d entries left in pods-dir after all StopVMs returned, e.g. %q", len(l), first(l, 5))
	}
	// The daemon is still healthy afterwards.
	resp := &VersionResponse{}
	mustOK(t, "Version after the storm", d.Call(hypervisorService, "Version", &VersionRequest{}, resp, optsPlain))
}

func first(l []string, n int) []string {
	if len(l) > n {
		return l[:n]
	}
	return l
}

func scStartUnknown(t *T) {
	d := t.StartDaemon()
	err := d.StartVM(newSandboxID(), callOpts{ServerTimeout: 10 * time.Second, ClientWait: 15 * time.Second})
	if code, _, ok := errCode(err); err == nil || !ok || code == 0 {
		t.Errorf("StartVM(unknown id): %s; want a status error", describeErr(err))
	}
	if got := listTree(d.Dirs.FakeDir); len(got) != 0 {
		t.Errorf("fake-dir not empty after StartVM(unknown id): %q", got)
	}
}

// CreateVM without the pod name / namespace annotations fails (§2.4 steps
// 2-3) and, being transactional (DECISIONS 1), leaves nothing behind.
func scMissingAnnotations(t *T) {
	d := t.StartDaemon()
	base := listTree(d.Dirs.PodsDir)
	for _, drop := range []string{annSandboxName, annSandboxNS} {
		ann := kataAnnotations("ann-pod", "default")
		delete(ann, drop)
		id := newSandboxID()
		err := d.Call(hypervisorService, "CreateVM", &CreateVMRequest{Id: id, Annotations: ann, NetworkNamespacePath: netnsPath}, &CreateVMResponse{}, optsPlain)
		if code, msg, ok := errCode(err); err == nil || !ok || code == 0 || !strings.Contains(msg, drop) {
			t.Errorf("CreateVM without %s: %s; want a status error naming the annotation", drop, describeErr(err))
		}
	}
	if got := listTree(d.Dirs.PodsDir); strings.Join(got, ",") != strings.Join(base, ",") {
		t.Errorf("pods-dir changed by failed CreateVMs: before %q, after %q", base, got)
	}
}

// VM naming (§5.1) as seen through the fake cloud, and the CRI-O form of
// the sandbox name (§2.4 step 2).
func scPodNameRules(t *T) {
	d := t.StartDaemon()
	long := strings.Repeat("longname", 8) // 64 chars, truncated to 48
	cases := []struct{ annName, podName, ns, wantInst string }{
		{"k8s_web-0_prod_8c1f2a_0", "web-0", "prod", ""},
		{long, long, "default", "podvm-" + long[:48] + "-"},
	}
	for _, c := range cases {
		id := newSandboxID()
		ann := kataAnnotations(c.annName, c.ns)
		resp := &CreateVMResponse{}
		err := d.Call(hypervisorService, "CreateVM", &CreateVMRequest{Id: id, Annotations: ann, NetworkNamespacePath: netnsPath}, resp, optsPlain)
		if err != nil {
			t.Errorf("CreateVM(sandbox-name %q): %s", c.annName, describeErr(err))
			continue
		}
		if err := d.StartVM(id, optsStart); err != nil {
			t.Errorf("StartVM(sandbox-name %q): %s", c.annName, describeErr(err))
			d.StopVM(id)
			continue
		}
		name := instanceName(c.podName, id)
		if c.wantInst != "" && name != c.wantInst+id[:8] {
			t.Fatalf("harness bug: instanceName = %q", name)
		}
		if len(name) > 63 {
			t.Fatalf("harness bug: instance name %q longer than 63", name)
		}
		if !exists(filepath.Join(d.Dirs.FakeDir, name)) {
			t.Errorf("sandbox-name %q: expected instance %q, fake-dir has %q", c.annName, name, listTree(d.Dirs.FakeDir))
		}
		vmid, err := d.GetInfo(c.podName, c.ns, false, optsPlain)
		if err != nil || vmid != "fake-"+name {
			t.Errorf("GetInfo(%s/%s) = %q, %s; want %q", c.ns, c.podName, vmid, describeErr(err), "fake-"+name)
		}
		mustOK(t, "StopVM", d.StopVM(id))
	}
	if got := listTree(d.Dirs.FakeDir); len(got) != 0 {
		t.Errorf("fake-dir not empty at the end: %q", got)
	}
}

// GetInfo(Wait=true) issued before the VM exists returns its id once
// StartVM has created it (§6.1, DECISIONS 7).
func scGetInfoWaitWakeup(t *T) {
	d := t.StartDaemon("-fake-create-delay", "1s")
	id := newSandboxID()
	pod, ns := "waiter-pod", "default"
	name := instanceName(pod, id)
	d.MustCreate(id, pod, ns)
	_, err := d.GetInfo(pod, ns, false, optsPlain)
	expectCode(t, "GetInfo(Wait=false) between CreateVM and StartVM", err, 5, nil, "")

	type res struct {
		vmid string
		err  error
		at   time.Time
	}
	ch := make(chan res, 1)
	go func() {
		v, err := d.GetInfo(pod, ns, true, callOpts{ServerTimeout: 20 * time.Second, ClientWait: 25 * time.Second})
		ch <- res{v, err, time.Now()}
	}()
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	select {
	case r := <-ch:
		if r.err != nil || r.vmid != "fake-"+name {
			t.Errorf("GetInfo(Wait=true) = %q, %s; want %q", r.vmid, describeErr(r.err), "fake-"+name)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("GetInfo(Wait=true) still blocked 3s after StartVM returned OK")
	}
	mustOK(t, "StopVM", d.StopVM(id))
}

// DECISIONS 10: a clean restart keeps running sandboxes (the VM is not
// deleted on exit) and the new daemon can still report and stop them.
func scRestartKeepsSandbox(t *T) {
	d := t.StartDaemon()
	dirs := d.Dirs
	id := newSandboxID()
	pod, ns := "survivor", "default"
	name := instanceName(pod, id)
	inst := filepath.Join(dirs.FakeDir, name)
	d.MustCreate(id, pod, ns)
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if err := d.WaitExit(10 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	if !exists(inst) {
		t.Fatalf("instance %s was deleted by the daemon's shutdown (running pod VMs must survive)", name)
	}
	d2 := t.StartDaemonDirs(dirs)
	vmid, err := d2.GetInfo(pod, ns, false, optsPlain)
	if err != nil || vmid != "fake-"+name {
		t.Errorf("GetInfo after restart = %q, %s; want %q", vmid, describeErr(err), "fake-"+name)
	}
	if !exists(inst) {
		t.Errorf("instance %s was deleted by the restarted daemon", name)
	}
	mustOK(t, "StopVM after restart", d2.StopVM(id))
	if exists(inst) {
		t.Errorf("instance %s still present when StopVM returned", name)
	}
	if exists(filepath.Join(dirs.PodsDir, id)) {
		t.Errorf("sandbox dir still present when StopVM returned")
	}
}

// tmpfsPodsDir points dirs.PodsDir at a new directory on tmpfs, as /run/peerpod is on a node;
// the caller runs the returned function to remove it.
func tmpfsPodsDir(t *T, dirs *Dirs) func() {
	shm, err := os.MkdirTemp("/dev/shm", "c") // short: agent socket paths must fit 108 bytes
	if err != nil {
		t.Fatalf("no /dev/shm: %v", err)
	}
	dirs.PodsDir = filepath.Join(shm, "p")
	return func() { os.RemoveAll(shm) }
}

// With the pods dir on tmpfs (as /run/peerpod on a node) records are written on the loop
// thread: pods still start and stop in numbers, and after SIGKILL the restarted daemon finds
// the running pod (and deletes its VM at StopVM) and starts the pod created before the kill.
func scTmpfsPodsDir(t *T) {
	dirs := t.defaultDirs()
	defer tmpfsPodsDir(t, &dirs)()
	d := t.StartDaemonDirs(dirs, "-peerpods-limit-per-node", "100")
	if !strings.Contains(string(mustReadFile(t, d.LogPath)), "is in memory (tmpfs)") {
		t.Errorf("the daemon did not log that %s is on tmpfs", dirs.PodsDir)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := newSandboxID()
			if _, err := d.CreateVM(id, fmt.Sprintf("shm-%02d", i), "default"); err != nil {
				errs <- fmt.Errorf("CreateVM: %s", describeErr(err))
				return
			}
			if err := d.StartVM(id, optsStart); err != nil {
				errs <- fmt.Errorf("StartVM: %s", describeErr(err))
				return
			}
			if err := d.StopVM(id); err != nil {
				errs <- fmt.Errorf("StopVM: %s", describeErr(err))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("40 concurrent pods on a tmpfs pods dir: %v", err)
	}
	if left := listTree(dirs.PodsDir); len(left) != 0 || len(listTree(dirs.FakeDir)) != 0 {
		t.Errorf("after 40 pods: pods dir %q, fake cloud %q; want both empty", left, listTree(dirs.FakeDir))
	}

	running, created := newSandboxID(), newSandboxID()
	inst := filepath.Join(dirs.FakeDir, instanceName("shm-running", running))
	d.MustCreate(running, "shm-running", "default")
	mustOK(t, "StartVM", d.StartVM(running, optsStart))
	d.MustCreate(created, "shm-created", "default")
	d.Kill()
	d2 := t.StartDaemonDirs(dirs, "-peerpods-limit-per-node", "100")
	if vmid, err := d2.GetInfo("shm-running", "default", false, optsPlain); err != nil || vmid == "" {
		t.Errorf("GetInfo of the running pod after SIGKILL = %q, %s", vmid, describeErr(err))
	}
	mustOK(t, "StartVM of the pod created before SIGKILL", d2.StartVM(created, optsStart))
	mustOK(t, "StopVM", d2.StopVM(created))
	mustOK(t, "StopVM of the running pod", d2.StopVM(running))
	if exists(inst) {
		t.Errorf("instance %s still present when StopVM returned", filepath.Base(inst))
	}
	if left := listTree(dirs.PodsDir); len(left) != 0 || len(listTree(dirs.FakeDir)) != 0 {
		t.Errorf("after StopVM: pods dir %q, fake cloud %q; want both empty", left, listTree(dirs.FakeDir))
	}
}

// A node reboot with the pods dir on a disk that keeps it (not the default tmpfs): the kata
// shims and pods of the previous boot are gone and nobody will call StopVM for them, so the
// daemon deletes their pod VMs and records at start; a restart within one boot keeps pods.
func scNodeReboot(t *T) {
	dirs := t.defaultDirs()
	bootFile := filepath.Join(t.dir, "boot_id")
	dirs.Wrap = bootIDWrap(bootFile)
	setBoot := func(id string) {
		if err := os.WriteFile(bootFile, []byte(id+"\n"), 0o644); err != nil {
			t.Fatalf("boot id file: %v", err)
		}
	}
	const boot1, boot2 = "5f0c3a4e-1b2d-4c6e-8f9a-0b1c2d3e4f50", "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
	setBoot(boot1)
	d := t.StartDaemonDirs(dirs)
	running, created := newSandboxID(), newSandboxID()
	inst := filepath.Join(dirs.FakeDir, instanceName("before-reboot", running))
	sock := filepath.Join(dirs.PodsDir, running, "agent.ttrpc")
	d.MustCreate(running, "before-reboot", "default")
	mustOK(t, "StartVM", d.StartVM(running, optsStart))
	d.MustCreate(created, "created-before-reboot", "default")
	rec := string(mustReadFile(t, filepath.Join(dirs.PodsDir, running, "sandbox.json")))
	if !strings.Contains(rec, `"boot_id": "`+boot1+`"`) {
		t.Errorf("the record does not name the boot it was created in (%s):\n%s", boot1, rec)
	}
	d.Kill() // the node loses power

	setBoot(boot2)
	d2 := t.StartDaemonDirs(dirs)
	if !waitFor(10*time.Second, func() bool { return len(listTree(dirs.FakeDir)) == 0 && len(listTree(dirs.PodsDir)) == 0 }) {
		t.Errorf("10 s after the start of the next boot: fake cloud %q, pods dir %q; want both empty",
			listTree(dirs.FakeDir), listTree(dirs.PodsDir))
	}
	if exists(inst) || exists(sock) {
		t.Errorf("after the reboot: instance exists=%v, agent socket exists=%v; want neither", exists(inst), exists(sock))
	}
	logText := string(mustReadFile(t, d2.LogPath))
	for _, id := range []string{running, created} {
		if !strings.Contains(logText, "sandbox "+id+" is from before the node rebooted") {
			t.Errorf("no log line says why sandbox %s was deleted", id)
		}
	}
	if vmid, err := d2.GetInfo("before-reboot", "default", false, optsPlain); err == nil {
		t.Errorf("GetInfo of the pod of the previous boot = %q, want an error", vmid)
	}

	// Within one boot a restart keeps a running pod, as before.
	id := newSandboxID()
	kept := filepath.Join(dirs.FakeDir, instanceName("after-reboot", id))
	d2.MustCreate(id, "after-reboot", "default")
	mustOK(t, "StartVM", d2.StartVM(id, optsStart))
	d2.Kill()
	d3 := t.StartDaemonDirs(dirs)
	if vmid, err := d3.GetInfo("after-reboot", "default", false, optsPlain); err != nil || vmid == "" {
		t.Errorf("GetInfo after a restart within the boot = %q, %s", vmid, describeErr(err))
	}
	if !exists(kept) {
		t.Errorf("instance %s was deleted by a restart within the same boot", filepath.Base(kept))
	}
	mustOK(t, "StopVM", d3.StopVM(id))
	if left := listTree(dirs.PodsDir); len(left) != 0 || len(listTree(dirs.FakeDir)) != 0 {
		t.Errorf("after StopVM: pods dir %q, fake cloud %q; want both empty", left, listTree(dirs.FakeDir))
	}
}

// The daemon sizes its descriptor table for its pod limit before its first thread exists (a
// later growth waits for an RCU grace period: milliseconds of a stalled loop on a busy node),
// and raises the soft RLIMIT_NOFILE to the hard one, as the Go daemon's runtime does.
func scDescriptorTable(t *T) {
	dirs := t.defaultDirs()
	dirs.Wrap = []string{"prlimit", "--nofile=1024:", "--"} // a login shell's soft limit
	d := t.StartDaemonDirs(dirs, "-peerpods-limit-per-node", "1000")
	pid := d.cmd.Process.Pid
	status := string(mustReadFile(t, fmt.Sprintf("/proc/%d/status", pid)))
	var slots int
	for _, l := range strings.Split(status, "\n") {
		if strings.HasPrefix(l, "FDSize:") {
			slots, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l, "FDSize:")))
		}
	}
	if want := 256 + 8*1000; slots < want {
		t.Errorf("descriptor table of the daemon with a limit of 1000 pods: %d slots, want at least %d", slots, want)
	}
	limits := string(mustReadFile(t, fmt.Sprintf("/proc/%d/limits", pid)))
	for _, l := range strings.Split(limits, "\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, "Max open files") && len(f) >= 5 && f[3] != f[4] {
			t.Errorf("the daemon's soft descriptor limit %s is below its hard limit %s", f[3], f[4])
		}
	}
	mustOK(t, "Version", d.Call(hypervisorService, "Version", &VersionRequest{}, &VersionResponse{}, optsPlain))
}

// threadNices maps each thread of pid to its nice value (/proc/<pid>/task/<tid>/stat).
func threadNices(t *T, pid int) map[int]int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatalf("threads of the daemon: %v", err)
	}
	out := map[int]int{}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
		if err != nil {
			continue // the thread ended meanwhile
		}
		// Fields after the ")" that closes the name: state is field 3, nice field 19.
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(f) < 17 {
			t.Fatalf("thread %d stat: %q", tid, st)
		}
		out[tid], _ = strconv.Atoi(f[16])
	}
	return out
}

// The loop thread (the main thread) runs at -loop-nice (-10 by default); the thread pool
// keeps the process's priority; -loop-nice 0 leaves every thread alone; without
// CAP_SYS_NICE the daemon says so, with the fix, and serves at the default priority.
func scLoopPriority(t *T) {
	check := func(d *Daemon, loopWant int, what string) {
		// A StartVM and StopVM run work in the pool, so its threads exist and are counted.
		id := newSandboxID()
		d.MustCreate(id, "prio-pod", "default")
		mustOK(t, what+": StartVM", d.StartVM(id, optsStart))
		mustOK(t, what+": StopVM", d.StopVM(id))
		pid := d.cmd.Process.Pid
		nices := threadNices(t, pid)
		if len(nices) < 2 {
			t.Errorf("%s: %d threads, want the loop and the thread pool", what, len(nices))
		}
		for tid, n := range nices {
			want := 0
			if tid == pid {
				want = loopWant
			}
			if n != want {
				t.Errorf("%s: thread %d (loop %v) has nice %d, want %d", what, tid, tid == pid, n, want)
			}
		}
		mustOK(t, what+": Version", d.Call(hypervisorService, "Version", &VersionRequest{}, &VersionResponse{}, optsPlain))
	}
	check(t.StartDaemon(), -10, "default")
	check(t.StartDaemon("-loop-nice", "-3"), -3, "-loop-nice -3")
	check(t.StartDaemon("-loop-nice", "0"), 0, "-loop-nice 0")
	dirs := t.defaultDirs()
	dirs.Wrap = []string{"setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", "--"}
	d := t.StartDaemonDirs(dirs)
	check(d, 0, "without CAP_SYS_NICE")
	log := string(mustReadFile(t, d.LogPath))
	if !strings.Contains(log, "CAP_SYS_NICE") || !strings.Contains(log, "-loop-nice 0") {
		t.Errorf("without CAP_SYS_NICE: no warning naming it and -loop-nice 0 in the log:\n%s", log)
	}
}

// sigtermExit sends SIGTERM and requires the daemon to exit with status 0
// within the given bound. It ends the scenario if the daemon does not exit.
func sigtermExit(t *T, d *Daemon, within time.Duration) {
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	began := time.Now()
	if err := d.WaitExit(within); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	t.Logf("daemon #%d exited %v after SIGTERM: %s", d.Index, time.Since(began), d.exitString())
	if d.exitCode != 0 {
		t.Errorf("daemon #%d exit after SIGTERM: %s, want exit code 0", d.Index, d.exitString())
	}
}

// SIGTERM while a StartVM is creating the VM: the daemon still exits
// promptly and cleanly, the caller gets an error, and the next daemon
// instance can stop the half-started sandbox and clean up after it.
func scSigtermDuringStart(t *T) {
	d := t.StartDaemon("-fake-create-delay", "30s")
	dirs := d.Dirs
	id := newSandboxID()
	pod := "sigterm-start-pod"
	inst := filepath.Join(dirs.FakeDir, instanceName(pod, id))
	sb := filepath.Join(dirs.PodsDir, id)
	d.MustCreate(id, pod, "default")
	ch := startAsync(d, id, optsStart)
	if !waitFor(10*time.Second, func() bool { return exists(inst) }) {
		t.Fatalf("instance file never appeared while StartVM was in flight (fake-dir %q)", listTree(dirs.FakeDir))
	}
	sigtermExit(t, d, 5*time.Second)
	if err := d.WaitNote("STOPPING=1", 2*time.Second, false); err != nil {
		t.Errorf("STOPPING=1: %v", err)
	}
	r, ok := waitResult(ch, 5*time.Second)
	if !ok {
		t.Fatalf("StartVM still pending 5s after the daemon exited")
	}
	if r.err == nil {
		t.Errorf("StartVM returned OK although the daemon was shut down before the VM was created")
	}
	t.Logf("StartVM after SIGTERM: %s", describeErr(r.err))

	d2 := t.StartDaemonDirs(dirs)
	mustOK(t, "StopVM after restart", d2.StopVM(id))
	if !waitFor(10*time.Second, func() bool { return len(listTree(dirs.FakeDir)) == 0 && !exists(sb) }) {
		t.Errorf("10s after StopVM on the restarted daemon: fake-dir %q, sandbox dir exists=%v %q",
			listTree(dirs.FakeDir), exists(sb), listTree(sb))
	}
}

func inodeOf(path string) (uint64, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return 0, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("no stat_t for %s", path)
	}
	if st.Mode()&os.ModeSocket == 0 {
		return 0, fmt.Errorf("%s is not a socket (mode %v)", path, st.Mode())
	}
	return uint64(sys.Ino), nil
}

// During a rolling update a newer daemon may already have replaced the
// socket file; the old one must not remove the newcomer's socket on exit.
func scSocketNotOurs(t *T) {
	d := t.StartDaemon()
	sock := d.Dirs.Sock
	oldIno, err := inodeOf(sock)
	if err != nil {
		t.Fatalf("daemon socket: %v", err)
	}
	// Keep the daemon's socket inode alive under another name so that the
	// file system cannot hand the same inode number to our new socket.
	hold := filepath.Join(t.dir, "old-daemon.sock")
	if err := os.Link(sock, hold); err != nil {
		t.Fatalf("link %s: %v", sock, err)
	}
	if err := os.Remove(sock); err != nil {
		t.Fatalf("removing the daemon's socket file: %v", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatalf("binding our own socket at %s: %v", sock, err)
	}
	defer l.Close()
	ourIno, err := inodeOf(sock)
	if err != nil {
		t.Fatalf("our socket: %v", err)
	}
	if ourIno == oldIno {
		t.Fatalf("harness bug: our socket has the daemon's inode %d", ourIno)
	}
	t.Logf("daemon socket inode %d, ours %d", oldIno, ourIno)

	sigtermExit(t, d, 5*time.Second)
	ino, err := inodeOf(sock)
	if err != nil {
		t.Fatalf("after the old daemon's shutdown, our socket at %s: %v", sock, err)
	}
	if ino != ourIno {
		t.Fatalf("socket at %s has inode %d after the old daemon's shutdown, want ours (%d)", sock, ino, ourIno)
	}
	// The path still leads to our listener.
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		t.Errorf("dialling our socket after the old daemon's shutdown: %v", err)
	} else {
		c.Close()
	}
}

// SIGTERM with running pod VMs keeps them (DECISIONS 10); the next daemon
// instance reports and stops every one of them.
func scSigtermWithRunningPods(t *T) {
	d := t.StartDaemon()
	dirs := d.Dirs
	const n = 5
	type pod struct{ id, name, inst string }
	pods := make([]pod, n)
	for i := range pods {
		id := newSandboxID()
		name := fmt.Sprintf("keep-pod-%d", i)
		pods[i] = pod{id, name, filepath.Join(dirs.FakeDir, instanceName(name, id))}
		d.MustCreate(id, name, "default")
		mustOK(t, fmt.Sprintf("StartVM(%s)", name), d.StartVM(id, optsStart))
	}
	sigtermExit(t, d, 5*time.Second)
	for _, p := range pods {
		if !exists(p.inst) {
			t.Errorf("instance %s was deleted by the daemon's shutdown (running pod VMs must survive)", filepath.Base(p.inst))
		}
	}
	if t.Failed() {
		return
	}

	d2 := t.StartDaemonDirs(dirs)
	for _, p := range pods {
		want := "fake-" + instanceName(p.name, p.id)
		vmid, err := d2.GetInfo(p.name, "default", false, optsPlain)
		if err != nil || vmid != want {
			t.Errorf("GetInfo(default/%s) after restart = %q, %s; want %q", p.name, vmid, describeErr(err), want)
		}
	}
	for _, p := range pods {
		mustOK(t, fmt.Sprintf("StopVM(%s) after restart", p.name), d2.StopVM(p.id))
		if exists(p.inst) {
			t.Errorf("instance %s still present when StopVM returned", filepath.Base(p.inst))
		}
		if sb := filepath.Join(dirs.PodsDir, p.id); exists(sb) {
			t.Errorf("sandbox dir of %s still present when StopVM returned: %q", p.name, listTree(sb))
		}
	}
	if got := listTree(dirs.FakeDir); len(got) != 0 {
		t.Errorf("fake-dir not empty at the end: %q", got)
	}
}

// Several StopVMs for the same sandbox at once (each on its own
// connection): all succeed and the VM is deleted.
func scStopVMConcurrent(t *T) {
	d := t.StartDaemon("-fake-delete-delay", "300ms")
	id := newSandboxID()
	pod := "stop-conc-pod"
	inst := filepath.Join(d.Dirs.FakeDir, instanceName(pod, id))
	d.MustCreate(id, pod, "default")
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	if !exists(inst) {
		t.Fatalf("instance file missing after StartVM")
	}
	const n = 5
	type res struct {
		err       error
		took      time.Duration
		instAlive bool
	}
	results := make([]res, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-gate
			began := time.Now()
			err := d.StopVM(id)
			results[i] = res{err, time.Since(began), exists(inst)}
		}(i)
	}
	close(gate)
	wg.Wait()
	for i, r := range results {
		t.Logf("StopVM #%d: %s after %v (instance file present at return: %v)", i, describeErr(r.err), r.took, r.instAlive)
		if r.err != nil {
			t.Errorf("concurrent StopVM #%d: %s", i, describeErr(r.err))
		}
	}
	if exists(inst) {
		t.Errorf("instance file %s still present after all StopVMs returned", filepath.Base(inst))
	}
	if sb := filepath.Join(d.Dirs.PodsDir, id); !waitFor(5*time.Second, func() bool { return !exists(sb) }) {
		t.Errorf("sandbox dir still present 5s after the StopVMs: %q", listTree(sb))
	}
}

// StartVM on a sandbox that is already running returns OK at once and
// does not create a second VM.
func scStartIdempotent(t *T) {
	d := t.StartDaemon("-fake-create-delay", "1s")
	id := newSandboxID()
	pod := "start-twice-pod"
	name := instanceName(pod, id)
	d.MustCreate(id, pod, "default")
	mustOK(t, "first StartVM", d.StartVM(id, optsStart))
	before := listTree(d.Dirs.FakeDir)
	if len(before) != 2 || before[0] != name || before[1] != name+".userdata" {
		t.Fatalf("fake-dir after the first StartVM: %q, want [%q %q]", before, name, name+".userdata")
	}
	began := time.Now()
	err := d.StartVM(id, optsStart)
	took := time.Since(began)
	t.Logf("second StartVM: %s after %v", describeErr(err), took)
	mustOK(t, "second StartVM", err)
	if took > 500*time.Millisecond {
		t.Errorf("second StartVM took %v; a running sandbox should answer at once (the fake create takes 1s)", took)
	}
	if after := listTree(d.Dirs.FakeDir); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("fake-dir changed by the second StartVM: before %q, after %q", before, after)
	}
	vmid, err := d.GetInfo(pod, "default", false, optsPlain)
	if err != nil || vmid != "fake-"+name {
		t.Errorf("GetInfo after the second StartVM = %q, %s; want %q", vmid, describeErr(err), "fake-"+name)
	}
	mustOK(t, "StopVM", d.StopVM(id))
	if got := listTree(d.Dirs.FakeDir); len(got) != 0 {
		t.Errorf("fake-dir not empty after StopVM: %q", got)
	}
}

// A second CreateVM with an id in use fails with ALREADY_EXISTS and leaves
// the existing sandbox alone.
func scCreateDuplicate(t *T) {
	d := t.StartDaemon()
	id := newSandboxID()
	pod := "dup-pod"
	sb := filepath.Join(d.Dirs.PodsDir, id)
	d.MustCreate(id, pod, "default")
	_, err := d.CreateVM(id, pod, "default")
	expectCode(t, "second CreateVM with the same id", err, 6, msgContains("already exists"), `containing "already exists"`)
	if !exists(sb) {
		t.Fatalf("sandbox dir %s gone after the refused duplicate CreateVM", sb)
	}
	// The original sandbox still works.
	mustOK(t, "StartVM after the refused duplicate", d.StartVM(id, optsStart))
	_, err = d.CreateVM(id, pod, "default")
	expectCode(t, "CreateVM with the id of a running sandbox", err, 6, msgContains("already exists"), `containing "already exists"`)
	inst := filepath.Join(d.Dirs.FakeDir, instanceName(pod, id))
	if !exists(inst) {
		t.Errorf("instance file %s gone after the refused duplicate CreateVM", filepath.Base(inst))
	}
	mustOK(t, "StopVM", d.StopVM(id))
	if exists(inst) || exists(sb) {
		t.Errorf("after StopVM: instance file exists=%v, sandbox dir exists=%v", exists(inst), exists(sb))
	}
}
