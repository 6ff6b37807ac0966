package ktls

import (
	"crypto/tls"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// TestKernelConfigOptions: Config.ZerocopySendfile and Config.ExpectNoPad
// reach the kernel (read back with getsockopt) on both directions in the
// kernel: ZerocopySendfile on TX for TLS 1.2 and 1.3, ExpectNoPad on RX for
// TLS 1.3 only (TLS 1.2 has no padding: it is not asked for). Nothing is
// refused by 6.1 and later, which have both; 5.10 refuses both and the
// refusals are counted. Data still flows both ways, including a sendfile.
// Without the fields nothing is set.
func TestKernelConfigOptions(t *testing.T) {
	ktlstest.RequireKernel(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, on := range []bool{true, false} {
			name := tls.VersionName(v)
			if !on {
				name += " unset"
			}
			t.Run(name, func(t *testing.T) {
				refused := Stats().KernelOptionsRefused
				ct, st := tcpPair(t)
				ct.SetDeadline(time.Now().Add(3 * time.Minute))
				st.SetDeadline(time.Now().Add(3 * time.Minute))
				scfg := serverTLS()
				scfg.MaxVersion = v
				s := Server(st, &Config{TLS: scfg, TX: OffloadKernel, RX: OffloadKernel, KernelWithoutRekey: true,
					ZerocopySendfile: on, ExpectNoPad: on})
				defer s.Close()
				cl := tls.Client(ct, clientTLS())
				defer cl.Close()
				errc := make(chan error, 1)
				go func() { errc <- cl.Handshake() }()
				if err := s.Handshake(); err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				asked := 0
				if on {
					asked = 1 // ZerocopySendfile
					if v == tls.VersionTLS13 {
						asked = 2 // and ExpectNoPad
					}
				}
				zc, err := kernel.GetOption(s.rc, kernel.ZerocopySendfile)
				if errors.Is(err, syscall.ENOPROTOOPT) {
					// A kernel before 5.19 (the lab's 5.10) has neither
					// option: each one asked for is refused and counted,
					// and the connection goes on without them.
					if n := Stats().KernelOptionsRefused - refused; n != uint64(asked) {
						t.Errorf("kernel without the options: %d refusals counted, want %d", n, asked)
					}
				} else {
					if err != nil || zc != on {
						t.Errorf("%v: %v, %v; want %v", kernel.ZerocopySendfile, zc, err, on)
					}
					np, err := kernel.GetOption(s.rc, kernel.ExpectNoPad)
					switch {
					case v == tls.VersionTLS12:
						// TLS 1.2 has no padding: Linux refuses the option.
						if !errors.Is(err, syscall.EINVAL) {
							t.Errorf("%v on TLS 1.2: %v, %v; want EINVAL", kernel.ExpectNoPad, np, err)
						}
					case err != nil || np != on:
						t.Errorf("%v: %v, %v; want %v", kernel.ExpectNoPad, np, err, on)
					}
					if n := Stats().KernelOptionsRefused - refused; n != 0 {
						t.Errorf("%d options refused", n)
					}
				}
				// Data both ways: the client's records decrypted by the
				// kernel (with ExpectNoPad straight into Read's buffer),
				// the server's sent by sendfile.
				go cl.Write([]byte("ping"))
				buf := make([]byte, 4)
				if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
					t.Fatalf("read %q, %v", buf, err)
				}
				f := tempFile(t, make([]byte, 100000))
				go s.ReadFrom(f)
				got, err := io.ReadAll(io.LimitReader(cl, 100000))
				if err != nil || len(got) != 100000 {
					t.Fatalf("read %d bytes of the file, %v", len(got), err)
				}
			})
		}
	}
}

// tempFile returns a file holding data, open at its start, closed when t
// ends.
func tempFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "data")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f
}

// BenchmarkKernelExpectNoPad reads TLS 1.3 records from a crypto/tls
// sender through kernel RX with and without Config.ExpectNoPad (lab only):
// go run ./internal/cmd/ktlslab test -kernel 7 . -- -run XXX -bench KernelExpectNoPad -benchtime 256x
func BenchmarkKernelExpectNoPad(b *testing.B) {
	ktlstest.RequireKernel(b)
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			ct, st := tcpPair(b)
			s := Server(st, &Config{TLS: serverTLS(), TX: OffloadKernel, RX: OffloadKernel, KernelWithoutRekey: true, ExpectNoPad: on})
			defer s.Close()
			cl := tls.Client(ct, clientTLS())
			defer cl.Close()
			const chunk = 1 << 20
			go func() {
				data := make([]byte, chunk)
				for range b.N {
					if _, err := cl.Write(data); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 256<<10)
			b.SetBytes(chunk)
			b.ResetTimer()
			for total := 0; total < b.N*chunk; {
				n, err := s.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				total += n
			}
		})
	}
}
