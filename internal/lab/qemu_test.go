package lab

import (
	"bytes"
	"strings"
	"testing"
)

func parseConsole(text string) (*bootResult, string) {
	var out bytes.Buffer
	r := &bootResult{}
	c := console{r: r, out: &out}
	for _, l := range strings.Split(text, "\n") {
		c.line(escapes.ReplaceAllString(strings.TrimRight(l, "\r"), ""))
	}
	return r, out.String()
}

func TestConsole(t *testing.T) {
	r, out := parseConsole("\x1bcSeaBIOS\r\n" +
		"[    0.912345] random: crng init done\n" +
		"\nKTLSLAB-INIT pid=1\n" +
		"KTLSLAB-MODULE tls ok\n" +
		"KTLSLAB-MODULE ghash_generic failed: no such file\n" +
		"\nKTLSLAB-BEGIN example.com/p\n" +
		"=== RUN   TestA\n--- PASS: TestA (0.00s)\n" +
		"=== RUN   TestB\n    --- FAIL: TestB/sub (0.00s)\n--- FAIL: TestB (0.00s)\n" +
		"--- SKIP: TestC (0.00s)\nFAIL\n" +
		"\nKTLSLAB-EXIT example.com/p 1\n" +
		"\nKTLSLAB-BEGIN example.com/q\n" +
		"no newline at endKTLSLAB-EXIT example.com/q 2\n" +
		"\nKTLSLAB-DONE\n")
	if !r.booted || !r.done || r.fault != "" || r.problem() != "" {
		t.Errorf("booted %v done %v fault %q problem %q", r.booted, r.done, r.fault, r.problem())
	}
	if len(r.steps) != 2 {
		t.Fatalf("%d steps", len(r.steps))
	}
	s := r.steps[0]
	if s.name != "example.com/p" || s.code != 1 || s.pass != 1 || s.fail != 2 || s.skip != 1 {
		t.Errorf("step 0: %+v", *s)
	}
	if s := r.steps[1]; s.code != 2 || s.pass+s.fail+s.skip != 0 {
		t.Errorf("step 1: %+v", *s)
	}
	if len(r.modFail) != 1 || !strings.HasPrefix(r.modFail[0], "ghash_generic") {
		t.Errorf("modFail %q", r.modFail)
	}
	if strings.Contains(out, "KTLSLAB") || strings.Contains(out, "crng") || strings.Contains(out, "\n\n") ||
		!strings.HasPrefix(out, "=== RUN   TestA\n") || !strings.HasSuffix(out, "FAIL\nno newline at end\n") {
		t.Errorf("step output:\n%s", out)
	}
}

func TestConsoleFaults(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"[    3.04] Kernel panic - not syncing: sysrq triggered crash", "kernel fault: Kernel panic - not syncing: sysrq triggered crash"},
		{"KTLSLAB-INIT\n[ 5.1] BUG: kernel NULL pointer dereference, address: 0", "kernel fault: BUG: kernel NULL pointer dereference, address: 0"},
		{"KTLSLAB-INIT\n[ 5.1] WARNING: CPU: 1 PID: 9 at net/tls/tls_sw.c:1 x\n[ 5.2] Call Trace:", "kernel fault: WARNING with Call Trace"},
		{"KTLSLAB-INIT\nKTLSLAB-BEGIN x\nBUG: printed by a test, not the kernel\nKTLSLAB-EXIT x 0\nKTLSLAB-DONE", ""},
		{"SeaBIOS", "did not boot"},
		{"KTLSLAB-INIT\nKTLSLAB-ERROR required modules failed to load: tls\nKTLSLAB-DONE", "guest init: required modules failed to load: tls"},
	} {
		r, _ := parseConsole(tt.text)
		if got := r.problem(); got != tt.want {
			t.Errorf("%q: problem %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestParseForward(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Forward
		ok   bool
	}{
		{"18443:8443", Forward{18443, 8443}, true},
		{"127.0.0.1:18443:8443", Forward{18443, 8443}, true},
		{"0.0.0.0:18443:8443", Forward{}, false},
		{"18443", Forward{}, false},
		{"1:70000", Forward{}, false},
	} {
		got, err := ParseForward(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseForward(%q) = %v, %v", tt.in, got, err)
		}
	}
}
