package ktlstest

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
)

type suiteKey struct{ version, suite uint16 }

type suiteResult struct{ err error }

var suites sync.Map // suiteKey -> suiteResult

// KernelSuite reports whether the kernel's TLS takes sessions of the TLS
// version and cipher suite: nil if it does, else the kernel's refusal (Linux
// before 5.11 answers EINVAL for ChaCha20-Poly1305, which it does not have).
// Like the kernel package's probes, it attaches the TLS ULP to a loopback
// TCP connection and installs a sending key, once per version and suite.
// Kernel tests check it to expect either the kernel or the per-suite
// fallback to the user-space record layer, instead of skipping.
func KernelSuite(version, suite uint16) error {
	k := suiteKey{version, suite}
	if r, ok := suites.Load(k); ok {
		return r.(suiteResult).err
	}
	err := probeSuite(version, suite)
	suites.Store(k, suiteResult{err})
	return err
}

func probeSuite(version, suite uint16) error {
	if err := kernel.Supported(); err != nil {
		return err
	}
	c, ok := record.CipherOf(suite)
	if !ok {
		return fmt.Errorf("ktlstest: unknown cipher suite %s", tls.CipherSuiteName(suite))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer d.Close()
	s, err := ln.Accept()
	if err != nil {
		return err
	}
	defer s.Close()
	rc, err := s.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	if err := kernel.Attach(rc); err != nil {
		return err
	}
	ivLen := 12
	if version == tls.VersionTLS12 && c != record.CipherChaCha20Poly1305 {
		ivLen = 4
	}
	sess := &record.Session{Version: version, CipherSuite: suite, Key: make([]byte, c.KeyLen()), IV: make([]byte, ivLen)}
	if err := kernel.Enable(rc, kernel.TX, sess); err != nil {
		return fmt.Errorf("kernel TLS refuses %s %s: %w", tls.VersionName(version), tls.CipherSuiteName(suite), err)
	}
	return nil
}
