package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// certOptions are the certificate flags of a TLS listener (serve, proxy):
// --cert and --key, each repeatable, the n-th --key the key of the n-th
// --cert. With more than one pair, each handshake gets the first
// certificate valid for its server name (SNI) and signature algorithms,
// else the first one. Or --acme and its companions (acme.go): certificates
// from an ACME CA.
type certOptions struct {
	certFiles, keyFiles []string
	acme                acmeOptions
}

// addCertFlags defines --cert and --key on fs; of says whose certificate it
// is.
func addCertFlags(fs *flag.FlagSet, o *certOptions, of string) {
	fs.Func("cert", "certificate chain `FILE` (PEM)"+of+"; needs --key; repeat --cert and --key for more certificates, chosen by SNI", func(s string) error {
		o.certFiles = append(o.certFiles, s)
		return nil
	})
	fs.Func("key", "private key `FILE` (PEM) of the --cert before it", func(s string) error {
		o.keyFiles = append(o.keyFiles, s)
		return nil
	})
	addACMEFlags(fs, &o.acme)
}

// given reports whether --cert was given.
func (o *certOptions) given() bool { return len(o.certFiles) > 0 }

// check validates the pairing of the flags.
func (o *certOptions) check() error {
	if len(o.certFiles) != len(o.keyFiles) {
		return errors.New("--cert and --key go together (as many of each)")
	}
	return o.acme.check(o.given())
}

// certStore holds the certificates of a TLS listener and hands them to its
// handshakes (GetCertificate). SIGHUP re-reads the files (see watch): new
// handshakes get the new certificates, connections already open keep
// theirs, and the old certificates stay when a file is bad.
type certStore struct {
	o      *certOptions
	logger *slog.Logger
	certs  atomic.Pointer[[]*tls.Certificate]
	acme   *acmeCerts // with --acme
}

// loadCerts loads the certificates of o, or, without --cert, makes a
// self-signed certificate that also names the host of addr (the value of
// the flag named flagName). It logs what it uses.
func loadCerts(o *certOptions, addr, flagName string, logger *slog.Logger) (*certStore, error) {
	s := &certStore{o: o, logger: logger}
	if o.acme.enabled() {
		a, err := newACMECerts(&o.acme, logger)
		if err != nil {
			return nil, err
		}
		s.acme = a
		return s, nil
	}
	if !o.given() {
		cert, err := loadCertificate("", "", addr, flagName, logger)
		if err != nil {
			return nil, err
		}
		s.certs.Store(&[]*tls.Certificate{&cert})
		return s, nil
	}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// reload reads every --cert/--key pair and, if all of them are good, puts
// them in place of the current ones.
func (s *certStore) reload() error {
	certs := make([]*tls.Certificate, len(s.o.certFiles))
	for i, certFile := range s.o.certFiles {
		cert, err := tls.LoadX509KeyPair(certFile, s.o.keyFiles[i])
		if err != nil {
			return fmt.Errorf("--cert %s --key %s: %w", certFile, s.o.keyFiles[i], err)
		}
		certs[i] = &cert
	}
	for i, c := range certs {
		logCertificate(s.logger, s.o.certFiles[i], c)
	}
	s.certs.Store(&certs)
	return nil
}

// tlsConfig returns a server configuration taking its certificates from s.
func (s *certStore) tlsConfig() *tls.Config {
	return &tls.Config{GetCertificate: s.getCertificate, MinVersion: tls.VersionTLS12}
}

// getCertificate is the tls.Config.GetCertificate of the store: the first
// certificate valid for the client's server name and algorithms, as
// crypto/tls picks from Config.Certificates, else the first one.
func (s *certStore) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s.acme != nil {
		return s.acme.getCertificate(hello)
	}
	certs := *s.certs.Load()
	if len(certs) > 1 {
		for _, c := range certs {
			if hello.SupportsCertificate(c) == nil {
				return c, nil
			}
		}
	}
	return certs[0], nil
}

// watch reloads the certificates on each SIGHUP until ctx ends, logging
// the outcome, between RELOADING=1 and READY=1 to systemd.
func (s *certStore) watch(ctx context.Context) {
	onHUP(ctx, func() { sdReload(s.logger, s.onHUP) })
}

// onHUP reloads the certificates and logs the outcome.
func (s *certStore) onHUP() {
	if s.acme != nil {
		s.logger.Info("SIGHUP: the certificates come from ACME and are renewed without it")
		return
	}
	if !s.o.given() {
		s.logger.Info("SIGHUP: no --cert to reload; keeping the self-signed certificate")
		return
	}
	if err := s.reload(); err != nil {
		s.logger.Error("SIGHUP: reloading the certificates failed; keeping the current ones", "err", err)
		return
	}
	s.logger.Info("SIGHUP: certificates reloaded", "count", len(s.o.certFiles))
}
