package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ktls-go/ktls/internal/bench"
	"github.com/ktls-go/ktls/internal/kernel"
)

// The measurements of ktls bench run in child processes that re-execute
// this binary; in the test binary they are caught here, before the tests.
func init() {
	if spec := os.Getenv(bench.ChildEnv); spec != "" {
		os.Exit(bench.RunChild(spec, os.Stdin, os.Stdout, os.Stderr))
	}
}

// TestBenchSmoke runs a tiny ktls bench over a few paths and checks the
// JSON, the table and the plot; it asserts nothing about the numbers.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	plot := t.TempDir() + "/ratios.png"
	args := []string{"--quick", "--size", "2MiB", "--duration", "100ms", "--concurrency", "2", "--json", "--plot", plot,
		"--run", "ktls-user write TLS 1.3 AES-128-GCM,handshake TLS 1.2,http-4k,ktls-kernel sendfile TLS 1.3 AES-128-GCM"}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"bench"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("ktls bench: exit %d\n%s", code, stderr.String())
	}
	results, err := bench.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	measured := map[string]bench.Result{}
	for _, r := range results {
		if r.Available {
			measured[r.Name()] = r
		}
	}
	want := []string{
		"ktls-user write TLS 1.3 AES-128-GCM", "crypto/tls write TLS 1.3 AES-128-GCM",
		"ktls-user handshake TLS 1.2", "crypto/tls handshake TLS 1.2",
		"ktls-serve(ktls-user) http-4k", "net/http+crypto/tls http-4k",
	}
	if kernel.Supported() == nil {
		// Handshakes and HTTP use the kernel where it has TLS.
		want = append(want, "ktls-kernel sendfile TLS 1.3 AES-128-GCM", "crypto/tls copy-file TLS 1.3 AES-128-GCM")
		for i := 2; i < 6; i++ {
			want[i] = strings.Replace(want[i], "ktls-user", "ktls-kernel", 1)
		}
	}
	for _, name := range want {
		r, ok := measured[name]
		if !ok {
			t.Errorf("%s not measured; got %v", name, measured)
			continue
		}
		if r.RatioVsCryptoTLS <= 0 || r.ThroughputGbps <= 0 && r.OpsPerSecond <= 0 {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if b, err := os.ReadFile(plot); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("plot: %v", err)
	}

	// The table from the saved JSON.
	saved := t.TempDir() + "/r.json"
	var js bytes.Buffer
	bench.WriteJSON(&js, results)
	os.WriteFile(saved, js.Bytes(), 0o644)
	stdout.Reset()
	if code := run(context.Background(), []string{"bench", "--from", saved}, &stdout, &stderr); code != 0 {
		t.Fatalf("ktls bench --from: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "vs crypto/tls") {
		t.Errorf("table:\n%s", stdout.String())
	}
}

// TestBenchMemory runs the memory scenario with a few connections and
// checks that every engine reports each state, in the JSON and the table;
// it asserts nothing about the numbers.
func TestBenchMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--run", "memory", "--rounds", "1", "--mem-conns", "20", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("ktls bench: exit %d\n%s", code, stderr.String())
	}
	results, err := bench.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	engines := map[string]bool{}
	for _, r := range results {
		if !r.Available {
			continue
		}
		engines[r.Engine] = true
		if r.Path != bench.MethodMemory || r.Conns != 20 || len(r.Memory) != 3 {
			t.Errorf("%s: %+v", r.Name(), r)
			continue
		}
		for _, m := range r.Memory {
			if m.Heap <= 0 || m.HeapRatio <= 0 {
				t.Errorf("%s %s: %+v", r.Name(), m.State, m)
			}
		}
	}
	want := []string{"net/http+crypto/tls", "ktls-serve(ktls-user)"}
	if kernel.Supported() == nil {
		want = append(want, "ktls-serve(ktls-kernel)")
	}
	for _, e := range want {
		if !engines[e] {
			t.Errorf("%s not measured; got %v", e, engines)
		}
	}
	var table bytes.Buffer
	bench.WriteTable(&table, results)
	if !strings.Contains(table.String(), "after a 300 KiB GET") || !strings.Contains(table.String(), "RSS kB/conn") {
		t.Errorf("table:\n%s", table.String())
	}
	t.Logf("\n%s", table.String())
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--size", "0"}, {"--size", "lots"}, {"--rounds", "-1"}, {"--concurrency", "0"},
		{"--size", "1MiB", "--file-size", "2MiB"}, {"extra"}, {"--no-such-flag"}, {"--mem-conns", "0"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"bench"}, args...), &stdout, &stderr); code != exitUsage {
			t.Errorf("ktls bench %q: exit %d, want %d", args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), "ktls help bench") {
			t.Errorf("ktls bench %q: stderr %q", args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--plot FILE") {
		t.Errorf("ktls bench -h: exit %d\n%s", code, stdout.String())
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"4096": 4096, "64MiB": 64 << 20, "1GiB": 1 << 30, "1.5KiB": 1536, "500MB": 500e6, "2G": 2 << 30, "10 KB": 10e3} {
		if got, err := parseSize(s); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1MiB", "MiB", "1TiB", "1e300"} {
		if _, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q): no error", s)
		}
	}
}
