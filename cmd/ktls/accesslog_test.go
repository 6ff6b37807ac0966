package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCommand runs "ktls args" in the background with a cancelable context
// and waits for its "serving" (or "proxying") line; it returns the URL (or
// address) the line gives, the log, and a function that stops the command
// and returns its status.
func runCommand(t *testing.T, args ...string) (string, *syncBuffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := new(syncBuffer)
	status := make(chan int, 1)
	go func() { status <- run(ctx, args, new(syncBuffer), stderr) }()
	stop := func() int {
		cancel()
		select {
		case s := <-status:
			return s
		case <-time.After(time.Minute):
			t.Fatalf("ktls %q did not stop; log:\n%s", args, stderr)
			return -1
		}
	}
	re := regexp.MustCompile(`"?(?:url|listen)"?[=:]"?([^" ]+)`)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			return m[1], stderr, stop
		}
		select {
		case s := <-status:
			t.Fatalf("ktls %q: exit %d:\n%s", args, s, stderr)
		default:
		}
	}
	stop()
	t.Fatalf("ktls %q: no serving line:\n%s", args, stderr)
	return "", nil, nil
}

// TestAccessLog checks the one line per request of serve at the default
// level, in both formats and over both protocols.
func TestAccessLog(t *testing.T) {
	www, _ := tree(t, 10)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			url, logs, stop := runCommand(t, "serve", "--addr", "127.0.0.1:0", "--log-format", format, www)
			ts := &testServe{}
			for _, h2 := range []bool{false, true} {
				c := ts.client(h2)
				req, _ := http.NewRequest("GET", url+"hello.txt?a=1&b=%20", nil)
				req.Header.Set("User-Agent", fmt.Sprintf("test-agent h2=%v", h2))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				get(t, c, url+"nothere")
				c.CloseIdleConnections()
			}
			if s := stop(); s != 0 {
				t.Errorf("exit status %d", s)
			}
			var lines []map[string]any
			for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				m := map[string]any{}
				if format == "json" {
					if err := json.Unmarshal([]byte(l), &m); err != nil {
						t.Fatalf("not JSON: %q: %v", l, err)
					}
				} else {
					for _, kv := range regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`).FindAllStringSubmatch(l, -1) {
						m[kv[1]] = strings.Trim(kv[2], `"`)
					}
				}
				if m["msg"] == "request" {
					lines = append(lines, m)
				}
				if m["msg"] == "connection" {
					t.Errorf("a debug line at the default level: %q", l)
				}
			}
			if len(lines) != 4 {
				t.Fatalf("%d request lines, want 4:\n%s", len(lines), logs)
			}
			for i, m := range lines {
				h2 := i >= 2
				want := map[string]string{
					"method": "GET", "path": "/hello.txt?a=1&b=%20", "status": "200", "bytes": "6",
					"user_agent": fmt.Sprintf("test-agent h2=%v", h2),
					"proto":      map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2], "tls": "TLS 1.3",
				}
				if i%2 == 1 {
					want["path"], want["status"], want["user_agent"] = "/nothere", "404", "Go-http-client/"+map[bool]string{false: "1.1", true: "2.0"}[h2]
					delete(want, "bytes")
				}
				for k, v := range want {
					if got := fmt.Sprint(m[k]); got != v {
						t.Errorf("line %d: %s=%q, want %q", i, k, got, v)
					}
				}
				for _, k := range []string{"remote", "duration", "tx", "rx"} {
					if fmt.Sprint(m[k]) == "" || m[k] == nil {
						t.Errorf("line %d: no %s: %v", i, k, m)
					}
				}
			}
		})
	}
}
