package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

func runJSONCheck(t *testing.T) (int, *checkReport) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	status := run(context.Background(), []string{"check", "--json"}, &stdout, &stderr)
	var r checkReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("check --json: %v: %s", err, stdout.Bytes())
	}
	return status, &r
}

func TestCheck(t *testing.T) {
	status, r := runJSONCheck(t)
	want := kernel.Supported() == nil
	if r.KernelTLS != want || (status == 0) != want || r.System == "" || !want && (r.Reason == "" || r.Hint == "") {
		t.Errorf("status %d, report %+v; kernel.Supported() == nil is %v", status, r, want)
	}
	var stdout bytes.Buffer
	run(context.Background(), []string{"check"}, &stdout, &stdout)
	if !strings.Contains(stdout.String(), "kernel TLS") || !strings.Contains(stdout.String(), "lo: none") {
		t.Errorf("check: %s", stdout.String())
	}
	if status := run(context.Background(), []string{"check", "extra"}, &stdout, &stdout); status != exitUsage {
		t.Errorf("check extra: status %d", status)
	}
}

// TestKernelCheck expects every suite the kernel has (ktlstest.KernelSuite)
// in both directions, and EINVAL for the others (ChaCha20-Poly1305 before
// Linux 5.11).
func TestKernelCheck(t *testing.T) {
	ktlstest.RequireKernel(t)
	status, r := runJSONCheck(t)
	if status != 0 || !r.KernelTLS || len(r.Suites) != len(checkSuites) {
		t.Fatalf("status %d, report %+v", status, r)
	}
	for i, s := range r.Suites {
		want := "yes"
		if err := ktlstest.KernelSuite(checkSuites[i].version, checkSuites[i].suite); err != nil {
			want = "no (EINVAL"
		}
		if !strings.HasPrefix(s.TX, want) || !strings.HasPrefix(s.RX, want) {
			t.Errorf("%s %s: tx %s, rx %s; want %s...", s.Version, s.Cipher, s.TX, s.RX, want)
		}
	}
	var out bytes.Buffer
	run(context.Background(), []string{"check"}, &out, &out)
	t.Logf("ktls check:\n%s", out.String())
}
