package ktls

import (
	"crypto/tls"
	"encoding/json"
	"expvar"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// TestStats checks that the counters move as documented over a user-space
// connection's life, and the Prometheus and expvar outputs.
func TestStats(t *testing.T) {
	before := Stats()
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: OffloadUser, RX: OffloadUser}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	mid := Stats()
	if mid.Handshakes <= before.Handshakes || mid.CurrentTX.User <= before.CurrentTX.User || mid.TotalRX.User <= before.TotalRX.User {
		t.Errorf("after the handshake: %+v", mid)
	}
	go pr.p.Write(make([]byte, 20000))
	if _, err := io.ReadFull(pr.k, make([]byte, 20000)); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.k.Write(make([]byte, 40000)); err != nil {
		t.Fatal(err)
	}
	s := Stats()
	if s.BytesRX-mid.BytesRX < 20000 || s.RecordsRX-mid.RecordsRX < 2 || s.BytesTX-mid.BytesTX < 40000 || s.RecordsTX-mid.RecordsTX < 3 {
		t.Errorf("records/bytes: rx %d/%d tx %d/%d", s.RecordsRX-mid.RecordsRX, s.BytesRX-mid.BytesRX, s.RecordsTX-mid.RecordsTX, s.BytesTX-mid.BytesTX)
	}
	pr.k.Close()
	if after := Stats(); after.CurrentTX.User != s.CurrentTX.User-1 && !testing.Short() {
		t.Logf("gauge moved by other tests too: %d -> %d", s.CurrentTX.User, after.CurrentTX.User)
	}

	if Stats().Handshakes < 1 {
		t.Error("Handshakes < 1")
	}

	v := expvar.Get("ktls")
	if v == nil {
		t.Fatal("no expvar ktls")
	}
	var got Statistics
	if err := json.Unmarshal([]byte(v.String()), &got); err != nil || got.Handshakes < 1 {
		t.Errorf("expvar ktls = %s (%v)", v.String(), err)
	}
}

// TestSwitches checks SetKernelEnabled and SetCBCEnabled: with the kernel
// switched off, OffloadAuto falls back (reason "disabled") and OffloadKernel
// fails; a CBC suite counts as "cbc" or "cipher" by the CBC switch.
func TestSwitches(t *testing.T) {
	defer SetKernelEnabled(KernelEnabled())
	defer SetCBCEnabled(CBCEnabled())
	SetKernelEnabled(false)
	before := Stats().Fallbacks
	pr := newPair(t, true, &Config{TLS: serverTLS()}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	if tx, rx := pr.k.Mode(); tx != ModeUser || rx != ModeUser {
		t.Errorf("switched off: Mode() = %v, %v", tx, rx)
	}
	if got := Stats().Fallbacks.Disabled - before.Disabled; got < 2 {
		t.Errorf("disabled fallbacks = %d, want >= 2", got)
	}
	if s := Stats(); s.KernelEnabled {
		t.Error("Stats().KernelEnabled = true")
	}
	pr = newPair(t, true, &Config{TLS: serverTLS(), TX: OffloadKernel}, clientTLS())
	pr.fc.release()
	go pr.p.Handshake()
	if err := pr.k.Handshake(); err == nil || !strings.Contains(err.Error(), "switched off") {
		t.Errorf("OffloadKernel while switched off: %v", err)
	}
	pr.kside.Close()
	SetKernelEnabled(true)

	sc := suiteCase{"tls12-cbc", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	for _, on := range []bool{false, true} {
		SetCBCEnabled(on)
		before := Stats().Fallbacks
		pr := newPair(t, true, &Config{TLS: limit(serverTLS(), sc)}, limit(clientTLS(), sc))
		pr.fc.release()
		pr.handshake(t)
		after := Stats().Fallbacks
		if on && after.Cipher <= before.Cipher || !on && after.CBC <= before.CBC {
			t.Errorf("cbc_enable=%v: fallbacks %+v -> %+v", on, before, after)
		}
	}

	t.Setenv("KTLS_TEST_SWITCH", "0")
	if envBool("KTLS_TEST_SWITCH", true) {
		t.Error(`envBool("0") = true`)
	}
	t.Setenv("KTLS_TEST_SWITCH", "on")
	if !envBool("KTLS_TEST_SWITCH", false) {
		t.Error(`envBool("on") = false`)
	}
}

// TestKernelAutoRekeyPolicy checks that OffloadAuto keeps TLS 1.3 out of a
// kernel that cannot re-key, unless KernelWithoutRekey.
func TestKernelAutoRekeyPolicy(t *testing.T) {
	ktlstest.RequireKernel(t)
	want := ModeKernel
	if kernel.Rekey() != nil {
		want = ModeUser
	}
	for _, without := range []bool{false, true} {
		pr := newPair(t, true, &Config{TLS: serverTLS(), KernelWithoutRekey: without}, clientTLS())
		pr.fc.release()
		pr.handshake(t)
		w := want
		if without {
			w = ModeKernel
		}
		if tx, rx := pr.k.Mode(); tx != w || rx != w {
			t.Errorf("KernelWithoutRekey=%v: Mode() = %v, %v; want %v", without, tx, rx, w)
		}
		echo(t, pr)
	}
}

// TestClone checks that Clone copies every field and the TLS config.
func TestClone(t *testing.T) {
	c := &Config{TLS: serverTLS(), TX: OffloadUser, RX: OffloadKernel, KernelWithoutRekey: true}
	d := c.Clone()
	if d.TX != c.TX || d.RX != c.RX || !d.KernelWithoutRekey || d.TLS == c.TLS || len(d.TLS.Certificates) != 1 {
		t.Errorf("Clone() = %+v", d)
	}
	d.TLS.ServerName = "x"
	if c.TLS.ServerName == "x" {
		t.Error("Clone shares the tls.Config")
	}
	if (*Config)(nil).Clone() != nil {
		t.Error("nil.Clone() != nil")
	}
}

// TestReadFromAllocs checks that ReadFrom in user space does not allocate
// a copy buffer per call.
func TestReadFromAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, engine := range []Offload{OffloadUser, OffloadOff} {
		pr := newPair(t, true, &Config{TLS: serverTLS(), TX: engine, RX: engine}, clientTLS())
		pr.fc.release()
		pr.handshake(t)
		go io.Copy(io.Discard, pr.p)
		data := make([]byte, 64<<10)
		r := &repeatReader{data: data}
		pr.k.ReadFrom(r) // warm up
		var m1, m2 runtime.MemStats
		runtime.ReadMemStats(&m1)
		const runs = 20
		for range runs {
			r.off = 0
			if _, err := pr.k.ReadFrom(r); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&m2)
		if per := (m2.TotalAlloc - m1.TotalAlloc) / runs; per > 32<<10 {
			t.Errorf("%v: ReadFrom allocates %d bytes per call", engine, per)
		}
	}
}

// repeatReader reads data once, without allocating.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

var _ net.Conn = (*Conn)(nil)

// TestKernelStats checks the per-mode counters of a kernel connection.
func TestKernelStats(t *testing.T) {
	ktlstest.RequireKernel(t)
	before := Stats()
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: OffloadKernel, RX: OffloadKernel}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	mid := Stats()
	if mid.TotalTX.Kernel <= before.TotalTX.Kernel || mid.TotalRX.Kernel <= before.TotalRX.Kernel || mid.CurrentTX.Kernel <= before.CurrentTX.Kernel {
		t.Errorf("kernel connection not counted: %+v -> %+v", before, mid)
	}
	if _, err := pr.k.Write([]byte("to peer")); err != nil {
		t.Fatal(err)
	}
	go pr.p.Write([]byte("to ktls"))
	buf := make([]byte, 7)
	if _, err := io.ReadFull(pr.k, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(pr.p, buf); err != nil {
		t.Fatal(err)
	}
	s := Stats()
	if s.BytesTX <= mid.BytesTX || s.BytesRX <= mid.BytesRX {
		t.Errorf("bytes not counted: tx %d -> %d, rx %d -> %d", mid.BytesTX, s.BytesTX, mid.BytesRX, s.BytesRX)
	}
	if s.TotalTX.Kernel < 1 {
		t.Errorf("TotalTX.Kernel = %d, want at least 1", s.TotalTX.Kernel)
	}
}

// TestSwitchesFromEnvironment checks that KTLS_ENABLE and KTLS_CBC_ENABLE
// set the switches at start-up, in a child process.
func TestSwitchesFromEnvironment(t *testing.T) {
	if os.Getenv("KTLS_TEST_ENV_CHILD") == "1" {
		fmt.Printf("enable=%v cbc=%v\n", KernelEnabled(), CBCEnabled())
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSwitchesFromEnvironment$")
	cmd.Env = append(os.Environ(), "KTLS_TEST_ENV_CHILD=1", "KTLS_ENABLE=0", "KTLS_CBC_ENABLE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "enable=false cbc=true") {
		t.Errorf("child: %v\n%s", err, out)
	}
}
