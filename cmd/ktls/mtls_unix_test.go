//go:build unix

package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestClientCAReload: SIGHUP re-reads --client-ca (new handshakes are
// verified against the new bundle, a session verified against the old one
// is not resumed, a bad file keeps the bundle in place) and the proxy's
// --upstream-cert.
func TestClientCAReload(t *testing.T) {
	www, _ := tree(t, 10)
	s := newMTLS(t)
	caFile := s.dir + "/clients.pem"
	copyPEM(t, s.ca.file, caFile)
	url, logs, stop := runCommand(t, "serve", "--addr", "127.0.0.1:0", "--cert", s.serverCert.certFiles[0], "--key", s.serverCert.keyFiles[0],
		"--client-ca", caFile, www)
	url = strings.Replace(url, "127.0.0.1", "localhost", 1) + "hello.txt"
	check := func(cert *tls.Certificate, want string) {
		t.Helper()
		err := mtlsGet(s.client(cert, tls.VersionTLS13, false), url)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", cert.Leaf.Subject.CommonName, err, want)
		}
	}
	check(&s.alice, "")
	check(&s.eve, "unknown certificate authority")
	// alice with a session cache: the second connection resumes.
	cache := tls.NewLRUClientSessionCache(4)
	resume := func() (bool, error) {
		c, err := tls.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(url, "/hello.txt"), "https://"), &tls.Config{RootCAs: s.ca.pool,
			ClientSessionCache: cache, NextProtos: []string{"http/1.1"},
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &s.alice, nil }})
		if err != nil {
			return false, err
		}
		defer c.Close()
		io.WriteString(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return c.ConnectionState().DidResume, nil
	}
	if resumed, err := resume(); resumed || err != nil {
		t.Fatalf("first connection: resumed %v, %v", resumed, err)
	}
	if resumed, err := resume(); !resumed || err != nil {
		t.Fatalf("second connection: resumed %v, %v; want a resumed session", resumed, err)
	}

	copyPEM(t, s.other.file, caFile)
	hup(t)
	waitLog(t, logs, "SIGHUP: client CA reloaded")
	check(&s.alice, "unknown certificate authority")
	check(&s.eve, "")
	// alice's session, verified against the old bundle, does not resume.
	if resumed, err := resume(); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("alice's session after the reload: resumed %v, %v; want unknown_ca", resumed, err)
	}

	os.WriteFile(caFile, []byte("garbage"), 0o644)
	hup(t)
	waitLog(t, logs, "reloading the client CA failed; keeping the current one")
	check(&s.eve, "")
	if status := stop(); status != 0 {
		t.Errorf("exit status %d", status)
	}

	// The proxy's upstream client certificate.
	cn := make(chan string, 1)
	backend := s.mtlsBackend(t, tls.VersionTLS13, cn, func(c net.Conn) { c.Close() })
	certFile, keyFile := s.ca.issueFiles(t, s.dir, "up", "first")
	addr, logs, stop := runCommand(t, "proxy", "--listen", "127.0.0.1:0", "--to", backend, "--upstream-tls", "--ca", s.ca.file,
		"--server-name", "localhost", "--upstream-cert", certFile, "--upstream-key", keyFile)
	connect := func() string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return <-cn
	}
	if got := connect(); got != "first" {
		t.Errorf("upstream saw %q, want first", got)
	}
	s.ca.issueFiles(t, s.dir, "up", "second")
	hup(t)
	waitLog(t, logs, "cn=second")
	if got := connect(); got != "second" {
		t.Errorf("after SIGHUP, upstream saw %q, want second", got)
	}
	if status := stop(); status != 0 {
		t.Errorf("exit status %d", status)
	}
}

func copyPEM(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}
