package main

// The HTTPS side the fakes of remote APIs share (fake ARM, fake Kubernetes API): a CA of their
// own that signs the server certificate, so the daemon has to verify a chain up to the CA file
// it is given rather than pin the certificate it sees, and a server that counts connections.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"
)

// fakeCA is a fresh P-256 CA valid from an hour ago for a day.
type fakeCA struct {
	Cert *x509.Certificate
	PEM  []byte // Cert as CA bundle files hold it
	key  *ecdsa.PrivateKey
}

func newFakeCA(cn string) (*fakeCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &fakeCA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// ServerCert is a fresh key and a server certificate for ips and dns that ca signs (not a CA
// itself), valid as long as ca.
func (ca *fakeCA) ServerCert(cn string, ips []net.IP, dns ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Add(ca.Cert.SerialNumber, big.NewInt(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: ca.Cert.NotBefore, NotAfter: ca.Cert.NotAfter, IPAddresses: ips, DNSNames: dns,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serveTLS serves h over TLS with cert on ln until the returned server is closed, adding one
// to *conns, under mu, for each connection accepted.
func serveTLS(ln net.Listener, cert tls.Certificate, h http.HandlerFunc, mu *sync.Mutex, conns *int) *http.Server {
	srv := &http.Server{Handler: h, ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			*conns++
			mu.Unlock()
		}
	}}
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	return srv
}
