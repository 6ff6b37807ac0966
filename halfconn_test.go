package ktls

import (
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// startedReader reports its first Read on started.
type startedReader struct {
	r       io.Reader
	once    sync.Once
	started chan struct{}
}

func (s *startedReader) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.started) })
	return s.r.Read(p)
}

// waitFor fails the test if ch does not deliver within a generous time: a
// guard against hangs, not a timing assertion.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: still blocked after 60s", what)
		panic("unreachable")
	}
}

func TestReadFromKeyUpdate(t *testing.T) { testReadFromKeyUpdate(t, OffloadUser) }

func TestKernelReadFromKeyUpdate(t *testing.T) {
	ktlstest.RequireKernel(t)
	testReadFromKeyUpdate(t, OffloadKernel)
}

// testReadFromKeyUpdate is issue 13.2: ReadFrom blocked on its source (a
// pipe, a socket) while the peer sends KeyUpdate(update_requested) and
// data. Read must return the data, and our answer must go out before the
// next data ReadFrom sends.
func testReadFromKeyUpdate(t *testing.T, engine Offload) {
	canRekey := engine != OffloadKernel || kernel.Rekey() == nil
	for _, src := range []string{"pipe", "tcp"} {
		t.Run(src, func(t *testing.T) {
			k, rp := newRawPeer(t, engine, true)
			var (
				r       io.Reader
				w       io.WriteCloser
				started = make(chan struct{})
			)
			if src == "pipe" {
				pr, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer pr.Close()
				r, w = &startedReader{r: pr, started: started}, pw
			} else {
				// A socket source (splice(2) on the kernel
				// engine): no hook to see ReadFrom start.
				a, b := tcpPair(t)
				r, w = a, b
				close(started)
			}
			type res struct {
				n   int64
				err error
			}
			rf := make(chan res, 1)
			go func() {
				n, err := k.ReadFrom(r)
				rf <- res{n, err}
			}()
			<-started
			rp.keyUpdate(true)
			rp.send(record.TypeApplicationData, []byte("hello"))
			read := make(chan res, 1)
			buf := make([]byte, 10)
			go func() {
				n, err := k.Read(buf)
				read <- res{int64(n), err}
			}()
			got := waitFor(t, read, "Read while ReadFrom waits for its source")
			if !canRekey {
				if got.err == nil || !strings.Contains(got.err.Error(), "cannot re-key") {
					t.Fatalf("Read = %v; want the kernel's re-key error", got.err)
				}
				w.Close()
				waitFor(t, rf, "ReadFrom")
				return
			}
			if got.err != nil || string(buf[:got.n]) != "hello" {
				t.Fatalf("Read = %q, %v; want hello", buf[:got.n], got.err)
			}
			w.Write([]byte("world"))
			w.Close()
			if r := waitFor(t, rf, "ReadFrom"); r.n != 5 || r.err != nil {
				t.Fatalf("ReadFrom = %d, %v; want 5, nil", r.n, r.err)
			}
			typ, p, err := rp.recv()
			if err != nil || typ != record.TypeHandshake || len(p) != 5 || p[0] != typeKeyUpdate || p[4] != 0 {
				t.Fatalf("peer got %v %x, %v; want our KeyUpdate(update_not_requested) first", typ, p, err)
			}
			if typ, p, err := rp.recv(); err != nil || typ != record.TypeApplicationData || string(p) != "world" {
				t.Fatalf("peer got %v %q, %v; want world under the new key", typ, p, err)
			}
		})
	}
}

func TestKeyUpdateAnsweredOnce(t *testing.T) { testKeyUpdateAnsweredOnce(t, OffloadUser) }

func TestKernelKeyUpdateAnsweredOnce(t *testing.T) {
	ktlstest.RequireKernel(t)
	if kernel.Rekey() != nil {
		// Reasoned: the kernel before 6.14 cannot follow the KeyUpdate
		// at all (TestKernelKeyUpdate checks the error).
		t.Log("kernel without rekey: covered by TestKernelKeyUpdate")
		return
	}
	testKeyUpdateAnsweredOnce(t, OffloadKernel)
}

// testKeyUpdateAnsweredOnce: several KeyUpdate(update_requested) received
// while we send nothing get one answer, before our next record (RFC 8446
// section 4.6.3); Read never sends.
func testKeyUpdateAnsweredOnce(t *testing.T, engine Offload) {
	k, rp := newRawPeer(t, engine, true)
	for range 3 {
		rp.keyUpdate(true)
	}
	rp.send(record.TypeApplicationData, []byte("x"))
	if _, err := io.ReadFull(k, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	if typ, p, err := rp.recv(); err != nil || typ != record.TypeHandshake || len(p) != 5 || p[0] != typeKeyUpdate || p[4] != 0 {
		t.Fatalf("peer got %v %x, %v; want one KeyUpdate(update_not_requested)", typ, p, err)
	}
	if typ, p, err := rp.recv(); err != nil || typ != record.TypeApplicationData || string(p) != "reply" {
		t.Fatalf("peer got %v %q, %v; want the reply right after one KeyUpdate", typ, p, err)
	}
}

func TestAlertNotLost(t *testing.T) { testAlertNotLost(t, OffloadUser) }

func TestKernelAlertNotLost(t *testing.T) {
	ktlstest.RequireKernel(t)
	testAlertNotLost(t, OffloadKernel)
}

// testAlertNotLost is issue 13.3: a bad record arrives while a Write holds
// the sending direction (blocked: the peer does not read). The alert must
// go out once the Write is done, and the Close after it must send no
// close_notify.
func testAlertNotLost(t *testing.T, engine Offload) {
	k, rp := newRawPeer(t, engine, true)
	size := 64 << 20 // far more than the socket buffers hold
	if inLab {
		size = 24 << 20
	}
	// The peer reads all of it through the slow crypto of the lab.
	deadline := time.Now().Add(3 * time.Minute)
	k.SetDeadline(deadline)
	rp.conn.SetDeadline(deadline)
	wdone := make(chan error, 1)
	go func() {
		_, err := k.Write(make([]byte, size))
		wdone <- err
	}()
	for k.out.TryLock() { // until the Write holds it
		k.out.Unlock()
		select {
		case err := <-wdone:
			t.Fatalf("Write of %d bytes returned (%v) before the peer read anything", size, err)
		case <-time.After(time.Millisecond):
		}
	}
	rec, err := rp.sealer(rp.txSecret).Seal(nil, record.TypeApplicationData, []byte("bad"))
	if err != nil {
		t.Fatal(err)
	}
	rec[len(rec)-1] ^= 1
	rp.conn.Write(rec)
	// The Read fails, and its alert goes out after the Write's data: sent
	// by the Write if it still holds the sending direction when the alert
	// is posted, else by the Read itself. Under kernel TLS the Write may
	// well end first: Linux fails it with the EBADMSG the Read's recvmsg
	// leaves on the socket, before the Read has posted the alert. The Read
	// then waits for room in the socket to send the alert, so the peer
	// must read meanwhile: the Read runs beside it.
	rdone := make(chan error, 1)
	go func() {
		_, err := k.Read(make([]byte, 10))
		rdone <- err
	}()
	// The peer reads again: the data, then the alert.
	rp.wantAlert(record.AlertBadRecordMAC)
	if err := waitFor(t, rdone, "Read"); !errors.Is(err, syscall.EBADMSG) {
		t.Fatalf("Read = %v, want EBADMSG", err)
	}
	werr := waitFor(t, wdone, "Write")
	t.Logf("Write: %v", werr)
	if _, err := k.Write([]byte("more")); err == nil {
		t.Error("Write after the fatal alert succeeded")
	}
	k.Close()
	if typ, p, err := rp.recv(); err == nil {
		t.Fatalf("peer got %v %x after the fatal alert; want the end of the stream", typ, p)
	}
}

func TestNoCloseNotifyAfterAlert(t *testing.T) { testNoCloseNotifyAfterAlert(t, OffloadUser) }

func TestKernelNoCloseNotifyAfterAlert(t *testing.T) {
	ktlstest.RequireKernel(t)
	testNoCloseNotifyAfterAlert(t, OffloadKernel)
}

// testNoCloseNotifyAfterAlert: after a fatal alert, sent or received,
// neither CloseWrite nor Close sends close_notify, and Write fails.
func testNoCloseNotifyAfterAlert(t *testing.T, engine Offload) {
	t.Run("received", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, true)
		rp.send(record.TypeAlert, []byte{2, byte(record.AlertHandshakeFailure)})
		if _, err := k.Read(make([]byte, 1)); err == nil {
			t.Fatal("Read succeeded")
		}
		if _, err := k.Write([]byte("x")); err == nil {
			t.Error("Write after the peer's fatal alert succeeded")
		}
		k.Close()
		if typ, p, err := rp.recv(); err == nil {
			t.Fatalf("peer got %v %x after its fatal alert; want the end of the stream", typ, p)
		}
	})
	k, rp := newRawPeer(t, engine, true)
	rp.send(record.TypeHandshake, []byte{1, 0, 0, 0})
	if _, err := k.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read succeeded")
	}
	rp.wantAlert(record.AlertUnexpectedMessage)
	k.CloseWrite()
	k.Close()
	if typ, p, err := rp.recv(); err == nil {
		t.Fatalf("peer got %v %x after the fatal alert; want the end of the stream", typ, p)
	}
}
