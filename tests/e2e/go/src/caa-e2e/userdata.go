package main

// Scenarios for the pod VM's user-data (issue 4): the document the daemon hands the cloud
// is read back from the fake cloud and checked the way a pod VM image would use it: a
// strict cloud-config reader, Go's encoding/json for apf.json (the forwarder is Go), the
// initdata file gunzipped to the exact TOML bytes, and the TLS material exercised by real
// mutual-TLS handshakes: Go's crypto/tls (what the forwarder runs) and openssl s_server,
// both as the pod VM side, against the daemon's persisted client identity. Loopback only.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func userdataScenarios() []scenario {
	return []scenario{
		{"userdata_document", scUserdataDocument},
		{"userdata_tls_disabled_scratch", scUserdataTLSDisabled},
		{"userdata_limit", scUserdataLimit},
		{"initdata_bad_global", scInitdataBadGlobal},
		{"initdata_bad_annotation", scInitdataBadAnnotation},
	}
}

type vmFile struct {
	Path    string
	Content *string // nil: the entry has no content key
}

// parseCloudConfig reads the document as the pod VM's process-user-data does (strict: only
// write_files entries with path and content), for the exact layout of spec 4.1.
func parseCloudConfig(doc []byte) ([]vmFile, error) {
	s := string(doc)
	const head = "#cloud-config\n\nwrite_files:\n"
	if !strings.HasPrefix(s, head) {
		return nil, fmt.Errorf("document does not start with %q", head)
	}
	if !strings.HasSuffix(s, "\n") || strings.HasSuffix(s, "\n\n") {
		return nil, fmt.Errorf("document must end with exactly one newline")
	}
	lines := strings.Split(strings.TrimSuffix(s[len(head):], "\n"), "\n")
	var files []vmFile
	for i := 0; i < len(lines); {
		l := lines[i]
		if !strings.HasPrefix(l, "  - path: ") {
			return nil, fmt.Errorf("line %q: want '  - path: '", l)
		}
		f := vmFile{Path: strings.TrimPrefix(l, "  - path: ")}
		i++
		if i < len(lines) && lines[i] == "    content: |" {
			i++
			var body []string
			for i < len(lines) && strings.HasPrefix(lines[i], "      ") {
				body = append(body, strings.TrimPrefix(lines[i], "      "))
				i++
			}
			if len(body) == 0 {
				return nil, fmt.Errorf("%s: empty content block", f.Path)
			}
			c := strings.Join(body, "\n") + "\n"
			f.Content = &c
		} else if i < len(lines) && !strings.HasPrefix(lines[i], "  - path: ") {
			return nil, fmt.Errorf("%s: unexpected line %q (only path and content are allowed)", f.Path, lines[i])
		}
		files = append(files, f)
	}
	return files, nil
}

func mustReadFile(t *T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return b
}

func createWith(d *Daemon, id string, ann map[string]string) error {
	return d.Call(hypervisorService, "CreateVM", &CreateVMRequest{
		Id: id, Annotations: ann, NetworkNamespacePath: netnsPath,
	}, &CreateVMResponse{}, optsPlain)
}

// vmDocument returns the files of the user-data the fake cloud received for a VM.
func vmDocument(t *T, d *Daemon, vm string) map[string]*string {
	p := filepath.Join(d.Dirs.FakeDir, vm+".userdata")
	files, err := parseCloudConfig(mustReadFile(t, p))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	m := map[string]*string{}
	var order []string
	for _, f := range files {
		m[f.Path] = f.Content
		order = append(order, f.Path)
	}
	m["#order"] = new(string)
	*m["#order"] = strings.Join(order, ",")
	return m
}

// gunzipB64 is what the pod VM does with /run/peerpod/initdata.
func gunzipB64(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(s, "\n"))
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

type apfConfig struct {
	PodNetwork    map[string]interface{} `json:"pod-network"`
	PodNamespace  string                 `json:"pod-namespace"`
	PodName       string                 `json:"pod-name"`
	TLSServerKey  string                 `json:"tls-server-key"`
	TLSServerCert string                 `json:"tls-server-cert"`
	TLSClientCA   string                 `json:"tls-client-ca"`
}

func scUserdataDocument(t *T) {
	def := mustReadFile(t, "tests/data/initdata/default.toml")
	pod1 := mustReadFile(t, "tests/data/initdata/pod1.toml")
	// INITDATA as the OpenShift docs write it: base64 -w0 initdata.toml.
	d := t.StartDaemon("-initdata", base64.StdEncoding.EncodeToString(def))
	tlsDir := filepath.Join(filepath.Dir(d.Dirs.PodsDir), "tls")

	idA, idB := newSandboxID(), newSandboxID()
	annA := kataAnnotations("pod1", "coco")
	annA[annInitdata] = string(pod1) // kata forwards the decoded TOML
	mustOK(t, "CreateVM with a cc_init_data annotation", createWith(d, idA, annA))
	mustOK(t, "CreateVM without one", createWith(d, idB, kataAnnotations("pod2", "coco")))
	for _, id := range []string{idA, idB} {
		p := filepath.Join(d.Dirs.PodsDir, id, "userdata")
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s after CreateVM: %v (mode %v), want a 0600 file", p, err, st)
		}
		mustOK(t, "StartVM", d.StartVM(id, optsStart))
	}

	caPool := x509.NewCertPool()
	if !caPool.AppendCertsFromPEM(mustReadFile(t, filepath.Join(tlsDir, "ca.crt"))) {
		t.Fatalf("no CA certificate in %s", tlsDir)
	}
	clientPEM := mustReadFile(t, filepath.Join(tlsDir, "client.crt"))
	client, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, "client.crt"), filepath.Join(tlsDir, "client.key"))
	if err != nil {
		t.Fatalf("daemon client identity: %v", err)
	}

	sum256 := sha256.Sum256(pod1)
	sum384 := sha512.Sum384(def)
	cases := []struct {
		id, pod string
		toml    []byte
		digest  string
	}{
		{idA, "pod1", pod1, hex.EncodeToString(sum256[:])},
		{idB, "pod2", def, hex.EncodeToString(sum384[:])},
	}
	for _, c := range cases {
		vm := instanceName(c.pod, c.id)
		files := vmDocument(t, d, vm)
		if got := *files["#order"]; got != "/run/peerpod/apf.json,/run/peerpod/initdata" {
			t.Errorf("%s: write_files paths %s, want apf.json then initdata", vm, got)
			continue
		}
		// initdata: one base64 line that gunzips to exactly the TOML bytes.
		init := *files["/run/peerpod/initdata"]
		if strings.Count(init, "\n") != 1 {
			t.Errorf("%s: initdata is not one line", vm)
		}
		if plain, err := gunzipB64(init); err != nil || !bytes.Equal(plain, c.toml) {
			t.Errorf("%s: initdata does not gunzip to the expected TOML (err %v, %d bytes)", vm, err, len(plain))
		}
		// apf.json as the forwarder reads it.
		var apf apfConfig
		raw := *files["/run/peerpod/apf.json"]
		if err := json.Unmarshal([]byte(raw), &apf); err != nil {
			t.Errorf("%s: apf.json: %v", vm, err)
			continue
		}
		if apf.PodName != c.pod || apf.PodNamespace != "coco" || apf.PodNetwork == nil {
			t.Errorf("%s: apf.json names %q/%q, pod-network %v", vm, apf.PodNamespace, apf.PodName, apf.PodNetwork)
		}
		if apf.PodNetwork["tunnel-type"] != "vxlan" || apf.PodNetwork["vxlan-port"] != 4789.0 {
			t.Errorf("%s: pod-network tunnel settings %v", vm, apf.PodNetwork)
		}
		if apf.TLSClientCA != string(clientPEM) {
			t.Errorf("%s: tls-client-ca is not the daemon's client certificate", vm)
		}
		checkServerCert(t, vm, apf, caPool)
		pair, err := tls.X509KeyPair([]byte(apf.TLSServerCert), []byte(apf.TLSServerKey))
		if err != nil {
			t.Errorf("%s: tls-server-cert/key do not form a pair: %v", vm, err)
			continue
		}
		clientCAs := x509.NewCertPool()
		clientCAs.AppendCertsFromPEM([]byte(apf.TLSClientCA))
		if err := goHandshake(pair, clientCAs, &client, caPool, vm); err != nil {
			t.Errorf("%s: Go TLS handshake with the daemon's client identity: %v", vm, err)
		}
		if err := goHandshake(pair, clientCAs, nil, caPool, vm); err == nil {
			t.Errorf("%s: the forwarder side accepted a client without a certificate", vm)
		}
		if c.pod == "pod1" {
			opensslHandshakes(t, vm, apf, tlsDir)
		}
		// The daemon logs which initdata and its digest, never the contents.
		if !logHas(d, "initdata chosen sandbox="+c.id+" ") || !logHas(d, "digest="+c.digest) {
			t.Errorf("%s: daemon log lacks the initdata digest %s", vm, c.digest)
		}
	}
	for _, secret := range []string{"BEGIN CERTIFICATE", "PRIVATE KEY", "agent_policy", "token_configs", "allowed_commands"} {
		if logHas(d, secret) {
			t.Errorf("daemon log contains %q", secret)
		}
	}
	for _, c := range cases {
		mustOK(t, "StopVM", d.StopVM(c.id))
		if p := filepath.Join(d.Dirs.FakeDir, instanceName(c.pod, c.id)+".userdata"); exists(p) {
			t.Errorf("%s remains after StopVM", p)
		}
	}
}

func checkServerCert(t *T, vm string, apf apfConfig, roots *x509.CertPool) {
	cert, err := x509.ParseCertificate(pemBlock(apf.TLSServerCert))
	if err != nil {
		t.Errorf("%s: tls-server-cert: %v", vm, err)
		return
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: vm,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("%s: server certificate does not verify for %s against the daemon CA: %v", vm, vm, err)
	}
	if cert.Subject.CommonName != vm || len(cert.DNSNames) != 1 || cert.DNSNames[0] != vm {
		t.Errorf("%s: server certificate CN %q SAN %v", vm, cert.Subject.CommonName, cert.DNSNames)
	}
}

func pemBlock(s string) []byte {
	const b, e = "-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----"
	i, j := strings.Index(s, b), strings.Index(s, e)
	if i < 0 || j < i {
		return nil
	}
	der, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(s[i+len(b):j], "\n", ""))
	return der
}

// goHandshake runs the forwarder's side (crypto/tls, client certificate required and
// verified against tls-client-ca) and the daemon's side over 127.0.0.1.
func goHandshake(server tls.Certificate, clientCAs *x509.CertPool, client *tls.Certificate, roots *x509.CertPool,
	name string) error {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		return err
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		srvErr <- c.(*tls.Conn).Handshake()
	}()
	cfg := &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), cfg)
	if err == nil {
		// TLS 1.3 reports a refused client certificate only on the first read.
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Write([]byte("x"))
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
			if err == io.EOF {
				err = nil
			}
		}
		conn.Close()
	}
	select {
	case se := <-srvErr:
		if se != nil {
			return fmt.Errorf("forwarder side: %v", se)
		}
	case <-time.After(15 * time.Second):
		return fmt.Errorf("forwarder side did not finish the handshake")
	}
	if err != nil && !strings.Contains(err.Error(), "connection reset") {
		return fmt.Errorf("daemon side: %v", err)
	}
	return nil
}

// opensslHandshakes plays the pod VM with `openssl s_server` on apf.json's material and
// connects with `openssl s_client`: with the daemon's client identity it must work, and
// without a client certificate it must be refused.
func opensslHandshakes(t *T, vm string, apf apfConfig, tlsDir string) {
	dir := filepath.Join(t.dir, "openssl-"+vm)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Errorf("%v", err)
		return
	}
	for name, body := range map[string]string{"server.crt": apf.TLSServerCert, "server.key": apf.TLSServerKey,
		"client-ca.crt": apf.TLSClientCA} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Errorf("%v", err)
			return
		}
	}
	for _, withCert := range []bool{true, false} {
		srv := exec.Command("openssl", "s_server", "-accept", "127.0.0.1:0", "-naccept", "1",
			"-cert", filepath.Join(dir, "server.crt"), "-key", filepath.Join(dir, "server.key"),
			"-Verify", "1", "-CAfile", filepath.Join(dir, "client-ca.crt"), "-verify_return_error", "-rev")
		out, err := srv.StdoutPipe()
		if err != nil {
			t.Errorf("%v", err)
			return
		}
		srv.Stderr = srv.Stdout
		if err := srv.Start(); err != nil {
			t.Errorf("openssl s_server: %v", err)
			return
		}
		registerProc(srv.Process)
		portc := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "ACCEPT ") {
					portc <- strings.TrimPrefix(sc.Text(), "ACCEPT ")
				}
			}
			close(portc)
		}()
		var addr string
		select {
		case addr = <-portc:
		case <-time.After(15 * time.Second):
		}
		if addr == "" {
			t.Errorf("openssl s_server did not start")
		} else {
			args := []string{"s_client", "-connect", addr, "-CAfile", filepath.Join(tlsDir, "ca.crt"),
				"-verify_hostname", vm, "-verify_return_error", "-ign_eof", "-quiet"}
			if withCert {
				args = append(args, "-cert", filepath.Join(tlsDir, "client.crt"),
					"-key", filepath.Join(tlsDir, "client.key"))
			}
			cl := exec.Command("timeout", append([]string{"15", "openssl"}, args...)...)
			cl.Stdin = strings.NewReader("hello\nCLOSE\n") // s_server -rev closes on CLOSE
			reply, _ := cl.CombinedOutput()
			echoed := strings.Contains(string(reply), "olleh")
			if withCert && !echoed {
				t.Errorf("openssl s_server with apf.json's material refused the daemon's client identity: %s", reply)
			}
			if !withCert && echoed {
				t.Errorf("openssl s_server with apf.json's material served a client without a certificate")
			}
		}
		srv.Process.Kill()
		srv.Wait()
		unregisterProc(srv.Process)
	}
}

func logHas(d *Daemon, s string) bool {
	b, err := os.ReadFile(d.LogPath)
	return err == nil && bytes.Contains(b, []byte(s))
}

func scUserdataTLSDisabled(t *T) {
	// The TLS profile settings mean nothing without TLS: apf.json gets no tls- key (spec 4.3).
	t.env = []string{"TLS_MIN_VERSION=VersionTLS12", "TLS_CIPHER_SUITES=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}
	d := t.StartDaemon("-disable-tls", "-enable-scratch-space")
	id := newSandboxID()
	mustOK(t, "CreateVM", createWith(d, id, kataAnnotations("plain", "default")))
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	files := vmDocument(t, d, instanceName("plain", id))
	if got := *files["#order"]; got != "/run/peerpod/apf.json,/run/peerpod/scratch-space.marker" {
		t.Errorf("write_files paths %s, want apf.json then the scratch marker", got)
	} else if files["/run/peerpod/scratch-space.marker"] != nil {
		t.Errorf("the scratch marker has a content key")
	}
	if apf := files["/run/peerpod/apf.json"]; apf != nil && strings.Contains(*apf, "\"tls-") {
		t.Errorf("apf.json carries TLS keys with -disable-tls:\n%s", *apf)
	}
	if exists(filepath.Join(filepath.Dir(d.Dirs.PodsDir), "tls")) {
		t.Errorf("-disable-tls generated TLS material")
	}
	mustOK(t, "StopVM", d.StopVM(id))
}

func scUserdataLimit(t *T) {
	d := t.StartDaemon("-fake-userdata-limit", "4096")
	// A plain pod fits; a pod whose initdata carries 8 KiB of incompressible data does not.
	small := newSandboxID()
	mustOK(t, "CreateVM of a small document", createWith(d, small, kataAnnotations("small", "default")))
	noise := make([]byte, 6144)
	for i := range noise {
		noise[i] = byte(i*7919 + i*i*31 + i>>3)
	}
	big := newSandboxID()
	ann := kataAnnotations("big", "default")
	ann[annInitdata] = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"aa.toml\" = \"" +
		base64.StdEncoding.EncodeToString(noise) + "\"\n"
	err := createWith(d, big, ann)
	expectCode(t, "CreateVM over the provider's user-data limit", err, 3,
		msgContains("more than the 4096 bytes the fake provider accepts; make the initdata smaller"), "")
	if exists(filepath.Join(d.Dirs.PodsDir, big)) {
		t.Errorf("a refused CreateVM left its sandbox dir")
	}
	mustOK(t, "StopVM", d.StopVM(small))
}

func scInitdataBadGlobal(t *T) {
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return base64.StdEncoding.EncodeToString(b.Bytes())
	}
	cases := []struct{ value, want string }{
		{"this is not base64!", "cloud-api-adaptor: INITDATA: not base64"},
		{gz("algorithm = \"md5\"\nversion = \"0.1.0\"\n[data]\n"), "INITDATA: unknown algorithm 'md5'"},
		{base64.StdEncoding.EncodeToString([]byte("algorithm = \"sha256\"\nversion = \"0.1.0\"\n")),
			"INITDATA: missing the [data] table"},
		{gz("algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"aa.toml\" = '''\nSECRET-TOKEN\n"),
			"INITDATA: line 4: unterminated string"},
	}
	for i, c := range cases {
		dirs := t.defaultDirs()
		dirs.Sock = filepath.Join(t.dir, fmt.Sprintf("bad%d.sock", i))
		d, err := t.spawnDaemon(dirs, "-initdata", c.value)
		if err != nil {
			t.Fatalf("spawn: %v", err)
		}
		if err := d.WaitExit(15 * time.Second); err != nil {
			t.Errorf("daemon with a bad INITDATA kept running: %v", err)
			d.Kill()
			continue
		}
		if d.exitCode != 1 || !logHas(d, c.want) {
			t.Errorf("bad INITDATA %d: exit %d, log %q; want exit 1 and %q", i, d.exitCode, tailFile(d.LogPath, 3), c.want)
		}
		if logHas(d, "SECRET-TOKEN") {
			t.Errorf("the error quotes the initdata contents")
		}
		if exists(dirs.Sock) {
			t.Errorf("a daemon that refused its configuration created %s", dirs.Sock)
		}
	}
}

func scInitdataBadAnnotation(t *T) {
	d := t.StartDaemon()
	cases := []struct{ toml, want string }{
		{"algorithm = \"md5\"\nversion = \"0.1.0\"\n[data]\n", "initdata: unknown algorithm 'md5'"},
		{"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"policy.rego\" = \"\"\"\nSECRET-TOKEN\n",
			"initdata: line 4: unterminated string"},
		{"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"aa.toml\" = 42\n", "must be a string, not an integer"},
	}
	for _, c := range cases {
		id := newSandboxID()
		ann := kataAnnotations("badinit", "default")
		ann[annInitdata] = c.toml
		err := createWith(d, id, ann)
		expectCode(t, "CreateVM with bad initdata", err, 3, msgContains(c.want), "")
		if _, msg, _ := errCode(err); strings.Contains(msg, "SECRET-TOKEN") || !strings.Contains(msg, "cc_init_data") {
			t.Errorf("error %q quotes the document or does not name the annotation", msg)
		}
		if exists(filepath.Join(d.Dirs.PodsDir, id)) {
			t.Errorf("a refused CreateVM left its sandbox dir")
		}
	}
	if logHas(d, "SECRET-TOKEN") {
		t.Errorf("the daemon log quotes the initdata contents")
	}
	// The annotation may also arrive base64 (optionally gzip'd) and under the runtime key.
	good := "algorithm = \"sha512\"\nversion = \"0.1.0\"\n[data]\n"
	id := newSandboxID()
	ann := kataAnnotations("b64init", "default")
	delete(ann, annInitdata)
	ann["io.katacontainers.config.runtime.cc_init_data"] = base64.StdEncoding.EncodeToString([]byte(good))
	mustOK(t, "CreateVM with base64 initdata under the runtime key", createWith(d, id, ann))
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	files := vmDocument(t, d, instanceName("b64init", id))
	if v := files["/run/peerpod/initdata"]; v == nil {
		t.Errorf("no initdata file for the runtime-key annotation")
	} else if plain, err := gunzipB64(*v); err != nil || string(plain) != good {
		t.Errorf("initdata = %q (%v), want the decoded TOML", plain, err)
	}
	mustOK(t, "StopVM", d.StopVM(id))
}
