package ktlshttp

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktls-go/ktls"
)

// recordCounter is a net.Conn that counts the TLS records it reads from the
// wire, by their 5-byte headers.
type recordCounter struct {
	net.Conn
	records int
	hdr     []byte // the header being read
	skip    int    // bytes of the current record's body still to come
}

func (c *recordCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) == 5 {
			c.records++
			c.skip = int(c.hdr[3])<<8 | int(c.hdr[4])
			c.hdr = c.hdr[:0]
		}
	}
	return n, err
}

// responseRecords serves the files in files (name to size) with cfg's
// policy and returns, for each request "METHOD /name", the number of
// records its response took on the wire. Each request is made twice on one
// keep-alive connection and the second one counted, after what TLS 1.3
// sends once after the handshake (session tickets). A response that never
// comes (a header held back) fails the test at the deadline.
func responseRecords(t *testing.T, cfg ktls.Config, files map[string]int, requests []string) map[string]int {
	t.Helper()
	dir := t.TempDir()
	for name, size := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat("k", size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ts := startServer(t, http.FileServer(http.Dir(dir)), nil, func(s *Server) {
		s.Config.TX, s.Config.RX = cfg.TX, cfg.RX
		s.Config.TLS.MaxVersion = cfg.TLS.MaxVersion
		s.Config.TLS.NextProtos = []string{"http/1.1"}
	})
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordCounter{Conn: raw}
	tc := tls.Client(rc, &tls.Config{RootCAs: ts.pool, ServerName: "127.0.0.1"})
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(time.Minute)) // against a hang only
	br := bufio.NewReader(tc)
	got := make(map[string]int)
	for _, req := range requests {
		method, path, _ := strings.Cut(req, " ")
		for i := range 2 {
			before := rc.records
			fmt.Fprintf(tc, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path)
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("%s: %v", req, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %s, %d bytes, %v", req, resp.Status, len(body), err)
			}
			if want := files[strings.TrimPrefix(path, "/")]; method == "GET" && len(body) != want {
				t.Fatalf("%s: %d bytes, want %d", req, len(body), want)
			}
			if br.Buffered() > 0 {
				t.Fatalf("%s: %d bytes after the response", req, br.Buffered())
			}
			if i == 1 {
				got[req] = rc.records - before
			}
		}
	}
	return got
}

// smallResponses are the cases of TestSmallResponseRecords and
// TestKernelSmallResponseRecords, with the records each response must
// take: one for a header with a small body, which sendfile (kernel) or the
// record layer (user space) sends in the header's record.
var smallResponses = []struct {
	req     string
	records int
}{
	{"GET /4k", 1},    // 512 bytes sniffed with the header, the rest by ReadFrom
	{"GET /100", 1},   // all sniffed: header and body written at the end
	{"GET /empty", 1}, // the header alone
	{"HEAD /4k", 1},   // the header alone
	{"GET /20k", 2},   // header and 16 KiB of data, then the rest
}

var smallFiles = map[string]int{"4k": 4096, "100": 100, "empty": 0, "20k": 20 << 10}

func checkSmallResponses(t *testing.T, tx ktls.Offload) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := ktls.Config{TLS: &tls.Config{MaxVersion: v}, TX: tx, RX: ktls.OffloadAuto}
		got := responseRecords(t, cfg, smallFiles, func() (r []string) {
			for _, c := range smallResponses {
				r = append(r, c.req)
			}
			return r
		}())
		for _, c := range smallResponses {
			if got[c.req] != c.records {
				t.Errorf("%s, %s: %d records, want %d", tls.VersionName(v), c.req, got[c.req], c.records)
			}
		}
		t.Logf("%s: records per response %v", tls.VersionName(v), got)
	}
}

// TestSmallResponseRecords checks that a small file's response header and
// body go in one record with the sending direction in user space, and that
// a HEAD response and an empty file are not held back.
func TestSmallResponseRecords(t *testing.T) {
	checkSmallResponses(t, ktls.OffloadUser)
}
