package ktls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

func testSession(t testing.TB, seq uint64) *Session {
	t.Helper()
	secret := bytes.Repeat([]byte{0x5a}, 32)
	s, err := record.TLS13Session(tls.TLS_AES_128_GCM_SHA256, secret)
	if err != nil {
		t.Fatal(err)
	}
	s.Seq = seq
	return s
}

func TestInstallErrors(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := Install(a, TX, testSession(t, 0)); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Install on a pipe = %v, want ErrUnsupported", err)
	}
	if err := Install(a, Direction(7), testSession(t, 0)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Install with a bad direction = %v, want EINVAL", err)
	}
	if err := Install(a, RX, nil); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Install(nil) = %v, want EINVAL", err)
	}
	bad := testSession(t, 0)
	bad.Key = bad.Key[:5]
	if err := Install(a, RX, bad); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Install with a short key = %v, want EINVAL", err)
	}
	if TX.String() != "tx" || RX.String() != "rx" {
		t.Errorf("Direction strings %q %q", TX, RX)
	}
}

// TestKernelInstall installs hand-made sessions on a plain TCP pair: what
// one end writes leaves as records the record layer opens, and records the
// record layer seals arrive as plaintext.
func TestKernelInstall(t *testing.T) {
	ktlstest.RequireKernel(t)
	cc, ss := tcpPair(t)
	defer cc.Close()
	defer ss.Close()
	if err := Install(ss, TX, testSession(t, 7)); err != nil {
		t.Fatal(err)
	}
	if err := Install(ss, RX, testSession(t, 3)); err != nil {
		t.Fatal(err)
	}
	// TX: the kernel seals, we open from sequence 7.
	if _, err := ss.Write([]byte("sealed by the kernel")); err != nil {
		t.Fatal(err)
	}
	o, err := record.NewOpener(testSession(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	typ, p, err := record.NewReader(cc, o).ReadRecord()
	if err != nil || typ != record.TypeApplicationData || string(p) != "sealed by the kernel" {
		t.Fatalf("peer read %v %q, %v", typ, p, err)
	}
	// RX: we seal from sequence 3, the kernel opens.
	sl, err := record.NewSealer(testSession(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	if err := record.NewWriter(cc, sl).WriteRecord(record.TypeApplicationData, []byte("opened by the kernel")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := ss.Read(buf)
	if err != nil || string(buf[:n]) != "opened by the kernel" {
		t.Fatalf("kernel read %q, %v", buf[:n], err)
	}
}

// TestKernelStatsAgree checks that Stats() and Mode() agree with the
// kernel's own counters (/proc/net/tls_stat) over connections handed to it.
func TestKernelStatsAgree(t *testing.T) {
	ktlstest.RequireKernel(t)
	k0, err := kernel.Stats()
	if err != nil {
		t.Fatal(err)
	}
	s0 := Stats()
	const conns = 3
	var pairs []*pair
	for i := 0; i < conns; i++ {
		cfg := serverTLS()
		cfg.MaxVersion = tls.VersionTLS12
		pr := newPair(t, true, &Config{TLS: cfg, TX: OffloadKernel, RX: OffloadKernel}, clientTLS())
		pr.fc.release()
		pr.handshake(t)
		if tx, rx := pr.k.Mode(); tx != ModeKernel || rx != ModeKernel {
			t.Fatalf("Mode() = %v, %v; want kernel-sw both", tx, rx)
		}
		pairs = append(pairs, pr)
	}
	k1, err := kernel.Stats()
	if err != nil {
		t.Fatal(err)
	}
	s1 := Stats()
	for _, c := range []struct {
		name       string
		ours, kern uint64
	}{
		{"total tx", s1.TotalTX.Kernel - s0.TotalTX.Kernel, k1["TlsTxSw"] - k0["TlsTxSw"]},
		{"total rx", s1.TotalRX.Kernel - s0.TotalRX.Kernel, k1["TlsRxSw"] - k0["TlsRxSw"]},
		{"current tx", s1.CurrentTX.Kernel - s0.CurrentTX.Kernel, k1["TlsCurrTxSw"] - k0["TlsCurrTxSw"]},
		{"current rx", s1.CurrentRX.Kernel - s0.CurrentRX.Kernel, k1["TlsCurrRxSw"] - k0["TlsCurrRxSw"]},
	} {
		if c.ours != conns || c.kern != conns {
			t.Errorf("%s: Stats() moved by %d, /proc/net/tls_stat by %d; want %d", c.name, c.ours, c.kern, conns)
		}
	}
	for _, pr := range pairs {
		go io.Copy(io.Discard, pr.p)
		pr.k.Close()
		pr.p.Close()
	}
	s2 := Stats()
	if s2.CurrentTX.Kernel != s0.CurrentTX.Kernel || s2.CurrentRX.Kernel != s0.CurrentRX.Kernel {
		t.Errorf("after Close: current kernel tx %d rx %d, want %d %d", s2.CurrentTX.Kernel, s2.CurrentRX.Kernel, s0.CurrentTX.Kernel, s0.CurrentRX.Kernel)
	}
}
