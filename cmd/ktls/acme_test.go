package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"golang.org/x/crypto/acme"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// testDomain is the name the tests get certificates for; the test DNS
// server resolves every name to 127.0.0.1.
const testDomain = "ktls.test"

// pebble is Pebble, the ACME test CA of Let's Encrypt, running in the test
// process: its web front end on an HTTPS loopback port, its validation
// authority (which really connects, no PEBBLE_VA_ALWAYS_VALID) resolving
// names with a DNS server of the test that answers 127.0.0.1 for all, and
// connecting for TLS-ALPN-01 to a forwarder of the test that relays to the
// server under test once its port is known (setTarget).
type pebble struct {
	directory string         // ACME directory URL
	caFile    string         // PEM of the HTTPS certificate of directory, for --acme-ca
	roots     *x509.CertPool // the root of the certificates it issues
	logs      *syncBuffer
	target    chan string // receives the address of the server under test
}

// startPebble starts Pebble issuing certificates valid for validity
// seconds.
func startPebble(t *testing.T, validity uint64) *pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // validate at once
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no random badNonce errors
	t.Setenv("PEBBLE_AUTHZREUSE", "0")      // a new challenge for each order, renewals too
	p := &pebble{logs: new(syncBuffer), target: make(chan string, 1)}
	logger := log.New(p.logs, "pebble ", log.Lmicroseconds)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", p.logs)
		}
	})

	dnsLn := listenLoopback(t)
	dnsSrv := &dns.Server{Listener: dnsLn, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	go dnsSrv.ActivateAndServe()
	t.Cleanup(func() { dnsSrv.Shutdown() })

	fwd := listenLoopback(t)
	go p.forward(fwd)

	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: validity}})
	validator := va.New(logger, 0, fwd.Addr().(*net.TCPAddr).Port, false, dnsLn.Addr().String(), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewUnstartedServer(front.Handler())
	srv.Config.ErrorLog = logger
	srv.StartTLS()
	t.Cleanup(srv.Close)

	p.directory = srv.URL + wfe.DirectoryPath
	p.caFile = filepath.Join(t.TempDir(), "pebble-https.pem")
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(authority.GetRootCert(0).Cert)
	return p
}

// listenLoopback listens on a free loopback port until the test ends, with
// TCP (not the MPTCP Go listens with by default), as systemd's sockets are.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// setTarget sends the validation connections to addr from now on.
func (p *pebble) setTarget(addr string) { p.target <- addr }

// forward relays each connection of ln to the target, once it is known.
func (p *pebble) forward(ln net.Listener) {
	target := ""
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if target == "" {
			target = <-p.target
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(u, c)
				u.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			io.Copy(c, u)
			c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

// options returns the --acme options of a server getting its certificate
// for testDomain from p.
func (p *pebble) options(t *testing.T) certOptions {
	return certOptions{acme: acmeOptions{domains: []string{testDomain}, cache: t.TempDir(), directory: p.directory, caFile: p.caFile}}
}

// verifiedLeaf connects to addr as a client verifying the certificate for
// testDomain against Pebble's root and returns the certificate served.
func (p *pebble) verifiedLeaf(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: testDomain, RootCAs: p.roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs := c.ConnectionState()
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) != 3 {
		t.Fatalf("verified chains %v, want leaf, intermediate and root", cs.VerifiedChains)
	}
	return cs.PeerCertificates[0]
}

// TestServeACME: ktls serve --acme gets its certificate from Pebble by
// TLS-ALPN-01, serves it with its chain, and, as the certificate is valid
// 12 seconds, renews it (a third of the lifetime before it ends) and
// serves the new one without a restart.
func TestServeACME(t *testing.T) {
	p := startPebble(t, 12)
	www, _ := tree(t, 10)
	ts := startServe(t, &serveOptions{dir: www, certOptions: p.options(t)})
	p.setTarget(ts.addr)

	first := p.verifiedLeaf(t, ts.addr)
	if len(first.DNSNames) != 1 || first.DNSNames[0] != testDomain {
		t.Errorf("certificate for %v, want %s", first.DNSNames, testDomain)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: testDomain, RootCAs: p.roots}}}
	resp, body := get(t, c, "https://"+ts.addr+"/hello.txt")
	if resp.StatusCode != 200 || body != "hello\n" {
		t.Errorf("%s %q", resp.Status, body)
	}
	c.CloseIdleConnections()

	// The guard only stops a hang.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		leaf := p.verifiedLeaf(t, ts.addr)
		if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Errorf("renewed certificate ends %v, the first %v", leaf.NotAfter, first.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate %x (not after %v) still served", first.SerialNumber, first.NotAfter)
		}
		time.Sleep(100 * time.Millisecond)
	}
	logs := ts.logs.String()
	if n := strings.Count(logs, "ACME certificate obtained"); n < 2 {
		t.Errorf("%d certificates obtained, want 2 or more", n)
	}
	if n := strings.Count(logs, "TLS-ALPN-01 challenge answered"); n < 2 {
		t.Errorf("%d challenges answered, want 2 or more", n)
	}
	if strings.Contains(logs, acme.ALPNProto) {
		t.Errorf("a challenge connection went on to HTTP")
	}
}

// TestKernelServeACME: with a certificate from Pebble, the connection's
// directions go to the kernel after the handshake, as with file
// certificates.
func TestKernelServeACME(t *testing.T) {
	ktlstest.RequireKernel(t)
	p := startPebble(t, 3600)
	www, _ := tree(t, 100<<10)
	o := &serveOptions{dir: www, certOptions: p.options(t)}
	o.tx, o.rx = ktls.OffloadKernel, ktls.OffloadKernel
	ts := startServe(t, o)
	p.setTarget(ts.addr)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: testDomain, RootCAs: p.roots}}}
	resp, body := get(t, c, "https://"+ts.addr+"/big.bin")
	if resp.StatusCode != 200 || len(body) != 100<<10 {
		t.Errorf("%s, %d bytes", resp.Status, len(body))
	}
	c.CloseIdleConnections()
	if !strings.Contains(ts.logs.String(), "TLS-ALPN-01 challenge answered") {
		t.Errorf("no challenge answered")
	}
	waitLog(t, ts.logs, "msg=connection ")
	line := ""
	for l := range strings.SplitSeq(ts.logs.String(), "\n") {
		if strings.Contains(l, "msg=connection ") {
			line = l
		}
	}
	if !strings.Contains(line, " proto=http/1.1 ") || !strings.Contains(line, " tx=kernel-") || !strings.Contains(line, " rx=kernel-") {
		t.Errorf("connection line %q, want http/1.1 with tx and rx in the kernel", line)
	}
	t.Logf("%s", line)
}

// TestProxyACME: ktls proxy --acme terminates TLS with a certificate from
// Pebble.
func TestProxyACME(t *testing.T) {
	p := startPebble(t, 3600)
	e := &exchange{got: make(chan []byte, 1), reply: []byte("down")}
	o := &proxyOptions{certOptions: p.options(t)}
	o.to = listenBackend(t, e.serve)
	addr, _ := startProxy(t, o)
	p.setTarget(addr)
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: testDomain, RootCAs: p.roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkExchange(t, c, e, []byte("up"), []byte("down"))
}

// TestACMEListener: the listener answers a connection offering only
// acme-tls/1 itself, with the challenge configuration, and passes the
// others on with their ClientHello still to be read, even when it came in
// pieces.
func TestACMEListener(t *testing.T) {
	challengeCert, err := selfSigned([]string{testDomain}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	logs := new(syncBuffer)
	a := &acmeCerts{
		challenge: &tls.Config{Certificates: []tls.Certificate{challengeCert}, NextProtos: []string{acme.ALPNProto}},
		logger:    slog.New(slog.NewTextHandler(logs, nil)),
	}
	ln := (&certStore{acme: a}).listener(listenLoopback(t), 10*time.Second)
	defer ln.Close()
	serverCert, err := selfSigned([]string{"other.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan string)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{serverCert}, NextProtos: []string{"http/1.1"}})
			err = tc.Handshake()
			tc.Close()
			accepted <- tc.ConnectionState().ServerName + " " + strconv.FormatBool(err == nil)
		}
	}()

	// The challenge: answered without Accept.
	cc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: testDomain, InsecureSkipVerify: true, NextProtos: []string{acme.ALPNProto}})
	if err != nil {
		t.Fatal(err)
	}
	cs := cc.ConnectionState()
	if cs.NegotiatedProtocol != acme.ALPNProto || !cs.PeerCertificates[0].Equal(challengeCert.Leaf) {
		t.Errorf("challenge: protocol %q, certificate for %v", cs.NegotiatedProtocol, cs.PeerCertificates[0].DNSNames)
	}
	if _, err := cc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("challenge connection: read %v, want EOF", err)
	}
	cc.Close()

	// Others: passed on, with the ClientHello sent in two pieces.
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	split := &splitConn{Conn: raw}
	tc := tls.Client(split, &tls.Config{ServerName: "other.test", InsecureSkipVerify: true, NextProtos: []string{acme.ALPNProto, "http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if got := <-accepted; got != "other.test true" {
		t.Errorf("accepted %q", got)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Errorf("protocol %q", got)
	}
	if !strings.Contains(logs.String(), "TLS-ALPN-01 challenge answered") {
		t.Errorf("log:\n%s", logs)
	}
}

// splitConn writes its first write (the ClientHello) in two pieces.
type splitConn struct {
	net.Conn
	split bool
}

func (c *splitConn) Write(p []byte) (int, error) {
	if c.split || len(p) < 10 {
		return c.Conn.Write(p)
	}
	c.split = true
	n, err := c.Conn.Write(p[:7])
	if err != nil {
		return n, err
	}
	m, err := c.Conn.Write(p[7:])
	return n + m, err
}

// TestACMECommandLine: the --acme flags' errors.
func TestACMECommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--acme", "a.test", "--cert", "c.pem", "--key", "k.pem"}, "--acme and --cert exclude each other"},
		{[]string{"--acme-email", "me@a.test"}, "go with --acme"},
		{[]string{"--acme", "localhost"}, "two labels"},
		{[]string{"--acme", "*.a.test"}, "wildcards"},
		{[]string{"--acme", "127.0.0.1"}, "IP address"},
		{[]string{"--acme", "a.test,b_c.test"}, `"b_c.test": bad character '_'`},
		{[]string{"--acme", "a.test", "--acme-directory", "http://ca.test/dir"}, "want an https:// URL"},
		{[]string{"--acme", "a.test", "--acme-email", "me"}, "want an email address"},
		{[]string{"--acme", "a.test", "--accept-proxy-protocol"}, "--acme does not work with --accept-proxy-protocol"},
	} {
		var stderr bytes.Buffer
		if status := runServe(t.Context(), tc.args, io.Discard, &stderr); status != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("serve %q: status %d, %q; want %q", tc.args, status, stderr.String(), tc.want)
		}
	}
	var stderr bytes.Buffer
	if status := runProxy(t.Context(), []string{"--listen", ":0", "--to", "127.0.0.1:1", "--upstream-tls", "--acme", "a.test"}, io.Discard, &stderr); status != exitUsage || !strings.Contains(stderr.String(), "--acme are for the TLS listener") {
		t.Errorf("proxy --upstream-tls --acme: status %d, %q", status, stderr.String())
	}
}

// TestACMEUnknownDirectory: a directory URL that does not answer as an
// ACME directory stops the server at start with the reason.
func TestACMEUnknownDirectory(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &serveOptions{dir: t.TempDir(), addr: "127.0.0.1:0", certOptions: certOptions{acme: acmeOptions{domains: []string{testDomain}, cache: t.TempDir(), directory: srv.URL + "/nothing", caFile: caFile}}}
	err := o.serve(t.Context(), func() {}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), "--acme-directory "+srv.URL+"/nothing") {
		t.Errorf("serve: %v", err)
	}
}

// TestRecordComplete: when the peek at a ClientHello stops waiting.
func TestRecordComplete(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"\x16\x03\x01\x00", false},
		{"\x16\x03\x01\x00\x02\x01", false},
		{"\x16\x03\x01\x00\x02\x01\x00", true},
		{"\x16\x03\x01\x40\x01", true}, // longer than a record can be
		{"G", true},                    // not TLS: passed on for ktls to refuse
	} {
		if got := recordComplete([]byte(tc.in)); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
	}
}
