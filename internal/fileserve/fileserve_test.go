package fileserve

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// connWriter is a ResponseWriter as net/http's HTTP/1.x one looks to a
// handler: ReadFrom (which hands file bodies to the connection's ReadFrom)
// and SetWriteDeadline (for http.ResponseController). It records the
// readers ReadFrom gets and the deadlines set.
type connWriter struct {
	h         http.Header
	status    int
	body      strings.Builder
	readers   []io.Reader
	steps     []int64 // the limits of the io.LimitedReaders ReadFrom got
	deadlines []time.Time
}

func newConnWriter() *connWriter { return &connWriter{h: make(http.Header)} }

func (w *connWriter) Header() http.Header { return w.h }

func (w *connWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *connWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *connWriter) ReadFrom(r io.Reader) (int64, error) {
	w.WriteHeader(http.StatusOK)
	w.readers = append(w.readers, r)
	if lr, ok := r.(*io.LimitedReader); ok {
		w.steps = append(w.steps, lr.N)
	}
	return io.Copy(&w.body, r)
}

func (w *connWriter) SetWriteDeadline(t time.Time) error {
	w.deadlines = append(w.deadlines, t)
	return nil
}

// sendfileSource reports whether a ktls.Conn's ReadFrom can send r with
// sendfile(2): a file, or an io.LimitedReader of one, as ReadFrom gets it
// (a step of one limit, not a limit of a limit).
func sendfileSource(r io.Reader) bool {
	if lr, ok := r.(*io.LimitedReader); ok {
		r = lr.R
	}
	// What ktls.Conn.ReadFrom sends with sendfile(2): an *os.File, or a
	// type wrapping one.
	_, ok := r.(interface {
		io.Reader
		Stat() (fs.FileInfo, error)
		SyscallConn() (syscall.RawConn, error)
	})
	return ok
}

// countingFS counts the opens of each name.
type countingFS struct {
	http.FileSystem
	mu    sync.Mutex
	opens map[string]int
}

func (c *countingFS) Open(name string) (http.File, error) {
	c.mu.Lock()
	c.opens[name]++
	c.mu.Unlock()
	return c.FileSystem.Open(name)
}

// testTree makes a directory with big.bin (1 MiB + 1), 4k.bin and
// site/index.html.
func testTree(t *testing.T) string {
	dir := t.TempDir()
	for name, size := range map[string]int{"big.bin": 1<<20 + 1, "4k.bin": 4096, "site/index.html": 100} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func serve(h http.Handler, w http.ResponseWriter, method, target string, hdr ...string) {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	h.ServeHTTP(w, r)
}

// TestReadFromFile: file bodies reach the connection's ReadFrom as a file
// that sendfile can send (with write deadlines too, which cut the body in
// steps), whole or in a range.
func TestReadFromFile(t *testing.T) {
	dir := testTree(t)
	for _, d := range []time.Duration{0, time.Minute, time.Nanosecond} {
		h := Handler(http.Dir(dir), d)
		for _, c := range []struct {
			hdr  []string
			size int
		}{{nil, 1<<20 + 1}, {[]string{"Range", "bytes=1000-600999"}, 600000}} {
			w := newConnWriter()
			serve(h, w, "GET", "/big.bin", c.hdr...)
			if w.body.Len() != c.size || len(w.readers) == 0 {
				t.Fatalf("timeout %v, %q: %d, %d bytes, %d ReadFrom calls", d, c.hdr, w.status, w.body.Len(), len(w.readers))
			}
			for _, r := range w.readers {
				if !sendfileSource(r) {
					t.Errorf("timeout %v, %q: ReadFrom got a %T, not a file (or an io.LimitedReader of one): no sendfile", d, c.hdr, r)
				}
			}
		}
	}
}

// TestOpenOnce: each name is opened once per request, whatever the answer,
// and the ETag is set where a regular file is served.
func TestOpenOnce(t *testing.T) {
	dir := testTree(t)
	fsys := &countingFS{FileSystem: http.Dir(dir), opens: map[string]int{}}
	h := Handler(fsys, time.Minute)
	w := newConnWriter()
	serve(h, w, "GET", "/4k.bin")
	etag := w.h.Get("ETag")
	if w.status != 200 || etag == "" {
		t.Fatalf("GET /4k.bin: %d, ETag %q", w.status, etag)
	}
	for _, c := range []struct {
		method, target string
		hdr            []string
		status         int
		etag           bool
	}{
		{"GET", "/4k.bin", nil, 200, true},
		{"HEAD", "/4k.bin", nil, 200, true},
		{"POST", "/4k.bin", nil, 200, false},
		{"GET", "/4k.bin", []string{"If-None-Match", etag}, 304, true},
		{"GET", "/4k.bin", []string{"Range", "bytes=0-9", "If-Range", etag}, 206, true},
		{"GET", "/4k.bin", []string{"Range", "bytes=0-9", "If-Range", `"old"`}, 200, true},
		{"GET", "/4k.bin/", nil, 301, false},
		{"GET", "/site/", nil, 200, true},
		{"GET", "/site", nil, 301, false},
		{"GET", "/site/index.html", nil, 301, false},
		{"GET", "/", nil, 200, false}, // a listing
		{"GET", "/nothere", nil, 404, false},
	} {
		clear(fsys.opens)
		w := newConnWriter()
		serve(h, w, c.method, c.target, c.hdr...)
		if w.status != c.status || (w.h.Get("ETag") != "") != c.etag {
			t.Errorf("%s %s %q: %d, ETag %q; want %d, ETag %v", c.method, c.target, c.hdr, w.status, w.h.Get("ETag"), c.status, c.etag)
		}
		for name, n := range fsys.opens {
			if n > 1 {
				t.Errorf("%s %s %q: %s opened %d times", c.method, c.target, c.hdr, name, n)
			}
		}
	}
}

// TestWriteDeadlines: a response's writes move the deadline (once for a
// small file), a response without a body write too (after the handler),
// none with no timeout; each deadline is the timeout from the move.
func TestWriteDeadlines(t *testing.T) {
	dir := testTree(t)
	for _, c := range []struct {
		d              time.Duration
		method, target string
		moves          int
	}{
		{time.Minute, "GET", "/4k.bin", 1},
		{time.Minute, "HEAD", "/4k.bin", 1},
		{time.Minute, "GET", "/nothere", 1},
		{time.Minute, "GET", "/big.bin", 1}, // 5 steps, less than d/8 apart
		{0, "GET", "/big.bin", 0},
	} {
		w := newConnWriter()
		before := time.Now()
		serve(Handler(http.Dir(dir), c.d), w, c.method, c.target)
		if len(w.deadlines) != c.moves {
			t.Errorf("timeout %v, %s %s: %d deadlines set, want %d", c.d, c.method, c.target, len(w.deadlines), c.moves)
		}
		for _, dl := range w.deadlines {
			if dl.Before(before.Add(c.d)) || dl.After(time.Now().Add(c.d)) {
				t.Errorf("timeout %v, %s %s: deadline %v, not the timeout from the move", c.d, c.method, c.target, dl)
			}
		}
	}
	// A timeout shorter than the time between the steps moves the deadline
	// at every step (and after the handler).
	w := newConnWriter()
	serve(Handler(http.Dir(dir), time.Nanosecond), w, "GET", "/big.bin")
	if len(w.deadlines) < 5 {
		t.Errorf("timeout 1ns, GET /big.bin: %d deadlines set, want one a step (5) at least", len(w.deadlines))
	}
}

// TestWriteSteps: a file body goes to the connection's ReadFrom in steps
// under one write deadline each; a step done in less than a 16th of the
// timeout makes the next one twice as large (fewer, longer sendfile(2)
// calls for a fast client), a slower one starts again from the first size.
// Without a timeout the body goes in one call.
func TestWriteSteps(t *testing.T) {
	dir := testTree(t) // big.bin: 1 MiB + 1
	for _, c := range []struct {
		d     time.Duration
		steps []int64
	}{
		{time.Hour, []int64{256 << 10, 512 << 10, 256<<10 + 1}},
		{time.Nanosecond, []int64{256 << 10, 256 << 10, 256 << 10, 256 << 10, 1}},
		{0, []int64{1<<20 + 1}},
	} {
		w := newConnWriter()
		serve(Handler(http.Dir(dir), c.d), w, "GET", "/big.bin")
		if w.body.Len() != 1<<20+1 || !slices.Equal(w.steps, c.steps) {
			t.Errorf("timeout %v: %d bytes in steps %v, want %v", c.d, w.body.Len(), w.steps, c.steps)
		}
	}
}
