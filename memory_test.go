package ktls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// TestHandOffReleasesCryptoTLS checks that after the hand-off a server
// keeps nothing of crypto/tls's record layer: the tls.Conn (its AEADs and
// buffers), the handshake conn and the connection's tls.Config clone become
// garbage, while ConnectionState, I/O and Close go on.
func TestHandOffReleasesCryptoTLS(t *testing.T) {
	for _, engine := range []Offload{OffloadUser, OffloadOff} {
		t.Run(engine.String(), func(t *testing.T) {
			pr := newPair(t, true, &Config{TLS: serverTLS(), TX: engine, RX: engine}, clientTLS())
			pr.fc.release()
			tc, hc := weak.Make(pr.k.tls), weak.Make(pr.k.hc)
			pr.handshake(t)
			runtime.GC()
			runtime.GC()
			gone := tc.Value() == nil && hc.Value() == nil
			if want := engine != OffloadOff; gone != want {
				t.Fatalf("crypto/tls's conn released after the hand-off: %v, want %v", gone, want)
			}
			if st := pr.k.ConnectionState(); !st.HandshakeComplete || st.Version != tls.VersionTLS13 {
				t.Fatalf("ConnectionState after the hand-off: complete %v, version %x", st.HandshakeComplete, st.Version)
			}
			echo(t, pr)
			if err := pr.k.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHandOffKeepsTicketClient checks that a TLS 1.3 client with a session
// cache keeps crypto/tls's conn, which stores tickets that arrive after the
// hand-off.
func TestHandOffKeepsTicketClient(t *testing.T) {
	kcfg := &Config{TLS: clientTLS(), TX: OffloadUser, RX: OffloadUser}
	kcfg.TLS.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	pr := newPair(t, false, kcfg, serverTLS())
	pr.fc.release()
	pr.handshake(t)
	if pr.k.tls == nil || pr.k.hc == nil {
		t.Fatal("client with a session cache dropped crypto/tls's conn")
	}
}

// TestKernelScratchReleased checks that a kernel RX connection holds no
// record buffer while idle or waiting for input, takes one when a record is
// read into a buffer smaller than a record, and gives it back once its
// plaintext is consumed.
func TestKernelScratchReleased(t *testing.T) {
	ktlstest.RequireKernel(t)
	engine := engineFor(OffloadKernel, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: engine, RX: engine, KernelWithoutRekey: true}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	if _, rx := pr.k.Mode(); rx != ModeKernel {
		t.Fatalf("RX mode %v, want kernel", rx)
	}
	// Nothing to read: Read waits without a buffer.
	pr.k.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := pr.k.Read(make([]byte, 4096)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past deadline: %v", err)
	}
	if pr.k.in.scratch != nil && kernel.SpliceRXSafe() {
		t.Fatal("scratch buffer taken by a Read with nothing to read")
	}
	pr.k.SetReadDeadline(time.Time{})
	data := testData(10000, 3)
	errc := make(chan error, 1)
	go func() { _, err := pr.p.Write(data); errc <- err }()
	got := make([]byte, 0, len(data))
	buf := make([]byte, 4096)
	for len(got) < len(data) {
		n, err := pr.k.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		if held := pr.k.in.scratch != nil; held != (len(pr.k.in.pending) > 0) {
			t.Fatalf("after %d bytes: scratch held %v with %d bytes pending", len(got), held, len(pr.k.in.pending))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) {
		t.Fatal("data differs")
	}
	if pr.k.in.scratch != nil {
		t.Fatal("scratch buffer kept after its plaintext was read")
	}
	// A buffer of a whole record is received into directly.
	go func() { _, err := pr.p.Write(data); errc <- err }()
	big := make([]byte, record.MaxPlaintext)
	for n := 0; n < len(data); {
		m, err := pr.k.Read(big)
		if err != nil {
			t.Fatal(err)
		}
		n += m
		if pr.k.in.scratch != nil {
			t.Fatal("scratch buffer taken for a buffer of a whole record")
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// WriteTo reads records other than data (here close_notify) into a
	// pooled buffer, and gives it back too.
	go func() {
		_, err := pr.p.Write(data)
		if err == nil {
			err = pr.p.CloseWrite()
		}
		errc <- err
	}()
	var sink bytes.Buffer
	if n, err := pr.k.WriteTo(&sink); err != nil || !bytes.Equal(sink.Bytes(), data) {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if pr.k.in.scratch != nil {
		t.Fatal("scratch buffer kept after WriteTo")
	}
}
