package ktls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tlsEchoServer serves crypto/tls connections on loopback that echo what
// they read; it returns the port.
func tlsEchoServer(t *testing.T) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestDialer: Dialer works like tls.Dialer: the server name comes from the
// address, the result is a *Conn, a failed handshake is an error, and the
// net.Dialer's Timeout and Deadline bound connection and handshake.
func TestDialer(t *testing.T) {
	port := tlsEchoServer(t)
	roots := &Config{TLS: &tls.Config{RootCAs: pki().pool}}

	t.Run("ServerNameFromAddress", func(t *testing.T) {
		d := &Dialer{NetDialer: &net.Dialer{Timeout: time.Minute}, Config: roots}
		c, err := d.Dial("tcp", net.JoinHostPort("localhost", port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		kc, ok := c.(*Conn)
		if !ok {
			t.Fatalf("Dial returned %T, want *Conn", c)
		}
		if st := kc.ConnectionState(); !st.HandshakeComplete || st.ServerName != "localhost" {
			t.Fatalf("handshake complete %v, server name %q", st.HandshakeComplete, st.ServerName)
		}
		if roots.TLS.ServerName != "" {
			t.Fatal("Dial changed the caller's Config")
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q, %v", buf, err)
		}
		tx, rx := kc.Mode()
		t.Logf("tx=%v rx=%v", tx, rx)
	})

	t.Run("NilConfig", func(t *testing.T) {
		// The zero Config verifies against the system roots (none in
		// the lab): our self-signed certificate fails, as with tls.Dialer.
		var d Dialer
		c, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", port))
		var verr *tls.CertificateVerificationError
		if c != nil || !errors.As(err, &verr) {
			t.Fatalf("Dial = %v, %v; want nil and a certificate verification error", c, err)
		}
	})

	t.Run("WrongName", func(t *testing.T) {
		d := &Dialer{Config: &Config{TLS: &tls.Config{RootCAs: pki().pool, ServerName: "example.com"}}}
		c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
		var herr x509.HostnameError
		if c != nil || !errors.As(err, &herr) {
			t.Fatalf("Dial = %v, %v; want nil and x509.HostnameError", c, err)
		}
	})

	t.Run("Deadline", func(t *testing.T) {
		d := &Dialer{NetDialer: &net.Dialer{Deadline: time.Unix(1, 0)}, Config: roots}
		c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
		var nerr net.Error
		if c != nil || !errors.As(err, &nerr) || !nerr.Timeout() {
			t.Fatalf("Dial = %v, %v; want a timeout", c, err)
		}
	})

	t.Run("TimeoutCoversHandshake", func(t *testing.T) {
		// A server that accepts and never answers the ClientHello.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				defer c.Close()
				io.Copy(io.Discard, c)
			}
		}()
		d := &Dialer{NetDialer: &net.Dialer{Timeout: 200 * time.Millisecond}, Config: roots}
		c, err := d.Dial("tcp", ln.Addr().String())
		if c != nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial = %v, %v; want context.DeadlineExceeded", c, err)
		}
	})
}
