package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sample results: a baseline, a path against it, an operation scenario
// and an unavailable path.
func sampleResults() []Result {
	return []Result{
		{Path: MethodWrite, Engine: EngineCryptoTLS, Version: "TLS 1.3", Suite: "AES-128-GCM", Available: true,
			ThroughputGbps: 8, SenderCPUPerGB: 0.5, ReceiverCPUPerGB: 0.6, SyscallsPerMiB: 64, RatioVsCryptoTLS: 1, SenderCPURatio: 1, ReceiverCPURatio: 1, Rounds: 3},
		{Path: MethodWrite, Engine: EngineUser, Version: "TLS 1.3", Suite: "AES-128-GCM", Available: true,
			ThroughputGbps: 12, SenderCPUPerGB: 0.3, ReceiverCPUPerGB: 0.5, SyscallsPerMiB: 4, RatioVsCryptoTLS: 1.5, RatioMin: 1.25, RatioMax: 1.75, SenderCPURatio: 0.6, ReceiverCPURatio: 0.8,
			Baseline: "crypto/tls write TLS 1.3 AES-128-GCM", Mode: "tx=user rx=user", Rounds: 3},
		{Path: MethodHandshake, Engine: EngineUser, Version: "TLS 1.3", Available: true, SyscallsPerMiB: -1,
			OpsPerSecond: 900, SenderCPUPerOpUs: 600, ReceiverCPUPerOpUs: 500, RatioVsCryptoTLS: 0.95, SenderCPURatio: 1.05, ReceiverCPURatio: 1.02,
			Baseline: "crypto/tls handshake TLS 1.3", Rounds: 3},
		{Path: MethodSendfile, Engine: EngineKernel, Version: "TLS 1.2", Suite: "AES-256-GCM", Reason: "kernel TLS unavailable: test"},
	}
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleResults()); err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &objs); err != nil {
		t.Fatalf("not one JSON array: %v\n%s", err, buf.Bytes())
	}
	if len(objs) != 4 {
		t.Fatalf("%d objects, want 4", len(objs))
	}
	for i, o := range objs {
		for _, k := range []string{"path", "engine", "version", "suite", "available", "throughput_gbps",
			"sender_cpu_s_per_gb", "receiver_cpu_s_per_gb", "syscalls_per_mib", "ratio_vs_crypto_tls"} {
			if _, ok := o[k]; !ok {
				t.Errorf("object %d has no %q: %v", i, k, o)
			}
		}
	}
	if objs[1]["ratio_vs_crypto_tls"] != 1.5 || objs[1]["ratio_vs_crypto_tls_min"] != 1.25 || objs[1]["ratio_vs_crypto_tls_max"] != 1.75 || objs[1]["engine"] != EngineUser {
		t.Errorf("object 1 = %v", objs[1])
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back[1], sampleResults()[1]) {
		t.Errorf("round trip: %+v", back[1])
	}
	buf.Reset()
	WriteJSON(&buf, nil)
	if strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("no results: %q, want []", buf.String())
	}
}

func TestTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleResults()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"ktls-user", "12.00", "1.50x", "1.25–1.75", "0.60x", // bulk row
		"handshake", "900", "0.95x", // operations row
		"Not measured:", "ktls-kernel sendfile TLS 1.2 AES-256-GCM", "kernel TLS unavailable: test",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "1.50x") > strings.Index(out, "0.95x") {
		t.Errorf("bulk rows should come before operation rows:\n%s", out)
	}
}

func TestMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, sampleResults()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"| ktls-user | write | TLS 1.3 | AES-128-GCM | 12.00 |", "| 1.50x | 1.25–1.75 |", "| 0.95x | - |", "| ktls-user | handshake | TLS 1.3 | 900 |", "- ktls-kernel sendfile TLS 1.2 AES-256-GCM: kernel TLS unavailable: test"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestPlot(t *testing.T) {
	for _, ext := range []string{"png", "svg"} {
		file := filepath.Join(t.TempDir(), "ratios."+ext)
		if err := WritePlot(file, "test", sampleResults()); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if ext == "png" && !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG", file)
		}
		if ext == "svg" && !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("%s is not an SVG", file)
		}
	}
	if err := WritePlot(filepath.Join(t.TempDir(), "x.png"), "", sampleResults()[:1]); err == nil {
		t.Error("plot without any ratio: no error")
	}
}

func TestPlan(t *testing.T) {
	jobs := plan(errors.New("no TLS here"))
	seen := map[string]bool{}
	for _, j := range jobs {
		name := j.res.Name()
		if seen[name] {
			t.Errorf("%s twice", name)
		}
		seen[name] = true
		if j.engine == EngineKernel && j.res.Available {
			t.Errorf("%s available without kernel TLS", name)
		}
		if j.res.Available && j.baseline != nil && !j.baseline.res.Available {
			t.Errorf("%s measured against the unavailable %s", name, j.baseline.res.Name())
		}
	}
	for _, want := range []string{
		"tcp write", "tcp sendfile",
		"crypto/tls write TLS 1.2 ChaCha20-Poly1305", "crypto/tls copy-file TLS 1.3 AES-128-GCM",
		"ktls-user write TLS 1.2 AES-256-GCM", "ktls-user readfrom-file TLS 1.3 ChaCha20-Poly1305",
		"ktls-kernel write TLS 1.3 AES-128-GCM", "ktls-kernel sendfile TLS 1.2 AES-128-GCM", "ktls-kernel splice-tcp TLS 1.3 ChaCha20-Poly1305",
		"ktls-user handshake TLS 1.2", "crypto/tls handshake TLS 1.3",
		"net/http+crypto/tls http-large", "ktls-serve(ktls-user) http-4k",
	} {
		if !seen[want] {
			t.Errorf("plan lacks %q", want)
		}
	}
	for _, j := range plan(nil) {
		if j.engine == EngineKernel && j.sc.name != "AES-256-GCM" && !j.res.Available {
			t.Errorf("%s unavailable with kernel TLS: %s", j.res.Name(), j.res.Reason)
		}
	}
}

func TestSuiteCheck(t *testing.T) {
	j := &job{method: MethodWrite, sc: suites[0]}
	ok := &childResult{Bytes: 1 << 20, Wall: 1e9, CPU: 1e8, Syscalls: 4, Version: suites[0].version, Suite: suites[0].suite}
	s, err := j.sample(ok, ok)
	if err != nil {
		t.Fatal(err)
	}
	if s.syscalls != 4 || s.rate != 1<<20 {
		t.Errorf("sample = %+v", s)
	}
	bad := *ok
	bad.Suite = suites[1].suite
	if _, err := j.sample(&bad, ok); err == nil || !strings.Contains(err.Error(), "negotiated") {
		t.Errorf("wrong suite: err = %v", err)
	}
}
