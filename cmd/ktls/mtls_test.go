package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// mtlsCA is a certificate authority made for a test; its certificate is in
// file (PEM).
type mtlsCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	file string
}

// newMTLSCA makes a CA named name and writes its certificate to DIR/name.pem.
func newMTLSCA(t *testing.T, dir, name string) *mtlsCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &mtlsCA{cert: cert, key: key, pool: x509.NewCertPool(), file: filepath.Join(dir, name+".pem")}
	ca.pool.AddCert(cert)
	if err := os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue returns a certificate signed by ca: a client certificate with
// subject CN cn and the URI SANs uris, or, with cn "", a server
// certificate for localhost and 127.0.0.1.
func (ca *mtlsCA) issue(t *testing.T, cn string, uris ...string) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if cn == "" {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	return ca.sign(t, tmpl)
}

// sign returns a certificate from tmpl signed by ca, with a new key and
// serial number.
func (ca *mtlsCA) sign(t *testing.T, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// expired returns a client certificate from ca that expired an hour ago.
func (ca *mtlsCA) expired(t *testing.T) tls.Certificate {
	return ca.sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "old"}, NotBefore: time.Now().Add(-2 * time.Hour),
		NotAfter: time.Now().Add(-time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// issueFiles is issue writing the certificate and key to DIR/NAME.crt and
// DIR/NAME.key.
func (ca *mtlsCA) issueFiles(t *testing.T, dir, name, cn string, uris ...string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, keyFile, ca.issue(t, cn, uris...))
	return certFile, keyFile
}

// mtlsSetup is a CA, a server certificate from it, the client
// certificates alice (CN alice, URI spiffe://test/alice) and carol (CN
// carol, URI spiffe://test/carol) from it, and eve from another CA.
type mtlsSetup struct {
	dir                 string
	ca, other           *mtlsCA
	serverCert          certOptions
	alice, carol, eve   tls.Certificate
	aliceCert, aliceKey string
	eveCert, eveKey     string
}

func newMTLS(t *testing.T) *mtlsSetup {
	t.Helper()
	dir := t.TempDir()
	s := &mtlsSetup{dir: dir, ca: newMTLSCA(t, dir, "ca"), other: newMTLSCA(t, dir, "other")}
	c, k := s.ca.issueFiles(t, dir, "server", "")
	s.serverCert = certOptions{certFiles: []string{c}, keyFiles: []string{k}}
	s.aliceCert, s.aliceKey = s.ca.issueFiles(t, dir, "alice", "alice", "spiffe://test/alice")
	s.alice, _ = tls.LoadX509KeyPair(s.aliceCert, s.aliceKey)
	s.carol = s.ca.issue(t, "carol", "spiffe://test/carol")
	s.eveCert, s.eveKey = s.other.issueFiles(t, dir, "eve", "eve")
	s.eve, _ = tls.LoadX509KeyPair(s.eveCert, s.eveKey)
	return s
}

// client returns an HTTP client that verifies the server against the
// setup's CA and presents cert (none if nil), with TLS version vers at
// most.
func (s *mtlsSetup) client(cert *tls.Certificate, vers uint16, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: s.ca.pool, MaxVersion: vers}
	if cert != nil {
		// Sent whatever authorities the server names, as curl and openssl
		// do (Certificates would send none from another CA).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}}
}

// mtlsGet requests url with c and returns the error (nil on a 200 with
// "hello\n").
func mtlsGet(c *http.Client, url string) error {
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && (resp.StatusCode != 200 || string(b) != "hello\n") {
		err = fmt.Errorf("%s %q", resp.Status, b)
	}
	return err
}

var mtlsVersions = map[uint16]string{tls.VersionTLS12: "TLS 1.2", tls.VersionTLS13: "TLS 1.3"}

// mtlsNoCertAlert is what a client without a certificate reads: in TLS 1.3 a
// certificate_required alert (after its own handshake completed), in TLS
// 1.2 a handshake_failure alert.
var mtlsNoCertAlert = map[uint16]string{tls.VersionTLS12: "remote error: tls: handshake failure", tls.VersionTLS13: "remote error: tls: certificate required"}

func TestMTLSCommandLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	key := filepath.Join(dir, "key.pem")
	os.WriteFile(key, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o644)
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("no PEM here\n"), 0o644)
	for _, tc := range []struct {
		args   []string
		status int
		err    string
	}{
		{[]string{"serve", "--allow-cn", "a"}, 2, "--client-cert-optional, --allow-cn and --allow-uri go with --client-ca"},
		{[]string{"serve", "--client-cert-optional"}, 2, "go with --client-ca"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--allow-uri", "spiffe://x"}, 2, "go with --client-ca"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--upstream-tls", "--client-ca", "ca.pem"}, 2, "--client-ca is for the TLS listener, not with --upstream-tls"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--upstream-cert", "c.pem", "--upstream-key", "k.pem"}, 2, "--upstream-cert and --upstream-key go with --upstream-tls"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--upstream-tls", "--upstream-cert", "c.pem"}, 2, "--upstream-cert and --upstream-key go together"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--upstream-tls", "--upstream-key", "k.pem"}, 2, "--upstream-cert and --upstream-key go together"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--client-ca", filepath.Join(dir, "missing.pem")}, 1, "--client-ca open " + filepath.Join(dir, "missing.pem") + ": no such file"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--client-ca", bad}, 1, "--client-ca " + bad + ": certificate 1: x509: "},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--client-ca", key}, 1, `PEM block 1 is a \"PRIVATE KEY\", want CERTIFICATE`},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--client-ca", empty}, 1, empty + ": no PEM certificates"},
		{[]string{"proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:1", "--client-ca", empty}, 1, "no PEM certificates"},
		{[]string{"proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:1", "--upstream-tls", "--upstream-cert", bad, "--upstream-key", key}, 1, "--upstream-cert " + bad + " --upstream-key " + key + ": x509: malformed certificate"},
	} {
		var stdout, stderr bytes.Buffer
		status := run(context.Background(), tc.args, &stdout, &stderr)
		if status != tc.status || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("ktls %q: status %d, stderr %q; want %d, %q", tc.args, status, stderr.String(), tc.status, tc.err)
		}
	}
	var stdout bytes.Buffer
	for _, cmd := range []string{"serve", "proxy"} {
		stdout.Reset()
		run(context.Background(), []string{"help", cmd}, &stdout, &stdout)
		if !strings.Contains(stdout.String(), "--client-ca FILE") {
			t.Errorf("help %s: no --client-ca", cmd)
		}
	}
	if !strings.Contains(stdout.String(), "--upstream-cert FILE") {
		t.Error("help proxy: no --upstream-cert")
	}
}

// TestServeClientCA: with --client-ca, clients with a certificate from the
// CA are served over TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2, and their
// identity is in the access log (JSON); clients without a certificate get
// certificate_required (TLS 1.3) or handshake_failure (TLS 1.2), clients
// with one from another CA unknown_ca, with an expired one
// certificate_expired.
func TestServeClientCA(t *testing.T) {
	www, _ := tree(t, 10)
	s := newMTLS(t)
	url, logs, stop := runCommand(t, "serve", "--addr", "127.0.0.1:0", "--log-format", "json",
		"--cert", s.serverCert.certFiles[0], "--key", s.serverCert.keyFiles[0], "--client-ca", s.ca.file, www)
	url = strings.Replace(url, "127.0.0.1", "localhost", 1)
	expired := s.ca.expired(t)
	for vers, name := range mtlsVersions {
		for _, h2 := range []bool{false, true} {
			if err := mtlsGet(s.client(&s.alice, vers, h2), url+"hello.txt"); err != nil {
				t.Errorf("%s h2=%v: alice: %v", name, h2, err)
			}
		}
		err := mtlsGet(s.client(nil, vers, false), url+"hello.txt")
		if err == nil || !strings.Contains(err.Error(), mtlsNoCertAlert[vers]) {
			t.Errorf("%s: no certificate: %v, want %q", name, err, mtlsNoCertAlert[vers])
		}
		err = mtlsGet(s.client(&s.eve, vers, false), url+"hello.txt")
		if err == nil || !strings.Contains(err.Error(), "remote error: tls: unknown certificate authority") {
			t.Errorf("%s: a certificate from another CA: %v", name, err)
		}
		err = mtlsGet(s.client(&expired, vers, false), url+"hello.txt")
		if err == nil || !strings.Contains(err.Error(), "remote error: tls: expired certificate") {
			t.Errorf("%s: an expired certificate: %v", name, err)
		}
	}
	if status := stop(); status != 0 {
		t.Errorf("exit status %d", status)
	}
	var requests int
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if m["msg"] != "request" {
			continue
		}
		requests++
		if m["client_cn"] != "alice" || m["client_san"] != "spiffe://test/alice" {
			t.Errorf("request line without alice's identity: %s", l)
		}
	}
	if requests != 4 {
		t.Errorf("%d request lines, want 4:\n%s", requests, logs)
	}
	for _, want := range []string{"tls: client didn't provide a certificate", "certificate signed by unknown authority", "certificate has expired", `"msg":"client CA"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, logs)
		}
	}
}

// TestServeClientCAOptions: --client-cert-optional serves clients without
// a certificate (and logs no identity) but still refuses a bad one;
// --allow-cn and --allow-uri accept the names given (either may match) and
// refuse other certificates from the CA with bad_certificate.
func TestServeClientCAOptions(t *testing.T) {
	www, _ := tree(t, 10)
	s := newMTLS(t)
	ts := startServe(t, &serveOptions{dir: www, certOptions: s.serverCert, clientAuth: clientAuthOptions{caFile: s.ca.file, optional: true}})
	url := "https://localhost:" + strings.Split(ts.addr, ":")[1] + "/hello.txt"
	if err := mtlsGet(s.client(nil, tls.VersionTLS13, false), url); err != nil {
		t.Errorf("optional, no certificate: %v", err)
	}
	if err := mtlsGet(s.client(&s.eve, tls.VersionTLS13, false), url); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("optional, another CA: %v", err)
	}
	if strings.Contains(ts.logs.String(), "client_cn") {
		t.Errorf("an identity logged without a certificate:\n%s", ts.logs)
	}

	ts = startServe(t, &serveOptions{dir: www, certOptions: s.serverCert,
		clientAuth: clientAuthOptions{caFile: s.ca.file, allowCN: []string{"alice", "bob"}, allowURI: []string{"spiffe://test/carol"}}})
	url = "https://localhost:" + strings.Split(ts.addr, ":")[1] + "/hello.txt"
	dave := s.ca.issue(t, "dave", "spiffe://test/dave")
	for vers, name := range mtlsVersions {
		for _, c := range []*tls.Certificate{&s.alice, &s.carol} {
			if err := mtlsGet(s.client(c, vers, false), url); err != nil {
				t.Errorf("%s: %s: %v", name, c.Leaf.Subject.CommonName, err)
			}
		}
		if err := mtlsGet(s.client(&dave, vers, false), url); err == nil || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
			t.Errorf("%s: dave: %v", name, err)
		}
	}
	if !strings.Contains(ts.logs.String(), `client certificate CN=\"dave\" SAN=\"spiffe://test/dave\" is not allowed`) {
		t.Errorf("the refusal is not logged:\n%s", ts.logs)
	}
	if !strings.Contains(ts.logs.String(), "client_cn=carol client_san=spiffe://test/carol") {
		t.Errorf("carol's identity is not logged:\n%s", ts.logs)
	}
}

// mtlsTool returns the path of the program name; without it the test
// fails in CI (test.sh installs it), has nothing to check in the kernel
// lab's guest, and is skipped elsewhere.
func mtlsTool(t *testing.T, name string) (path string, ok bool) {
	t.Helper()
	p, err := exec.LookPath(name)
	switch {
	case err == nil:
		return p, true
	case os.Getenv("KTLS_LAB") == "1":
		// A skip would fail the lab run; TestKernelClientCert covers the
		// kernel there with Go's clients.
		t.Logf("no %s in the lab's guest: nothing to check", name)
		return "", false
	case os.Getenv("CI") == "true":
		t.Fatalf("%s is needed: %v", name, err)
	}
	t.Skipf("no %s: %v", name, err)
	return "", false
}

// TestServeClientCACurl: curl with --cert/--key and --cacert is served and
// its identity logged (text format); without a certificate it sees the
// certificate_required (TLS 1.3) or handshake_failure (TLS 1.2) alert,
// with one from another CA unknown_ca, with an expired one
// certificate_expired.
func TestServeClientCACurl(t *testing.T) {
	curl, ok := mtlsTool(t, "curl")
	if !ok {
		return
	}
	www, _ := tree(t, 10)
	s := newMTLS(t)
	ts := startServe(t, &serveOptions{dir: www, certOptions: s.serverCert, clientAuth: clientAuthOptions{caFile: s.ca.file}})
	url := "https://localhost:" + strings.Split(ts.addr, ":")[1] + "/hello.txt"
	run := func(args ...string) (string, error) {
		out, err := exec.Command(curl, append([]string{"-sS", "--cacert", s.ca.file}, append(args, url)...)...).CombinedOutput()
		return string(out), err
	}
	for _, proto := range []string{"--http1.1", "--http2"} {
		if out, err := run(proto, "--cert", s.aliceCert, "--key", s.aliceKey); err != nil || out != "hello\n" {
			t.Errorf("curl %s with alice's certificate: %v: %q", proto, err, out)
		}
	}
	expiredCert, expiredKey := filepath.Join(s.dir, "expired.crt"), filepath.Join(s.dir, "expired.key")
	writePEM(t, expiredCert, expiredKey, s.ca.expired(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tlsv1.3"}, "alert certificate required"},
		{[]string{"--cert", expiredCert, "--key", expiredKey}, "alert certificate expired"},
		{[]string{"--tls-max", "1.2"}, "alert handshake failure"},
		{[]string{"--tlsv1.3", "--cert", s.eveCert, "--key", s.eveKey}, "alert unknown ca"},
		{[]string{"--tls-max", "1.2", "--cert", s.eveCert, "--key", s.eveKey}, "alert unknown ca"},
	} {
		out, err := run(tc.args...)
		t.Logf("curl %q: %v: %s", tc.args, err, strings.TrimSpace(out))
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("curl %q: %v: %q, want %q", tc.args, err, out, tc.want)
		}
	}
	re := regexp.MustCompile(`msg=request .* client_cn=alice client_san=spiffe://test/alice`)
	if n := len(re.FindAllString(ts.logs.String(), -1)); n != 2 {
		t.Errorf("%d request lines with alice's identity, want 2:\n%s", n, ts.logs)
	}
}

// mtlsBackend accepts TLS connections that must present a client
// certificate from s.ca, with TLS version vers at most, sends the common
// name of each client's certificate to cn and hands the connection to
// serve.
func (s *mtlsSetup) mtlsBackend(t *testing.T, vers uint16, cn chan<- string, serve func(net.Conn)) string {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{s.ca.issue(t, "")}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: s.ca.pool, MaxVersion: vers}
	return listenBackend(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			cn <- "error: " + err.Error()
			tc.Close()
			return
		}
		cn <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		serve(tc)
	})
}

// mtlsProxy starts a proxy with o in the given mode: with --client-ca of
// s to a plain backend, or with --upstream-tls, verifying the server
// against s's CA and presenting proxy's certificate (--upstream-cert) to a
// backend that requires one (mtlsBackend). The backend runs e; with
// --upstream-tls the common names it sees go to cn.
func (s *mtlsSetup) mtlsProxy(t *testing.T, upstreamTLS bool, vers uint16, o *proxyOptions, e *exchange, cn chan<- string) (string, *syncBuffer) {
	t.Helper()
	o.upstreamTLS = upstreamTLS
	if upstreamTLS {
		o.to = s.mtlsBackend(t, vers, cn, e.serve)
		o.caFile, o.serverName = s.ca.file, "localhost"
		c, k := s.ca.issueFiles(t, t.TempDir(), "proxy", "proxy", "spiffe://test/proxy")
		o.upstreamCert = upstreamCertOptions{c, k}
	} else {
		o.to = listenBackend(t, e.serve)
		o.certOptions = s.serverCert
		o.clientAuth = clientAuthOptions{caFile: s.ca.file}
	}
	return startProxy(t, o)
}

// mtlsExchange relays a few bytes each way through a proxy of mtlsProxy
// and returns its connection log line.
func (s *mtlsSetup) mtlsExchange(t *testing.T, upstreamTLS bool, vers uint16, o *proxyOptions, size int) string {
	t.Helper()
	up, down := random(size), random(size/2+3)
	e := &exchange{got: make(chan []byte, 1), reply: down}
	cn := make(chan string, 1)
	addr, logs := s.mtlsProxy(t, upstreamTLS, vers, o, e, cn)
	var c net.Conn
	var err error
	if upstreamTLS {
		c, err = net.Dial("tcp", addr)
	} else {
		c, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: s.ca.pool, ServerName: "localhost", Certificates: []tls.Certificate{s.alice}, MaxVersion: vers})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkExchange(t, c, e, up, down)
	if upstreamTLS {
		if got := <-cn; got != "proxy" {
			t.Errorf("the backend saw the client certificate %q, want proxy's", got)
		}
	}
	waitLog(t, logs, "msg=connection ")
	return logLine(logs, "msg=connection ")
}

// TestProxyClientCert: the proxy requires a client certificate from
// --client-ca and logs its identity; with --upstream-tls it presents
// --upstream-cert to a backend that requires one, over TLS 1.2 and 1.3.
// Without --upstream-cert the backend refuses it.
func TestProxyClientCert(t *testing.T) {
	s := newMTLS(t)
	for vers, name := range mtlsVersions {
		for _, upstreamTLS := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/upstream-tls=%v", name, upstreamTLS), func(t *testing.T) {
				line := s.mtlsExchange(t, upstreamTLS, vers, &proxyOptions{}, 5000)
				want := " end=clean "
				if !upstreamTLS {
					want = "client_cn=alice client_san=spiffe://test/alice"
				}
				if !strings.Contains(line, want) || !strings.Contains(line, `tls="`+name+`"`) || strings.Contains(line, " err=") {
					t.Errorf("connection line %q, want %q", line, want)
				}
			})
		}
	}
	// No --upstream-cert: the backend refuses the proxy.
	cn := make(chan string, 1)
	addr := s.mtlsBackend(t, tls.VersionTLS12, cn, func(c net.Conn) { c.Close() })
	paddr, logs := startProxy(t, &proxyOptions{upstreamTLS: true, to: addr, caFile: s.ca.file, serverName: "localhost"})
	c := proxyClient(t, paddr, true)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	_, err := c.Read(make([]byte, 1))
	checkAbnormalErr(t, c, err)
	if got := <-cn; !strings.Contains(got, "client didn't provide a certificate") {
		t.Errorf("backend: %q", got)
	}
	waitLog(t, logs, "end=handshake_error")
	if line := logLine(logs, "msg=connection "); !strings.Contains(line, "remote error: tls: handshake failure") {
		t.Errorf("connection line %q", line)
	}
}

// TestProxyClientCertOpenSSL: openssl s_client with -cert and -key goes
// through the proxy and its identity is logged; without a certificate it
// reads the certificate_required alert, and the proxy logs why.
func TestProxyClientCertOpenSSL(t *testing.T) {
	openssl, ok := mtlsTool(t, "openssl")
	if !ok {
		return
	}
	s := newMTLS(t)
	// The backend answers the first line and ends its stream, which ends
	// s_client.
	backend := listenBackend(t, func(c net.Conn) {
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "pong "+line)
		closeWrite(c)
		io.Copy(io.Discard, c)
	})
	addr, logs := startProxy(t, &proxyOptions{to: backend, certOptions: s.serverCert, clientAuth: clientAuthOptions{caFile: s.ca.file}})
	sClient := func(args ...string) (string, error) {
		cmd := exec.Command(openssl, append([]string{"s_client", "-connect", addr, "-CAfile", s.ca.file,
			"-verify_return_error", "-verify_hostname", "localhost", "-quiet"}, args...)...)
		stdin, _ := cmd.StdinPipe()
		defer stdin.Close() // s_client quits at the server's end of stream, not at that of stdin
		io.WriteString(stdin, "ping\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := sClient("-cert", s.aliceCert, "-key", s.aliceKey)
	if err != nil || !strings.Contains(out, "pong ping\n") {
		t.Errorf("s_client -cert: %v: %q", err, out)
	}
	waitLog(t, logs, "msg=connection ")
	if line := logLine(logs, "msg=connection "); !strings.Contains(line, "end=clean") || !strings.Contains(line, "client_cn=alice client_san=spiffe://test/alice") {
		t.Errorf("connection line %q", line)
	}
	out, err = sClient("-tls1_3")
	t.Logf("s_client without a certificate: %v: %s", err, out)
	if err == nil || !strings.Contains(out, "alert certificate required") {
		t.Errorf("s_client without a certificate: %v: %q", err, out)
	}
	waitLog(t, logs, "client didn't provide a certificate")
}

// TestKernelClientCert: after handshakes with client certificates (TLS 1.2
// and 1.3) both directions go to the kernel, in serve and in the proxy on
// either side (the client certificate received by the listener, or sent
// to the upstream).
func TestKernelClientCert(t *testing.T) {
	ktlstest.RequireKernel(t)
	www, big := tree(t, 1<<20)
	s := newMTLS(t)
	ts := startServe(t, &serveOptions{dir: www, certOptions: s.serverCert, clientAuth: clientAuthOptions{caFile: s.ca.file},
		tx: ktls.OffloadKernel, rx: ktls.OffloadKernel})
	url := "https://localhost:" + strings.Split(ts.addr, ":")[1]
	inKernel := func(tx, rx string) bool {
		return (tx == "kernel-sw" || tx == "kernel-ifnet") && (rx == "kernel-sw" || rx == "kernel-ifnet")
	}
	for vers, name := range mtlsVersions {
		c := s.client(&s.alice, vers, true)
		if resp, body := get(t, c, url+"/big.bin"); resp.StatusCode != 200 || body != string(big) {
			t.Errorf("%s: %s, %d bytes", name, resp.Status, len(body))
		}
		c.CloseIdleConnections()
		re := regexp.MustCompile(`msg=connection .* tls="` + name + `" .* tx=(\S+) rx=(\S+) client_cn=alice`)
		if m := re.FindStringSubmatch(ts.logs.String()); m == nil || !inKernel(m[1], m[2]) {
			t.Errorf("serve %s: connection line %q, want tx and rx in the kernel and alice", name, m)
		}
		for _, upstreamTLS := range []bool{false, true} {
			line := s.mtlsExchange(t, upstreamTLS, vers, &proxyOptions{tx: ktls.OffloadKernel, rx: ktls.OffloadKernel}, 100000)
			m := regexp.MustCompile(` end=clean .* tx=(\S+) rx=(\S+)`).FindStringSubmatch(line)
			if m == nil || !inKernel(m[1], m[2]) || !upstreamTLS && !strings.Contains(line, "client_cn=alice") {
				t.Errorf("proxy %s upstream-tls=%v: connection line %q, want a clean end, tx and rx in the kernel (and alice)", name, upstreamTLS, line)
			}
			t.Logf("proxy %s upstream-tls=%v: %s", name, upstreamTLS, line)
		}
	}
}

// TestProxyClientCertAlertNoReset: the proxy ends a TLS 1.3 client without
// a certificate with the certificate_required alert and a FIN, not a reset
// (the client's Finished is still unread when the handshake fails).
func TestProxyClientCertAlertNoReset(t *testing.T) {
	s := newMTLS(t)
	addr, _ := startProxy(t, &proxyOptions{to: listenBackend(t, func(c net.Conn) { c.Close() }), certOptions: s.serverCert,
		clientAuth: clientAuthOptions{caFile: s.ca.file}})
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(time.Minute)) // a guard against a hang
	c := tls.Client(raw, &tls.Config{RootCAs: s.ca.pool, ServerName: "localhost", MaxVersion: tls.VersionTLS13})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "hello")
	if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("read %v, want the certificate_required alert", err)
	}
	if n, err := raw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("after the alert: %d bytes, %v; want the end of the stream (FIN)", n, err)
	}
}
