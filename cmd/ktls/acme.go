package main

// Certificates from ACME (--acme), for the TLS listeners of serve and proxy.
//
// The ACME client is golang.org/x/crypto/acme/autocert, not
// github.com/caddyserver/certmagic: x/crypto is already a dependency, and
// autocert does what ktls needs (TLS-ALPN-01 challenges, a directory cache,
// renewal in the background at a third of the certificate's lifetime, so
// that Pebble's short-lived certificates exercise it in tests) without
// certmagic's dependencies (zap, libdns, acmez, DNS clients) and features
// ktls does not use (on-demand issuance, DNS-01, clustering).
//
// Certificates are issued by TLS-ALPN-01 on the listener itself: the CA
// connects to port 443 of the domain offering only the ALPN protocol
// "acme-tls/1". acmeListener takes those connections before ktls sees them
// (it peeks at the ClientHello with MSG_PEEK, leaving it on the socket) and
// answers them with crypto/tls alone: they are neither handed to the kernel
// nor served. The other connections go on as they came, so that their
// certificate comes through the same GetCertificate as file certificates
// and their records go to the kernel after the handshake.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ktls-go/ktls/internal/acceptq"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeOptions are the --acme flags of a TLS listener.
type acmeOptions struct {
	domains   []string
	cache     string
	directory string
	email     string
	caFile    string
}

// addACMEFlags defines --acme and its companions on fs.
func addACMEFlags(fs *flag.FlagSet, o *acmeOptions) {
	fs.Func("acme", "get the certificate for `DOMAIN` from an ACME CA (TLS-ALPN-01 on this listener, which must be port 443 of DOMAIN to the CA), renewed in the background; repeat or separate by commas for more names; excludes --cert", func(s string) error {
		for d := range strings.SplitSeq(s, ",") {
			o.domains = append(o.domains, strings.ToLower(strings.TrimSpace(d)))
		}
		return nil
	})
	fs.StringVar(&o.cache, "acme-cache", "", "with --acme: keep account key and certificates under `DIR`, in a subdirectory per CA (default ktls/acme in the user's cache directory, as $XDG_CACHE_HOME or ~/.cache)")
	fs.StringVar(&o.directory, "acme-directory", acme.LetsEncryptURL, "with --acme: the CA's directory `URL`")
	fs.StringVar(&o.email, "acme-email", "", "with --acme: the contact `ADDRESS` of the ACME account")
	fs.StringVar(&o.caFile, "acme-ca", "", "with --acme: verify the ACME server against the certificates in `FILE` (PEM) instead of the system's")
}

// enabled reports whether --acme was given.
func (o *acmeOptions) enabled() bool { return len(o.domains) > 0 }

// check validates the flags; certFiles tells whether --cert was given.
func (o *acmeOptions) check(certFiles bool) error {
	if o.directory == "" { // options made without the flags
		o.directory = acme.LetsEncryptURL
	}
	if !o.enabled() {
		if o.cache != "" || o.directory != acme.LetsEncryptURL || o.email != "" || o.caFile != "" {
			return errors.New("--acme-cache, --acme-directory, --acme-email and --acme-ca go with --acme")
		}
		return nil
	}
	if certFiles {
		return errors.New("--acme and --cert exclude each other")
	}
	for _, d := range o.domains {
		if err := checkDomain(d); err != nil {
			return fmt.Errorf("--acme %q: %w", d, err)
		}
	}
	u, err := url.Parse(o.directory)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--acme-directory %q: want an https:// URL", o.directory)
	}
	if o.email != "" && !strings.Contains(o.email, "@") {
		return fmt.Errorf("--acme-email %q: want an email address", o.email)
	}
	return nil
}

// checkDomain validates a --acme name: a DNS name of at least two labels
// (as autocert requires), no wildcard (TLS-ALPN-01 cannot prove one), no IP
// address.
func checkDomain(d string) error {
	switch {
	case d == "":
		return errors.New("empty name")
	case net.ParseIP(d) != nil:
		return errors.New("an IP address; want a DNS name")
	case strings.Contains(d, "*"):
		return errors.New("wildcards need DNS-01, which ktls does not do")
	case len(d) > 253 || !strings.Contains(strings.Trim(d, "."), "."):
		return errors.New("want a DNS name of two labels or more, as example.com")
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(d, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad label %q", label)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("bad character %q (write international names in punycode, xn--)", c)
			}
		}
	}
	return nil
}

// acmeCerts gets and renews the certificates of --acme.
type acmeCerts struct {
	m         *autocert.Manager
	domains   []string
	challenge *tls.Config // of the TLS-ALPN-01 connections
	logger    *slog.Logger
}

// newACMECerts sets up the ACME client of o. It checks that the directory
// answers, unless the cache already holds an account for it (a CA briefly
// unreachable must not keep a server with cached certificates from
// starting).
func newACMECerts(o *acmeOptions, logger *slog.Logger) (*acmeCerts, error) {
	dir, err := acmeCacheDir(o)
	if err != nil {
		return nil, err
	}
	hc := http.DefaultClient
	if o.caFile != "" {
		cfg, err := clientTLS("", false, o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca: %w", err)
		}
		hc = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: cfg}}
	}
	client := &acme.Client{DirectoryURL: o.directory, HTTPClient: hc, UserAgent: "ktls/" + version()}
	a := &acmeCerts{
		m: &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      loggingCache{autocert.DirCache(dir), logger},
			HostPolicy: autocert.HostWhitelist(o.domains...),
			Client:     client,
			Email:      o.email,
		},
		domains: o.domains,
		logger:  logger,
	}
	a.challenge = &tls.Config{GetCertificate: a.m.GetCertificate, NextProtos: []string{acme.ALPNProto}}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client.Discover(ctx); err != nil {
		if _, cerr := os.Stat(filepath.Join(dir, "acme_account+key")); cerr != nil {
			return nil, fmt.Errorf("--acme-directory %s: %w", o.directory, err)
		}
		logger.Warn("ACME directory unreachable; serving the cached certificates", "directory", o.directory, "err", err)
	}
	logger.Info("certificates from ACME", "domains", strings.Join(o.domains, ","), "directory", o.directory, "cache", dir)
	return a, nil
}

// acmeCacheDir returns the cache directory of o: --acme-cache (default
// ktls/acme in the user's cache directory), then the host of the CA, so
// that certificates of one CA are never served for another's.
func acmeCacheDir(o *acmeOptions) (string, error) {
	root := o.cache
	if root == "" {
		ucd, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("--acme-cache not given and no user cache directory: %w", err)
		}
		root = filepath.Join(ucd, "ktls", "acme")
	}
	u, _ := url.Parse(o.directory) // checked
	return filepath.Join(root, strings.ReplaceAll(u.Host, ":", "_")), nil
}

// prefetch gets the certificate of domain at start, as the first handshake
// naming it would, so that clients need not wait for it.
func (a *acmeCerts) prefetch(domain string) {
	_, err := a.m.GetCertificate(&tls.ClientHelloInfo{
		ServerName:   domain,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, // an ECDSA certificate
	})
	if err != nil {
		a.logger.Error("ACME: getting the certificate failed; trying again at the next handshake", "domain", domain, "err", err)
	}
}

// getCertificate is the GetCertificate of the listener: the certificate of
// the client's server name, or of the first --acme name if the client sent
// none or another.
func (a *acmeCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if !slices.Contains(a.domains, strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")) {
		h := *hello
		h.ServerName = a.domains[0]
		hello = &h
	}
	return a.m.GetCertificate(hello)
}

// loggingCache logs each certificate autocert puts in its cache: one
// obtained or renewed.
type loggingCache struct {
	autocert.Cache
	logger *slog.Logger
}

func (c loggingCache) Put(ctx context.Context, key string, data []byte) error {
	err := c.Cache.Put(ctx, key, data)
	if key == "acme_account+key" || strings.HasSuffix(key, "+token") {
		return err
	}
	rest := data
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return err
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if leaf, perr := x509.ParseCertificate(b.Bytes); perr == nil {
			c.logger.Info("ACME certificate obtained", "names", strings.Join(leaf.DNSNames, ","), "serial", leaf.SerialNumber.Text(16),
				"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "issuer", leaf.Issuer.CommonName, "cached", err == nil)
		}
		return err
	}
}

// acmeListener passes on the connections of the wrapped listener, except
// those of TLS-ALPN-01 challenges, which it answers and closes. Each is
// sorted in its own goroutine; Accept returns the others, and Close closes
// the wrapped listener and the connections not yet returned.
type acmeListener struct {
	*acceptq.Listener
	a       *acmeCerts
	timeout time.Duration // for the ClientHello and the challenge's handshake
}

// listener returns ln, wrapped to answer TLS-ALPN-01 challenges if the
// certificates come from ACME; it then starts getting the certificates,
// now that the CA can connect. timeout bounds the wait for a ClientHello.
func (s *certStore) listener(ln net.Listener, timeout time.Duration) net.Listener {
	if s == nil || s.acme == nil {
		return ln
	}
	l := &acmeListener{Listener: acceptq.New(ln), a: s.acme, timeout: timeout}
	l.Start(l.sort, nil)
	for _, d := range s.acme.domains {
		go s.acme.prefetch(d)
	}
	return l
}

// sort answers c if it is a TLS-ALPN-01 challenge, else passes it on
// untouched (its ClientHello still on the socket).
func (l *acmeListener) sort(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(l.timeout))
	rec, err := peekRecord(c)
	c.SetReadDeadline(time.Time{})
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		c.Close() // no ClientHello in time, or the peer left
		return
	}
	if hello := parseHello(rec); hello != nil && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		l.answer(c, hello.ServerName)
		return
	}
	l.Pass(c)
}

// answer runs the handshake of a TLS-ALPN-01 challenge on c with crypto/tls
// (the certificate autocert made for it) and closes c.
func (l *acmeListener) answer(c net.Conn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	tc := tls.Server(c, l.a.challenge)
	err := tc.HandshakeContext(ctx)
	tc.Close()
	if err != nil {
		l.a.logger.Warn("ACME: TLS-ALPN-01 challenge handshake failed", "remote", c.RemoteAddr().String(), "name", name, "err", err)
		return
	}
	l.a.logger.Info("ACME: TLS-ALPN-01 challenge answered", "remote", c.RemoteAddr().String(), "name", name)
}

// maxRecord is the largest TLS plaintext record, header included.
const maxRecord = 5 + 1<<14

// recordComplete reports whether p (what the peer sent so far) holds its
// first TLS record, or shows that it will not be a handshake record of a
// valid length.
func recordComplete(p []byte) bool {
	switch {
	case len(p) >= 1 && p[0] != 22:
		return true
	case len(p) < 5:
		return false
	}
	n := int(p[3])<<8 | int(p[4])
	return n > 1<<14 || len(p) >= 5+n
}

// parseHello returns the ClientHello in rec, a TLS record, or nil if rec
// is not one (or not all of one: a ClientHello split over records).
func parseHello(rec []byte) *tls.ClientHelloInfo {
	if !recordComplete(rec) || len(rec) < 5 || rec[0] != 22 {
		return nil
	}
	var hello *tls.ClientHelloInfo
	errGot := errors.New("got the ClientHello")
	tls.Server(&bytesConn{r: bytes.NewReader(rec)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			hello = h
			return nil, errGot
		},
	}).Handshake()
	return hello
}

// bytesConn is a net.Conn that reads from r and discards what is written.
type bytesConn struct{ r io.Reader }

func (c *bytesConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *bytesConn) Close() error                       { return nil }
func (c *bytesConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *bytesConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *bytesConn) SetDeadline(t time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(t time.Time) error { return nil }
