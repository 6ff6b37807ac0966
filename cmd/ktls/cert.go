package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// selfSignedValidity is how long a generated certificate is valid.
const selfSignedValidity = 30 * 24 * time.Hour

// selfSigned returns a new self-signed ECDSA P-256 server certificate for
// localhost, 127.0.0.1, ::1 and the given host names or addresses. The key
// lives only in memory.
func selfSigned(hosts []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ktls serve (self-signed)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range slices.Concat([]string{"localhost", "127.0.0.1", "::1"}, hosts) {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() && !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" && !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// fingerprint returns the SHA-256 fingerprint of a certificate as
// "openssl x509 -fingerprint -sha256" prints it (AB:CD:...).
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return strings.ToUpper(strings.Join(splitPairs(hex.EncodeToString(sum[:])), ":"))
}

// pin returns the SHA-256 of the certificate's public key in base64, the
// value curl's --pinnedpubkey takes after "sha256//".
func pin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func splitPairs(s string) []string {
	var out []string
	for len(s) >= 2 {
		out = append(out, s[:2])
		s = s[2:]
	}
	return out
}

// certNames returns the names a certificate is valid for, for the log.
func certNames(c *x509.Certificate) string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return fmt.Sprintf("CN=%s", c.Subject.CommonName)
	}
	return strings.Join(names, ",")
}

// loadCertificate loads certFile and keyFile, or, when they are empty,
// makes a self-signed certificate that also names the host of addr (the
// value of the flag named flagName), if any. Either way it logs what it
// uses.
func loadCertificate(certFile, keyFile, addr, flagName string, logger *slog.Logger) (tls.Certificate, error) {
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return cert, err
		}
		logCertificate(logger, certFile, &cert)
		return cert, nil
	}
	var hosts []string
	if addr != "" { // none for a socket from systemd (proxy without --listen)
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("%s: %w", flagName, err)
		}
		hosts = append(hosts, host)
	}
	cert, err := selfSigned(hosts, time.Now())
	if err != nil {
		return cert, err
	}
	logger.Info("self-signed certificate", "names", certNames(cert.Leaf),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339),
		"sha256", fingerprint(cert.Leaf), "pin", "sha256//"+pin(cert.Leaf))
	return cert, nil
}

// logCertificate logs the certificate loaded from file.
func logCertificate(logger *slog.Logger, file string, cert *tls.Certificate) {
	logger.Info("certificate", "file", file, "names", certNames(cert.Leaf),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339), "sha256", fingerprint(cert.Leaf))
}

// clientTLS returns the crypto/tls configuration of a client connection:
// it verifies the server's certificate for serverName against caFile (PEM)
// or the system roots, or not at all when insecure.
func clientTLS(serverName string, insecure bool, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
