//go:build linux

package kernel_test

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
)

// These tests need no kernel TLS and run on every Linux host.

// TestOracleMatchesRecord cross-checks the tests' oracle against package
// record: two independent implementations that agree make a wire mismatch
// in the kernel tests point at the kernel path.
func TestOracleMatchesRecord(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			sess := s.session(41)
			o := newOracle(t, s, sess)
			sealer, err := record.NewSealer(sess)
			if err != nil {
				t.Fatal(err)
			}
			opener, err := record.NewOpener(sess)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range [][]byte{[]byte("hello"), nil, randomBytes(record.MaxPlaintext)} {
				typ := record.TypeApplicationData
				if i == 1 {
					typ = record.TypeAlert
				}
				want := o.seal(byte(typ), p)
				got, err := sealer.Seal(nil, typ, p)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("record %d: record.Sealer and the oracle disagree", i)
				}
				gt, gp, err := opener.Open(got)
				if err != nil || gt != typ || !bytes.Equal(gp, p) {
					t.Fatalf("record %d: record.Opener: %v %v", i, gt, err)
				}
			}
		})
	}
}

// TestPlainSocket drives SendRecord, RecvRecord and SocketInfo over a TCP
// socket without the TLS ULP: the control message is ignored by TCP,
// data without a record-type message is application data, the peer's close
// is EOF, a deadline ends the wait, and sock_diag finds no ULP.
func TestPlainSocket(t *testing.T) {
	a, b := tcpPair(t)
	ra, rb := rawConn(t, a), rawConn(t, b)
	if n, err := kernel.SendRecord(ra, record.TypeAlert, []byte("plain")); err != nil || n != 5 {
		t.Fatalf("SendRecord: %d, %v", n, err)
	}
	if n, err := kernel.SendRecord(ra, record.TypeAlert, nil); !errors.Is(err, syscall.EINVAL) || n != 0 {
		t.Fatalf("SendRecord of nothing: %d, %v; want EINVAL (Linux makes no empty records)", n, err)
	}
	typ, p := recv(t, rb, 100)
	if typ != record.TypeApplicationData || string(p) != "plain" {
		t.Fatalf("RecvRecord: %v %q", typ, p)
	}
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := kernel.RecvRecord(rb, make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("RecvRecord past its deadline: %v", err)
	}
	b.SetReadDeadline(time.Time{})
	a.CloseWrite()
	if typ, p := recv(t, rb, 100); typ != 0 || len(p) != 0 {
		t.Fatalf("after close: %v %q, want EOF", typ, p)
	}

	info, err := kernel.SocketInfo(ra)
	if errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.EACCES) {
		t.Skipf("no sock_diag here: %v", err)
	}
	if err != nil {
		t.Fatalf("SocketInfo: %v", err)
	}
	if info != (kernel.Info{}) {
		t.Fatalf("SocketInfo of a plain socket: %+v", info)
	}
}

// TestSupportedExplains: where there is no kernel TLS, Supported says why
// with the errno, and Stats says the counters are missing.
func TestSupportedExplains(t *testing.T) {
	err := kernel.Supported()
	if err == nil {
		t.Log("this kernel has TLS; nothing to explain")
		return
	}
	t.Logf("Supported: %v", err)
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		t.Errorf("Supported error %v carries no errno", err)
	}
	if _, err := os.Stat("/proc/net/tls_stat"); err == nil {
		return
	}
	if _, err := kernel.Stats(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stats without the tls module: %v, want fs.ErrNotExist", err)
	}
}

// TestSocketInfoFamilies: the sock_diag query finds plain sockets of every
// address family shape: IPv4, IPv6, and IPv4-mapped IPv6 (a dual-stack listener).
func TestSocketInfoFamilies(t *testing.T) {
	for _, tc := range []struct{ listen, dial string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::1]:0", "::1"},
		{":0", "127.0.0.1"},
	} {
		ln, err := net.Listen("tcp", tc.listen)
		if err != nil {
			t.Logf("%s: %v", tc.listen, err)
			continue
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		c, err := net.Dial("tcp", net.JoinHostPort(tc.dial, port))
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		s, err := ln.Accept()
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, conn := range []net.Conn{c, s} {
			rc := rawConn(t, conn.(*net.TCPConn))
			ulp, err := kernel.SockDiagULP(rc)
			if errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.EACCES) {
				t.Skipf("no sock_diag here: %v", err)
			}
			if err != nil || ulp != "" {
				t.Errorf("%v->%v: sock_diag: ULP %q, %v", conn.LocalAddr(), conn.RemoteAddr(), ulp, err)
			}
			if info, err := kernel.SocketInfo(rc); err != nil || info != (kernel.Info{}) {
				t.Errorf("%v->%v: %+v, %v", conn.LocalAddr(), conn.RemoteAddr(), info, err)
			}
		}
		c.Close()
		s.Close()
	}
}
