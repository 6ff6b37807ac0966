package nginxref

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	c := Config{Root: "/srv/www", Addr: "127.0.0.1:8443", Cert: "/k/cert.pem", Key: "/k/key.pem",
		KTLS: true, HTTP2: true, Workers: 2, Ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256", Ciphersuites: "TLS_AES_128_GCM_SHA256"}
	b, err := c.Render("1.22.1", "/tmp/n")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"worker_processes 2;",
		`pid "/tmp/n/nginx.pid";`,
		"error_log stderr warn;",
		`client_body_temp_path "/tmp/n/client_body";`,
		`scgi_temp_path "/tmp/n/scgi";`,
		"sendfile on;",
		"keepalive_requests 1000000;",
		"listen 127.0.0.1:8443 ssl http2;",
		`ssl_certificate "/k/cert.pem";`,
		`ssl_certificate_key "/k/key.pem";`,
		"ssl_protocols TLSv1.2 TLSv1.3;",
		"ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;",
		"ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;",
		"ssl_conf_command Options KTLS;",
		`root "/srv/www";`,
	} {
		if !strings.Contains(conf, "\n"+strings.TrimSpace(want)+"\n") && !strings.Contains(conf, " "+want+"\n") {
			t.Errorf("missing %q in\n%s", want, conf)
		}
	}
	for _, bad := range []string{"daemon", "http2 on;"} {
		if strings.Contains(conf, bad) {
			t.Errorf("unexpected %q in\n%s", bad, conf)
		}
	}
	if strings.Count(conf, "{") != strings.Count(conf, "}") {
		t.Errorf("unbalanced braces in\n%s", conf)
	}

	// nginx 1.25.1 and later: the http2 directive; without KTLS no Options.
	c.KTLS, c.Workers, c.Ciphers, c.Ciphersuites = false, 0, "", ""
	b, err = c.Render("1.26.3", "/tmp/n")
	if err != nil {
		t.Fatal(err)
	}
	conf = string(b)
	for _, want := range []string{"listen 127.0.0.1:8443 ssl;", "http2 on;", "worker_processes 1;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("missing %q in\n%s", want, conf)
		}
	}
	for _, bad := range []string{"KTLS", "ssl_ciphers", "Ciphersuites"} {
		if strings.Contains(conf, bad) {
			t.Errorf("unexpected %q in\n%s", bad, conf)
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	ok := Config{Root: "/srv", Addr: "127.0.0.1:1", Cert: "/c", Key: "/k"}
	for name, mod := range map[string]func(*Config){
		"no root":        func(c *Config) { c.Root = "" },
		"dollar in path": func(c *Config) { c.Root = "/srv/$host" },
		"quote in path":  func(c *Config) { c.Cert = `/c"` },
		"no port":        func(c *Config) { c.Addr = "127.0.0.1" },
		"semicolon addr": func(c *Config) { c.Addr = "127.0.0.1:1; x" },
		"semicolon":      func(c *Config) { c.Ciphers = "HIGH; user x" },
		"brace":          func(c *Config) { c.Protocols = "TLSv1.3 }" },
	} {
		c := ok
		mod(&c)
		if _, err := c.Render("1.22.1", "/tmp/n"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ok.Render("1.22.1", "/tmp/n"); err != nil {
		t.Error(err)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"nginx version: nginx/1.22.1\n":          "1.22.1",
		"nginx version: nginx/1.26.3 (Debian)\n": "1.26.3",
		"openresty/1.21":                         "",
	} {
		if got := parseVersion(in); got != want {
			t.Errorf("parseVersion(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		v    string
		want bool
	}{{"1.22.1", false}, {"1.25.0", false}, {"1.25.1", true}, {"1.25", false}, {"1.26", true}, {"2.0", true}} {
		if got := atLeast(c.v, 1, 25, 1); got != c.want {
			t.Errorf("atLeast(%q, 1.25.1) = %v", c.v, got)
		}
	}
}

// needNginx returns the nginx binary; without it the test skips on a
// developer's machine and fails in CI and in the lab.
func needNginx(t *testing.T) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("KTLS_LAB") == "1" {
			t.Fatalf("%v (install the Debian package nginx; the lab puts it into the guest)", err)
		}
		t.Skip(err)
	}
	return bin
}

// fixture is a document root with one file and a certificate.
type fixture struct {
	root, cert, key string
	file            []byte
	pool            *x509.CertPool
}

func newFixture(t *testing.T, size int) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{root: filepath.Join(dir, "www"), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	if err := os.Mkdir(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	f.file = make([]byte, size)
	rand.Read(f.file)
	if err := os.WriteFile(filepath.Join(f.root, "file.bin"), f.file, 0o644); err != nil {
		t.Fatal(err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	f.pool = x509.NewCertPool()
	f.pool.AddCert(cert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) config(ktls bool) Config {
	return Config{Root: f.root, Addr: "127.0.0.1:0", Cert: f.cert, Key: f.key, KTLS: ktls}
}

// client returns an HTTP client that speaks the TLS version to the server.
func (f *fixture) client(version uint16, http2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: f.pool, ServerName: "localhost", MinVersion: version, MaxVersion: version},
		ForceAttemptHTTP2: http2,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// get fetches /file.bin and checks its content and protocol.
func (f *fixture) get(t *testing.T, c *http.Client, addr string, wantProto string) {
	t.Helper()
	resp, err := c.Get("https://" + addr + "/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, f.file) {
		t.Fatalf("GET /file.bin: %s, %d bytes (sha256 %x), want %d bytes (sha256 %x)",
			resp.Status, len(body), sha256.Sum256(body), len(f.file), sha256.Sum256(f.file))
	}
	if resp.Proto != wantProto {
		t.Fatalf("protocol %s, want %s", resp.Proto, wantProto)
	}
}

// TestStart serves a file over TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2, with
// the kernel's TLS off (on the host and in the lab).
func TestStart(t *testing.T) {
	needNginx(t)
	f := newFixture(t, 100<<10)
	cfg := f.config(false)
	cfg.HTTP2 = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pid() <= 0 {
		t.Errorf("Pid() = %d", s.Pid())
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, h2 := range []bool{false, true} {
			c := f.client(v, h2)
			want := "HTTP/1.1"
			if h2 {
				want = "HTTP/2.0"
			}
			f.get(t, c, s.Addr, want)
			c.CloseIdleConnections()
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v\n%s", err, s.ErrorLog())
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// TestStartFails reports nginx's own error when it cannot start.
func TestStartFails(t *testing.T) {
	needNginx(t)
	f := newFixture(t, 1)
	cfg := f.config(false)
	cfg.Key = filepath.Join(t.TempDir(), "missing.pem")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err == nil {
		s.Stop()
		t.Fatal("Start with a missing key: no error")
	}
	if !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("error does not name the key file: %v", err)
	}
}

func TestBinaryNotFound(t *testing.T) {
	_, err := Start(context.Background(), Config{Binary: filepath.Join(t.TempDir(), "nginx")})
	if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("Start with a missing binary: %v", err)
	}
}
