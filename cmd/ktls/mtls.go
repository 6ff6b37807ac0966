package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
)

// Mutual TLS: the client certificates a TLS listener (serve, proxy)
// requires and verifies (--client-ca), and the one the proxy presents to
// its upstream (--upstream-cert, --upstream-key).

// clientAuthOptions are the client certificate flags of a TLS listener.
type clientAuthOptions struct {
	caFile   string // --client-ca: verify client certificates against it
	optional bool   // --client-cert-optional: a client may send none
	allowCN  []string
	allowURI []string
}

// addClientAuthFlags defines --client-ca, --client-cert-optional,
// --allow-cn and --allow-uri on fs.
func addClientAuthFlags(fs *flag.FlagSet, o *clientAuthOptions) {
	fs.StringVar(&o.caFile, "client-ca", "", "require a client certificate issued by a certificate authority in `FILE` (PEM bundle), and log its subject CN and first URI or DNS name; SIGHUP re-reads it")
	fs.BoolVar(&o.optional, "client-cert-optional", false, "with --client-ca: accept clients that send no certificate too (one sent is still verified)")
	fs.Func("allow-cn", "with --client-ca: accept only client certificates whose subject common name is `NAME` (repeatable; with --allow-uri, either may match)", func(s string) error {
		o.allowCN = append(o.allowCN, s)
		return nil
	})
	fs.Func("allow-uri", "with --client-ca: accept only client certificates with the URI SAN `URI`, e.g. spiffe://example.org/web (repeatable)", func(s string) error {
		o.allowURI = append(o.allowURI, s)
		return nil
	})
}

// check validates the flags; tlsListener says whether the command accepts
// TLS (not ktls proxy --upstream-tls).
func (o *clientAuthOptions) check(tlsListener bool) error {
	switch {
	case o.caFile != "" && !tlsListener:
		return errors.New("--client-ca is for the TLS listener, not with --upstream-tls (see --upstream-cert)")
	case o.caFile == "" && (o.optional || len(o.allowCN) > 0 || len(o.allowURI) > 0):
		return errors.New("--client-cert-optional, --allow-cn and --allow-uri go with --client-ca")
	}
	return nil
}

// serverConfig returns base with client certificates required (or
// requested, with --client-cert-optional) and verified against --client-ca,
// or base itself without --client-ca. Until ctx ends each SIGHUP re-reads
// the file; new handshakes, resumed ones included, are verified against
// the new bundle, and the old one stays when the file is bad.
func (o *clientAuthOptions) serverConfig(ctx context.Context, base *tls.Config, logger *slog.Logger) (*tls.Config, error) {
	if o.caFile == "" {
		return base, nil
	}
	pool, n, err := loadCAs(o.caFile)
	if err != nil {
		return nil, fmt.Errorf("--client-ca %w", err)
	}
	cfg := base.Clone()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	if o.optional {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	cfg.ClientCAs = pool
	if len(o.allowCN) > 0 || len(o.allowURI) > 0 {
		cfg.VerifyConnection = o.authorize
	}
	attrs := []any{"file", o.caFile, "certificates", n, "required", !o.optional}
	if cfg.VerifyConnection != nil {
		attrs = append(attrs, "allow_cn", o.allowCN, "allow_uri", o.allowURI)
	}
	logger.Info("client CA", attrs...)
	// After a reload, handshakes take a copy of cfg with the new pool.
	var reloaded atomic.Pointer[tls.Config]
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return reloaded.Load(), nil }
	onHUP(ctx, func() {
		pool, n, err := loadCAs(o.caFile)
		if err != nil {
			logger.Error("SIGHUP: reloading the client CA failed; keeping the current one", "err", fmt.Errorf("--client-ca %w", err))
			return
		}
		next := cfg.Clone()
		next.ClientCAs = pool
		next.GetConfigForClient = nil
		reloaded.Store(next)
		logger.Info("SIGHUP: client CA reloaded", "file", o.caFile, "certificates", n)
	})
	return cfg, nil
}

// authorize is the VerifyConnection of a listener with --allow-cn or
// --allow-uri: the verified client certificate must have one of the
// common names or URIs allowed.
func (o *clientAuthOptions) authorize(st tls.ConnectionState) error {
	if len(st.VerifiedChains) == 0 {
		return errors.New("no client certificate: --allow-cn/--allow-uri require one")
	}
	leaf := st.VerifiedChains[0][0]
	if slices.Contains(o.allowCN, leaf.Subject.CommonName) {
		return nil
	}
	for _, u := range leaf.URIs {
		if slices.Contains(o.allowURI, u.String()) {
			return nil
		}
	}
	cn, san := clientIdentity(leaf)
	return fmt.Errorf("client certificate CN=%q SAN=%q is not allowed by --allow-cn/--allow-uri", cn, san)
}

// loadCAs reads a PEM bundle of certificates. Unlike
// CertPool.AppendCertsFromPEM it fails on a block that is not a
// certificate or does not parse, and on a file without any.
func loadCAs(file string) (*x509.CertPool, int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, 0, err
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		n++
		if block.Type != "CERTIFICATE" {
			return nil, 0, fmt.Errorf("%s: PEM block %d is a %q, want CERTIFICATE", file, n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: certificate %d: %w", file, n, err)
		}
		pool.AddCert(c)
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("%s: no PEM certificates", file)
	}
	return pool, n, nil
}

// clientIdentity returns what the logs say of a verified client
// certificate: its subject common name, and its first URI SAN, else its
// first DNS SAN (either may be empty).
func clientIdentity(c *x509.Certificate) (cn, san string) {
	switch {
	case len(c.URIs) > 0:
		san = c.URIs[0].String()
	case len(c.DNSNames) > 0:
		san = c.DNSNames[0]
	}
	return c.Subject.CommonName, san
}

// clientAttrs returns the log attributes of the verified client
// certificate of a connection, client_cn and client_san (see
// clientIdentity), or none when the client sent no verified certificate.
func clientAttrs(st tls.ConnectionState) []slog.Attr {
	if len(st.VerifiedChains) == 0 {
		return nil
	}
	cn, san := clientIdentity(st.VerifiedChains[0][0])
	attrs := []slog.Attr{slog.String("client_cn", cn)}
	if san != "" {
		attrs = append(attrs, slog.String("client_san", san))
	}
	return attrs
}

// upstreamCertOptions are the proxy's --upstream-cert and --upstream-key:
// the client certificate it presents to a TLS upstream.
type upstreamCertOptions struct {
	certFile, keyFile string
}

// addUpstreamCertFlags defines --upstream-cert and --upstream-key on fs.
func addUpstreamCertFlags(fs *flag.FlagSet, o *upstreamCertOptions) {
	fs.StringVar(&o.certFile, "upstream-cert", "", "with --upstream-tls: present the client certificate chain in `FILE` (PEM) to --to; needs --upstream-key; SIGHUP re-reads both")
	fs.StringVar(&o.keyFile, "upstream-key", "", "the private key `FILE` (PEM) of --upstream-cert")
}

// check validates the flags.
func (o *upstreamCertOptions) check(upstreamTLS bool) error {
	switch {
	case (o.certFile == "") != (o.keyFile == ""):
		return errors.New("--upstream-cert and --upstream-key go together")
	case o.certFile != "" && !upstreamTLS:
		return errors.New("--upstream-cert and --upstream-key go with --upstream-tls")
	}
	return nil
}

// apply makes cfg present the certificate to the server, whatever
// authorities the server names (its own verification then says what is
// wrong); each SIGHUP re-reads the files until ctx ends, and the old
// certificate stays when they are bad.
func (o *upstreamCertOptions) apply(ctx context.Context, cfg *tls.Config, logger *slog.Logger) error {
	if o.certFile == "" {
		return nil
	}
	var cert atomic.Pointer[tls.Certificate]
	load := func() error {
		c, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return fmt.Errorf("--upstream-cert %s --upstream-key %s: %w", o.certFile, o.keyFile, err)
		}
		cert.Store(&c)
		cn, san := clientIdentity(c.Leaf)
		logger.Info("upstream client certificate", "file", o.certFile, "cn", cn, "san", san,
			"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "sha256", fingerprint(c.Leaf))
		return nil
	}
	if err := load(); err != nil {
		return err
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert.Load(), nil }
	onHUP(ctx, func() {
		if err := load(); err != nil {
			logger.Error("SIGHUP: reloading the upstream client certificate failed; keeping the current one", "err", err)
		}
	})
	return nil
}

// onHUP calls f on each SIGHUP until ctx ends.
func onHUP(ctx context.Context, f func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				f()
			}
		}
	}()
}
