package main

// The probe and metrics endpoints on PROBE_PORT: status codes and bodies over plain HTTP (Go's
// net/http client), and /metrics read by the reference Prometheus text parser
// (tests/e2e/promparse.py, python3-prometheus-client) before any value is checked.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func probeScenarios() []scenario {
	return []scenario{
		{"probes_and_metrics", scProbesMetrics},
	}
}

func freePort(t *T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func probeGet(port int, method, path string) (int, string, error) {
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return 0, "", err
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// scrape reads /metrics and returns every sample as "name{k="v",...}" (labels sorted) -> value.
func scrape(t *T, port int) map[string]float64 {
	code, body, err := probeGet(port, "GET", "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d, %v", code, err)
	}
	py, _ := filepath.Abs("tests/e2e/promparse.py")
	cmd := exec.Command("/usr/bin/python3", py)
	cmd.Stdin = strings.NewReader(body)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("the Prometheus parser refused /metrics: %v: %s\n%s", err, errb.String(), body)
	}
	var samples [][]interface{}
	if err := json.Unmarshal(out.Bytes(), &samples); err != nil {
		t.Fatalf("promparse output: %v", err)
	}
	m := map[string]float64{}
	for _, s := range samples {
		labels, _ := s[1].(map[string]interface{})
		var ls []string
		for k, v := range labels {
			ls = append(ls, fmt.Sprintf("%s=%q", k, v))
		}
		sort.Strings(ls)
		key := s[0].(string)
		if len(ls) > 0 {
			key += "{" + strings.Join(ls, ",") + "}"
		}
		m[key] = s[2].(float64)
	}
	return m
}

func expectSamples(t *T, m map[string]float64, when string, want map[string]float64) {
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("%s: no sample %s", when, k)
		} else if got != v {
			t.Errorf("%s: %s = %v, want %v", when, k, got, v)
		}
	}
}

func scProbesMetrics(t *T) {
	port := freePort(t)
	t.env = append(t.env, fmt.Sprintf("PROBE_PORT=%d", port))
	d := t.StartDaemon()
	for _, c := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "ok\n"}, {"GET", "/readyz", 200, "ok\n"}, {"GET", "/startup", 200, "ok\n"},
		{"HEAD", "/metrics", 200, ""}, {"GET", "/nope", 404, ""}, {"POST", "/metrics", 405, ""},
	} {
		code, body, err := probeGet(port, c.method, c.path)
		if err != nil || code != c.code || (c.body != "" && body != c.body) {
			t.Errorf("%s %s: %d %q %v; want %d %q", c.method, c.path, code, body, err, c.code, c.body)
		}
	}
	// Not HTTP at all: 400, and the server goes on.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("\x16\x03\x01\x00\x05hello"))
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
			t.Errorf("a TLS hello got %q, want a 400", b)
		}
	}
	// A head too big for the server, sent whole: a 431 (the server then shuts its side down and
	// reads the rest before it closes, so a client still sending gets no reset first; Go's
	// client here has sent everything already, so this checks the answer, not the reset).
	for i := 0; i < 5; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err != nil {
			t.Fatalf("%v", err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20000) + "\r\n\r\n"))
		b, err := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 431 ") {
			t.Errorf("a 20 KB header got %q (%v), want a 431", b, err)
			break
		}
	}
	m := scrape(t, port)
	expectSamples(t, m, "idle", map[string]float64{
		`caa_sandboxes{phase="running"}`: 0, `caa_vm_creates_total{result="ok"}`: 0, "caa_agent_links": 0,
		"caa_vm_create_duration_seconds_count": 0, "caa_agent_connections_total": 0,
		`caa_agent_bytes_total{direction="to_vm"}`: 0, `caa_agent_bytes_total{direction="from_vm"}`: 0,
	})
	info := 0
	for k := range m {
		if strings.HasPrefix(k, "caa_build_info{") && strings.Contains(k, `provider="fake"`) {
			info++
		}
	}
	if info != 1 {
		t.Errorf("caa_build_info with provider fake: %d samples", info)
	}

	id := newSandboxID()
	d.MustCreate(id, "metered", "default")
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	m = scrape(t, port)
	expectSamples(t, m, "with a running pod", map[string]float64{
		`caa_sandboxes{phase="running"}`: 1, `caa_vm_creates_total{result="ok"}`: 1, "caa_agent_links": 1,
		"caa_vm_create_duration_seconds_count": 1, `caa_vm_create_duration_seconds_bucket{le="+Inf"}`: 1,
	})
	// StartVM's health check came back through the relay from the stand-in forwarder.
	if v := m[`caa_agent_bytes_total{direction="from_vm"}`]; v <= 0 {
		t.Errorf("caa_agent_bytes_total from_vm after StartVM: %v, want > 0", v)
	}
	mustOK(t, "StopVM", d.StopVM(id))
	m = scrape(t, port)
	expectSamples(t, m, "after the pod was deleted", map[string]float64{
		`caa_sandboxes{phase="running"}`: 0, `caa_vm_deletes_total{result="ok"}`: 1, "caa_agent_links": 0,
		"caa_vm_delete_duration_seconds_count": 1,
	})

	// A second daemon (a rolling update's new pod) shares the port: SO_REUSEPORT.
	dirs := t.defaultDirs()
	dirs.Sock = filepath.Join(t.dir, "hv2.sock")
	dirs.PodsDir = filepath.Join(t.dir, "pods2")
	d2 := t.StartDaemonDirs(dirs)
	if logHas(d2, "PROBE_PORT") {
		t.Errorf("the second daemon could not share PROBE_PORT %d: %s", port, tailFile(d2.LogPath, 5))
	}
	sigtermExit(t, d, 10*time.Second)
	if code, _, err := probeGet(port, "GET", "/healthz"); err != nil || code != 200 {
		t.Errorf("/healthz after the first daemon left: %d %v (the second one serves the port)", code, err)
	}
}
