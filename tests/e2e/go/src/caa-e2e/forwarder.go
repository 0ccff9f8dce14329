package main

// The stand-in pod VM: the agent-protocol-forwarder's listener and a kata-agent behind it,
// on Debian's containerd/ttrpc (the library the real forwarder and shim use) and Go's
// crypto/tls. It listens on every address of the runner's network namespace (the fake
// cloud gives every VM 127.0.0.1; libvirt's test driver 192.168.122.x, local there) and,
// with TLS, presents the server certificate the daemon issued for the VM it is asked for
// (SNI), read from the apf.json the fake cloud received; it requires and verifies the
// daemon's client certificate against tls-client-ca, as the forwarder does.
//
// Agent behaviour, for the relay tests: every call is recorded (method, raw payload,
// metadata, deadline); Health/Check answers SERVING; WaitProcess blocks until released or
// canceled; CopyFile echoes its request payload; StatsContainer answers after a delay taken
// from its payload's length, so concurrent calls finish out of order; everything else
// answers an empty message.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
)

type rawMsg struct{ b []byte }

func (m *rawMsg) Reset()                   { m.b = nil }
func (m *rawMsg) String() string           { return fmt.Sprintf("raw(%d bytes)", len(m.b)) }
func (*rawMsg) ProtoMessage()              {}
func (m *rawMsg) Marshal() ([]byte, error) { return m.b, nil }
func (m *rawMsg) Unmarshal(b []byte) error { m.b = append([]byte(nil), b...); return nil }

type agentCall struct {
	Service, Method string
	Payload         []byte
	Metadata        map[string][]string
	Deadline        time.Time // zero: none
}

type Forwarder struct {
	ln      net.Listener
	Port    int
	TLS     bool
	fakeDir string

	srv *ttrpc.Server

	mu      sync.Mutex
	calls   []agentCall
	release chan struct{}
	conns   []net.Conn
	accepts int
	dialed  map[string]int // local address the daemon dialed -> connections
	// Misconfigurations for the refusal tests.
	foreignCert     bool // present a certificate the daemon's CA did not sign
	foreignClientCA bool // trust a CA that did not sign the daemon's client certificate
	noRecord        bool // benchmarks: keep nothing
}

// selfSigned is a fresh certificate and key, unrelated to the daemon's CA.
func selfSigned(name string) (tls.Certificate, *x509.Certificate) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, cert
}

func (f *Forwarder) Misconfigure(foreignCert, foreignClientCA bool) {
	f.mu.Lock()
	f.foreignCert, f.foreignClientCA = foreignCert, foreignClientCA
	f.mu.Unlock()
}

var agentMethodNames = []string{
	"CreateContainer", "StartContainer", "RemoveContainer", "ExecProcess", "SignalProcess", "WaitProcess",
	"UpdateContainer", "UpdateEphemeralMounts", "StatsContainer", "PauseContainer", "ResumeContainer",
	"RemoveStaleVirtiofsShareMounts", "GetDiagnosticData", "WriteStdin", "ReadStdout", "ReadStderr", "CloseStdin",
	"TtyWinResize", "UpdateInterface", "UpdateRoutes", "ListInterfaces", "ListRoutes", "AddARPNeighbors",
	"GetIPTables", "SetIPTables", "GetMetrics", "MemAgentMemcgSet", "MemAgentCompactSet", "CreateSandbox",
	"DestroySandbox", "OnlineCPUMem", "ReseedRandomDev", "GetGuestDetails", "MemHotplugByProbe", "SetGuestDateTime",
	"CopyFile", "GetOOMEvent", "AddSwap", "AddSwapPath", "GetVolumeStats", "ResizeVolume", "SetPolicy",
}

// tlsConfigFor serves the certificate the daemon issued for the VM the client names.
func (f *Forwarder) tlsConfigFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	b, err := os.ReadFile(filepath.Join(f.fakeDir, hello.ServerName+".userdata"))
	if err != nil {
		return nil, fmt.Errorf("no VM %q here: %v", hello.ServerName, err)
	}
	files, err := parseCloudConfig(b)
	if err != nil || len(files) == 0 || files[0].Content == nil {
		return nil, fmt.Errorf("user-data of %s: %v", hello.ServerName, err)
	}
	var apf apfConfig
	if err := json.Unmarshal([]byte(*files[0].Content), &apf); err != nil {
		return nil, err
	}
	notePEMKey("a pod VM's TLS server key", apf.TLSServerKey)
	pair, err := tls.X509KeyPair([]byte(apf.TLSServerCert), []byte(apf.TLSServerKey))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(apf.TLSClientCA))
	f.mu.Lock()
	foreignCert, foreignCA := f.foreignCert, f.foreignClientCA
	f.mu.Unlock()
	if foreignCert {
		pair, _ = selfSigned(hello.ServerName)
	}
	if foreignCA {
		_, other := selfSigned("another-ca")
		pool = x509.NewCertPool()
		pool.AddCert(other)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func (f *Forwarder) record(ctx context.Context, service, method string, payload []byte) {
	if f.noRecord {
		return
	}
	c := agentCall{Service: service, Method: method, Payload: payload, Metadata: map[string][]string{}}
	if md, ok := ttrpc.GetMetadata(ctx); ok {
		for k, v := range md {
			c.Metadata[k] = append([]string(nil), v...)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		c.Deadline = dl
	}
	f.mu.Lock()
	if !f.noRecord {
		f.calls = append(f.calls, c)
	}
	f.mu.Unlock()
}

func (f *Forwarder) agentMethod(name string) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
		var req rawMsg
		if err := unmarshal(&req); err != nil {
			return nil, err
		}
		f.record(ctx, "grpc.AgentService", name, req.b)
		switch name {
		case "WaitProcess":
			f.mu.Lock()
			rel := f.release
			f.mu.Unlock()
			select {
			case <-rel:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case "CopyFile":
			return &rawMsg{b: req.b}, nil
		case "StatsContainer":
			time.Sleep(time.Duration(len(req.b)%20) * time.Millisecond)
			return &rawMsg{b: req.b}, nil
		}
		return &rawMsg{}, nil
	}
}

// StartForwarder listens with TLS (SNI certificates from the fake cloud's
// user-data in fakeDir) or plain TCP.
func StartForwarder(fakeDir string, withTLS bool) (*Forwarder, error) {
	// Every address of the runner's namespace: 127.0.0.1 for the fake cloud, 192.168.122.x
	// (a local route there) for libvirt's test driver.
	return StartForwarderAt("0.0.0.0:0", fakeDir, withTLS)
}

func StartForwarderAt(addr, fakeDir string, withTLS bool) (*Forwarder, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return StartForwarderOn(ln, fakeDir, withTLS)
}

// StartForwarderOn serves the stand-in pod VM on a listener the caller made (for
// instance inside a pod VM's network namespace).
func StartForwarderOn(ln net.Listener, fakeDir string, withTLS bool) (*Forwarder, error) {
	f := &Forwarder{ln: ln, Port: ln.Addr().(*net.TCPAddr).Port, TLS: withTLS, fakeDir: fakeDir,
		release: make(chan struct{})}
	srv, err := ttrpc.NewServer()
	if err != nil {
		ln.Close()
		return nil, err
	}
	methods := map[string]ttrpc.Method{}
	for _, m := range agentMethodNames {
		methods[m] = f.agentMethod(m)
	}
	srv.Register("grpc.AgentService", methods)
	srv.Register("grpc.Health", map[string]ttrpc.Method{
		"Check": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req rawMsg
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			f.record(ctx, "grpc.Health", "Check", req.b)
			return &rawMsg{b: []byte{0x08, 0x01}}, nil // HealthCheckResponse{status: SERVING}
		},
		"Version": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req rawMsg
			unmarshal(&req)
			return &rawMsg{b: []byte{0x0a, 0x01, '1', 0x12, 0x05, 's', 't', 'u', 'b', '1'}}, nil
		},
	})
	f.srv = srv
	var serveLn net.Listener = &trackingListener{Listener: ln, f: f}
	if withTLS {
		serveLn = tls.NewListener(serveLn, &tls.Config{GetConfigForClient: f.tlsConfigFor})
	}
	go srv.Serve(context.Background(), serveLn)
	return f, nil
}

// trackingListener remembers the connections, so a test can cut the link.
type trackingListener struct {
	net.Listener
	f *Forwarder
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.f.mu.Lock()
		l.f.conns = append(l.f.conns, c)
		l.f.accepts++
		if l.f.dialed == nil {
			l.f.dialed = map[string]int{}
		}
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			l.f.dialed[a.IP.String()]++
		}
		l.f.mu.Unlock()
	}
	return c, err
}

func (f *Forwarder) Close() {
	f.ln.Close()
	f.srv.Close()
	f.Cut()
}

// Cut closes every connection the forwarder has accepted (the link drops).
func (f *Forwarder) Cut() {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (f *Forwarder) Accepts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepts
}

func (f *Forwarder) Release() {
	f.mu.Lock()
	close(f.release)
	f.release = make(chan struct{})
	f.mu.Unlock()
}

func (f *Forwarder) Calls(method string) []agentCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []agentCall
	for _, c := range f.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// agentCallRaw calls the agent socket the daemon handed out, as the shim does.
func agentCallRaw(sock, service, method string, payload []byte, timeout time.Duration, md ttrpc.MD) ([]byte, error) {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return nil, err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	return agentCallOn(client, service, method, payload, timeout, md)
}

func agentCallOn(client *ttrpc.Client, service, method string, payload []byte, timeout time.Duration,
	md ttrpc.MD) ([]byte, error) {
	ctx := context.Background()
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if md != nil {
		ctx = ttrpc.WithMetadata(ctx, md)
	}
	resp := &rawMsg{}
	err := client.Call(ctx, service, method, &rawMsg{b: payload}, resp)
	return resp.b, err
}

// Dialed is how many connections the daemon made to each local address.
func (f *Forwarder) Dialed() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]int{}
	for k, v := range f.dialed {
		m[k] = v
	}
	return m
}
