package ktlshttp

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/kernel"
)

// BenchmarkFileServer downloads a 4 MiB file over HTTP/1.1 and HTTP/2 with
// the transmit direction on crypto/tls (off), in user space and in the
// kernel (where it has TLS). Only ratios within one run mean anything.
func BenchmarkFileServer(b *testing.B) {
	const size = 4 << 20
	dir := b.TempDir()
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	for _, tx := range []ktls.Offload{ktls.OffloadOff, ktls.OffloadUser, ktls.OffloadKernel} {
		for _, h2 := range []bool{false, true} {
			proto := map[bool]string{false: "h1", true: "h2"}[h2]
			b.Run(fmt.Sprintf("tx=%v/%s", tx, proto), func(b *testing.B) {
				if tx == ktls.OffloadKernel && kernel.Supported() != nil {
					b.Skip("no kernel TLS")
				}
				rx := tx
				if tx == ktls.OffloadKernel {
					rx = ktls.OffloadAuto
				}
				ts := startServer(b, http.FileServer(RootFS(root)), nil, func(s *Server) {
					s.Config.TX, s.Config.RX = tx, rx
				})
				c := ts.client(h2)
				defer c.CloseIdleConnections()
				b.SetBytes(size)
				b.ResetTimer()
				for b.Loop() {
					resp, err := c.Get(ts.url("/f.bin"))
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || n != size {
						b.Fatalf("%d bytes, %v", n, err)
					}
				}
			})
		}
	}
}
