package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ktls-go/ktls/internal/bench"
	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/nginxref"
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

// haveNginx reports whether ktls bench finds nginx (in PATH or
// /usr/sbin); in CI (the kernel lab's guests included, which get Debian's
// nginx from the lab) its absence fails the test.
func haveNginx(t *testing.T) bool {
	if _, err := nginxref.Binary(); err == nil {
		return true
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx is missing (apt package nginx)")
	}
	t.Log("nginx is missing: its rows are not measured")
	return false
}

// TestBenchServers runs a few of the servers scenarios, briefly, with
// every server (nginx where it is installed) and checks the rows, the
// ratios and the verdicts on kernel TLS; it asserts nothing about the
// numbers.
func TestBenchServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes and nginx")
	}
	nginx := haveNginx(t)
	plot := t.TempDir() + "/servers.png"
	scenarios := []string{"servers-4k HTTP/1.1 TLS 1.3", "servers-newconn HTTP/2 TLS 1.2", "servers-64k HTTP/2 TLS 1.3", "servers-large HTTP/1.1 TLS 1.2"}
	if os.Getenv("KTLS_LAB") == "1" {
		scenarios = scenarios[:2] // an emulated CPU
	}
	args := []string{"bench", "--rounds", "1", "--size", "2MiB", "--duration", "100ms", "--concurrency", "2", "--json", "--plot", plot,
		"--run", strings.Join(scenarios, ",")}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("ktls bench: exit %d\n%s", code, stderr.String())
	}
	results, err := bench.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bench.Result{}
	for _, r := range results {
		rows[r.Name()] = r
	}
	for _, sc := range scenarios {
		for _, server := range []string{bench.ServerKTLS, bench.ServerNetHTTP, bench.ServerNginxKTLS, bench.ServerNginx} {
			name := server + " " + sc + " AES-128-GCM"
			r, ok := rows[name]
			isNginx := strings.HasPrefix(server, "nginx")
			switch {
			case !ok:
				t.Errorf("no row %s; got %v", name, slices.Collect(maps.Keys(rows)))
				continue
			case isNginx && !nginx:
				if r.Available || !strings.Contains(r.Reason, "nginx not found") {
					t.Errorf("%s without nginx: %+v", name, r)
				}
				continue
			case !r.Available || r.Server != server || r.Scenario == "" || r.Protocol == "":
				t.Errorf("%s: %+v", name, r)
				continue
			case r.ThroughputGbps <= 0 && r.OpsPerSecond <= 0:
				t.Errorf("%s: nothing measured: %+v", name, r)
			}
			if server == bench.ServerKTLS && (r.VsNetHTTP == nil || r.VsNetHTTP.Rate <= 0 || (r.VsNginxKTLS != nil) != nginx) {
				t.Errorf("%s: ratios %+v %+v", name, r.VsNetHTTP, r.VsNginxKTLS)
			}
			// The kernel's TLS counters moved for the servers that use
			// kernel TLS where the kernel has it.
			want := ""
			if server == bench.ServerKTLS || server == bench.ServerNginxKTLS {
				want = bench.KernelTLSNone
				if kernel.Supported() == nil {
					want = bench.KernelTLSUsed
				}
			}
			if r.KernelTLS != want {
				t.Errorf("%s: kernel TLS %q, want %q (%s; tls_stat %v)", name, r.KernelTLS, want, r.Note, r.TLSStat)
			}
		}
	}
	if b, err := os.ReadFile(plot); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("plot: %v", err)
	}
	var table bytes.Buffer
	bench.WriteTable(&table, results)
	t.Logf("\n%s", table.String())
}

// TestBenchServersNoNginx: without nginx the servers scenarios leave its
// rows out with a note, unless --run names nginx; and a run where
// nginx-ktls's kernel TLS counters did not move warns.
func TestBenchServersNoNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	missing := t.TempDir() + "/no-nginx"
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--nginx", missing, "--rounds", "1", "--duration", "50ms", "--concurrency", "1",
		"--run", "servers-4k HTTP/1.1 TLS 1.3", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("ktls bench: exit %d\n%s", code, stderr.String())
	}
	results, err := bench.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	var measured, left []string
	for _, r := range results {
		if r.Available {
			measured = append(measured, r.Server)
		} else if strings.Contains(r.Reason, "nginx not found") {
			left = append(left, r.Server)
		}
	}
	if !slices.Equal(measured, []string{bench.ServerKTLS, bench.ServerNetHTTP}) || !slices.Equal(left, []string{bench.ServerNginxKTLS, bench.ServerNginx}) {
		t.Errorf("measured %v, left out %v", measured, left)
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"bench", "--nginx", missing, "--run", "nginx-ktls servers-4k"}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "nginx-ktls servers-4k") {
		t.Errorf("nginx asked for but missing: exit %d\n%s", code, stderr.String())
	}

	saved := t.TempDir() + "/r.json"
	var js bytes.Buffer
	bench.WriteJSON(&js, []bench.Result{{Engine: bench.ServerNginxKTLS, Server: bench.ServerNginxKTLS, Path: "servers-4k", Scenario: "4k",
		Protocol: bench.ProtoHTTP1, Version: "TLS 1.3", Suite: "AES-128-GCM", Available: true, OpsPerSecond: 1, Rounds: 1,
		KernelTLS: bench.KernelTLSNotUsed, Note: "WARNING: did not move", TLSStat: map[string]int64{"TlsTxSw": 0}}})
	os.WriteFile(saved, js.Bytes(), 0o644)
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"bench", "--from", saved}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stderr.String(), "WARNING") || !strings.Contains(stdout.String(), "WARNING") {
		t.Errorf("kernel TLS not used: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}
