//go:build unix

package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// certFiles makes a self-signed certificate for host and writes it to
// DIR/NAME.crt and DIR/NAME.key.
func certFiles(t *testing.T, dir, name, host string) (string, string, *x509.Certificate) {
	t.Helper()
	cert, err := selfSigned([]string{host}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, c, k, cert)
	return c, k, cert.Leaf
}

// peerCert handshakes with addr sending serverName and returns the
// certificate the server presented.
func peerCert(t *testing.T, addr, serverName string) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: serverName})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func hup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// TestServeCertSNI serves two certificates: each handshake gets the one for
// its server name, and the first without one.
func TestServeCertSNI(t *testing.T) {
	www, _ := tree(t, 10)
	dir := t.TempDir()
	ca, ka, a := certFiles(t, dir, "a", "a.test")
	cb, kb, b := certFiles(t, dir, "b", "b.test")
	ts := startServe(t, &serveOptions{dir: www, certOptions: certOptions{certFiles: []string{ca, cb}, keyFiles: []string{ka, kb}}})
	for name, want := range map[string]*x509.Certificate{"a.test": a, "b.test": b, "": a, "c.test": a} {
		if got := peerCert(t, ts.addr, name); !got.Equal(want) {
			t.Errorf("SNI %q: got the certificate for %v", name, got.DNSNames)
		}
	}
}

// TestServeReload sends SIGHUP to a running serve: new handshakes get the
// new certificate, a connection already open goes on, and bad files keep
// the certificate in place. SIGHUP does not end the process.
func TestServeReload(t *testing.T) {
	www, _ := tree(t, 10)
	dir := t.TempDir()
	certFile, keyFile, old := certFiles(t, dir, "site", "site.test")
	addr, logs, stop := runCommand(t, "serve", "--addr", "127.0.0.1:0", "--cert", certFile, "--key", keyFile, www)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "https://"), "/")

	// A keep-alive connection opened before the reload.
	kept, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	br := bufio.NewReader(kept)
	request := func() {
		t.Helper()
		io.WriteString(kept, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request on the connection opened before SIGHUP: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "hello\n" {
			t.Errorf("request on the connection opened before SIGHUP: %s %q", resp.Status, b)
		}
	}
	request()

	_, _, renewed := certFiles(t, dir, "site", "site.test") // same files, new certificate
	hup(t)
	waitLog(t, logs, "certificates reloaded")
	if got := peerCert(t, addr, "site.test"); !got.Equal(renewed) {
		t.Errorf("after SIGHUP: the old certificate (%v)", got.Equal(old))
	}
	request()

	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	hup(t)
	waitLog(t, logs, "reloading the certificates failed")
	if got := peerCert(t, addr, "site.test"); !got.Equal(renewed) {
		t.Error("after a failed reload: not the certificate in place before it")
	}
	request()
	if s := stop(); s != 0 {
		t.Errorf("exit status %d; log:\n%s", s, logs)
	}
}

// TestProxyReload: SIGHUP reloads the proxy's certificate too, and a
// self-signed one is kept; neither ends the process.
func TestProxyReload(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dir := t.TempDir()
	certFile, keyFile, _ := certFiles(t, dir, "p", "p.test")
	addr, logs, stop := runCommand(t, "proxy", "--listen", "127.0.0.1:0", "--to", backend.Addr().String(), "--cert", certFile, "--key", keyFile)
	_, _, renewed := certFiles(t, dir, "p", "p.test")
	hup(t)
	waitLog(t, logs, "certificates reloaded")
	if got := peerCert(t, addr, "p.test"); !got.Equal(renewed) {
		t.Error("after SIGHUP: the old certificate")
	}
	if s := stop(); s != 0 {
		t.Errorf("exit status %d; log:\n%s", s, logs)
	}

	_, logs, stop = runCommand(t, "proxy", "--listen", "127.0.0.1:0", "--to", backend.Addr().String())
	hup(t)
	waitLog(t, logs, "keeping the self-signed certificate")
	if s := stop(); s != 0 {
		t.Errorf("exit status %d; log:\n%s", s, logs)
	}
}
