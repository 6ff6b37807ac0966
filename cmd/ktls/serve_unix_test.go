//go:build unix

package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServeFIFO puts a FIFO, a link to it and a Unix socket in the served
// tree and requests them many times at once, with several methods, over
// HTTP/1.1 and HTTP/2, with and without --follow-symlinks: every request is
// answered 403, the server stays up, and the FIFO is never opened (each
// open(2) of a FIFO holds an OS thread until a writer comes: enough of them
// once exhausted the threads and killed the server).
func TestServeFIFO(t *testing.T) {
	for _, follow := range []bool{false, true} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			www, _ := tree(t, 10)
			fifo := filepath.Join(www, "fifo")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { // releases readers blocked in open(2), if any
				if fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					syscall.Close(fd)
				}
			})
			if err := os.Symlink("fifo", filepath.Join(www, "fifolink")); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("unix", filepath.Join(www, "sock"))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ts := startServe(t, &serveOptions{dir: www, followSymlinks: follow})
			url := "https://" + ts.addr
			requests := [][]string{
				{"GET", "/fifo"}, {"HEAD", "/fifo"}, {"GET", "/fifo", "Range", "bytes=0-0"},
				{"GET", "/fifo", "If-None-Match", `"x"`}, {"GET", "/fifolink"}, {"GET", "/sock"},
				{"POST", "/fifo"}, {"GET", "/fifo/"},
			}
			var wg sync.WaitGroup
			errs := make(chan error, 1000)
			for _, h2 := range []bool{false, true} {
				c := ts.client(h2)
				c.Timeout = time.Minute // a guard against the hang, not a measure
				defer c.CloseIdleConnections()
				for i := range 25 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := range 4 * len(requests) {
							r := requests[(i+j)%len(requests)]
							req, _ := http.NewRequest(r[0], url+r[1], nil)
							if len(r) > 2 {
								req.Header.Set(r[2], r[3])
							}
							resp, err := c.Do(req)
							if err != nil {
								errs <- err
								return
							}
							resp.Body.Close()
							if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
								errs <- fmt.Errorf("h2=%v %s %s: %s, want 403 or 404", h2, r[0], r[1], resp.Status)
							}
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			n := 0
			for err := range errs {
				if n++; n <= 5 {
					t.Error(err)
				}
			}
			fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err == nil {
				syscall.Close(fd)
				t.Error("the server opened the FIFO")
			} else if !errors.Is(err, syscall.ENXIO) {
				t.Errorf("open the FIFO for writing: %v", err)
			}
			c := ts.client(false)
			defer c.CloseIdleConnections()
			resp, body := get(t, c, url+"/")
			if resp.StatusCode != 200 || !strings.Contains(body, "fifo") {
				t.Errorf("listing with a FIFO: %s %q", resp.Status, body)
			}
			resp, body = get(t, c, url+"/hello.txt")
			if resp.StatusCode != 200 || body != "hello\n" {
				t.Errorf("after the FIFO requests: %s %q", resp.Status, body)
			}
		})
	}
}
