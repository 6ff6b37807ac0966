//go:build unix

package ktlshttp

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// specialFiles makes a FIFO, a symbolic link to it and a Unix socket under
// root, and returns the FIFO's path. The cleanup opens the FIFO for writing
// and closes it, which releases any reader blocked in open(2).
func specialFiles(t *testing.T, root string) string {
	t.Helper()
	fifo := filepath.Join(root, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	})
	if err := os.Symlink("fifo", filepath.Join(root, "fifolink")); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return fifo
}

// fifoOpened reports whether some reader has (or waits to have) the FIFO
// open: a non-blocking open for writing fails with ENXIO when none has.
func fifoOpened(t *testing.T, fifo string) bool {
	t.Helper()
	fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		syscall.Close(fd)
		return true
	}
	if !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("open %s for writing: %v", fifo, err)
	}
	return false
}

// TestRootFSSpecialFiles opens a FIFO, a link to it and a socket: each is
// refused at once with fs.ErrPermission, and the FIFO is never opened (an
// open(2) of a FIFO blocks its thread until a writer comes).
func TestRootFSSpecialFiles(t *testing.T) {
	dir, root, _ := testTree(t)
	fifo := specialFiles(t, filepath.Join(dir, "root"))
	fsys := RootFS(root)
	for _, name := range []string{"/fifo", "/fifolink", "/sock"} {
		errc := make(chan error, 1)
		go func() {
			f, err := fsys.Open(name)
			if err == nil {
				f.Close()
			}
			errc <- err
		}()
		select {
		case err := <-errc:
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("Open(%q): %v, want fs.ErrPermission", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Open(%q) blocks", name)
		}
	}
	if fifoOpened(t, fifo) {
		t.Error("the FIFO was opened")
	}
	for _, name := range []string{"/", "/hello.txt", "/sub"} {
		f, err := fsys.Open(name)
		if err != nil {
			t.Errorf("Open(%q): %v", name, err)
			continue
		}
		f.Close()
	}
}

// TestFileServerFIFO requests the FIFO with several methods over both
// protocols: each request gets 403 Forbidden.
func TestFileServerFIFO(t *testing.T) {
	dir, root, _ := testTree(t)
	fifo := specialFiles(t, filepath.Join(dir, "root"))
	ts := startServer(t, http.FileServer(RootFS(root)), nil)
	for _, h2 := range []bool{false, true} {
		c := ts.client(h2)
		c.Timeout = 30 * time.Second // a guard against the hang, not a measure
		for _, r := range [][]string{{"GET", "/fifo"}, {"HEAD", "/fifo"}, {"GET", "/fifolink", "Range", "bytes=0-0"}, {"GET", "/sock"}, {"POST", "/fifo"}} {
			req, _ := http.NewRequest(r[0], ts.url(r[1]), nil)
			if len(r) > 2 {
				req.Header.Set(r[2], r[3])
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("h2=%v %s %s: %v", h2, r[0], r[1], err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("h2=%v %s %s: %s, want 403", h2, r[0], r[1], resp.Status)
			}
		}
		c.CloseIdleConnections()
	}
	if fifoOpened(t, fifo) {
		t.Error("the FIFO was opened")
	}
}
