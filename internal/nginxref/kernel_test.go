package nginxref

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/ktlstest"
)

// tlsStat reads /proc/net/tls_stat.
func tlsStat(t *testing.T) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tls_stat")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 2 {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("/proc/net/tls_stat: %q", s.Text())
			}
			m[f[0]] = v
		}
	}
	return m
}

// TestKernelNginxKTLS fetches 1 MiB from nginx over TLS 1.2 and 1.3: with
// ssl_conf_command Options KTLS, OpenSSL hands the sending direction to
// the kernel (TlsTxSw and, while the connection is open, TlsCurrTxSw go up
// by one); without it the kernel's counters do not move.
func TestKernelNginxKTLS(t *testing.T) {
	ktlstest.RequireKernel(t)
	needNginx(t)
	f := newFixture(t, 1<<20)
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	t.Logf("kernel %s", bytes.TrimSpace(release))
	for _, ktls := range []bool{true, false} {
		cfg := f.config(ktls)
		// AES-GCM, which every lab kernel has (5.10 lacks ChaCha20-Poly1305).
		cfg.Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"
		cfg.Ciphersuites = "TLS_AES_128_GCM_SHA256"
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s, err := Start(ctx, cfg)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			name := "KTLS=" + strconv.FormatBool(ktls) + "/" + tls.VersionName(v)
			t.Run(name, func(t *testing.T) {
				before := tlsStat(t)
				c := f.client(v, false)
				f.get(t, c, s.Addr, "HTTP/1.1")
				during := tlsStat(t)
				c.CloseIdleConnections()
				d := func(k string) int64 { return during[k] - before[k] }
				t.Logf("during the connection: TlsTxSw %+d, TlsCurrTxSw %+d, TlsRxSw %+d, TlsCurrRxSw %+d",
					d("TlsTxSw"), d("TlsCurrTxSw"), d("TlsRxSw"), d("TlsCurrRxSw"))
				want := int64(0)
				if ktls {
					want = 1
				}
				if d("TlsTxSw") != want || d("TlsCurrTxSw") != want {
					t.Errorf("TlsTxSw %+d, TlsCurrTxSw %+d during the connection, want %+d each\nnginx: %s",
						d("TlsTxSw"), d("TlsCurrTxSw"), want, s.ErrorLog())
				}
				if !ktls && (d("TlsRxSw") != 0 || d("TlsCurrRxSw") != 0) {
					t.Errorf("TlsRxSw %+d, TlsCurrRxSw %+d without KTLS", d("TlsRxSw"), d("TlsCurrRxSw"))
				}
				// nginx closes its side when it sees the client's FIN: wait
				// for the gauges to come back, so the next case starts clean.
				deadline := time.Now().Add(time.Minute)
				for {
					after := tlsStat(t)
					if after["TlsCurrTxSw"] == before["TlsCurrTxSw"] && after["TlsCurrRxSw"] == before["TlsCurrRxSw"] {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("TlsCurrTxSw %d, TlsCurrRxSw %d a minute after closing, want %d, %d",
							after["TlsCurrTxSw"], after["TlsCurrRxSw"], before["TlsCurrTxSw"], before["TlsCurrRxSw"])
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
		if err := s.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
}
