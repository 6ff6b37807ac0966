package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/ktls-go/ktls/internal/kernel"
)

// TestStat checks the local counters: "name: value" lines where the kernel
// has them, else exit status 1 with the reason.
func TestStat(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run(context.Background(), []string{"stat"}, &stdout, &stderr)
	if _, err := kernel.Stats(); err != nil {
		if status != 1 || !strings.Contains(stderr.String(), "modprobe tls") {
			t.Errorf("no counters: status %d, stderr %q", status, stderr.String())
		}
		return
	}
	checkStatLines(t, status, stdout.String(), stderr.String())
}

var statLine = regexp.MustCompile(`^[A-Za-z][\w.\-]*: -?[0-9][0-9.e+\-]*$`)

func checkStatLines(t *testing.T, status int, out, errOut string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if status != 0 || errOut != "" || len(lines) == 0 {
		t.Fatalf("status %d, stdout %q, stderr %q", status, out, errOut)
	}
	for _, l := range lines {
		if !statLine.MatchString(l) {
			t.Errorf("line %q is not name: value", l)
		}
	}
	return lines
}

func TestPromSample(t *testing.T) {
	for _, tc := range []struct{ in, name, value string }{
		{`ktls_handshakes_total 3`, "handshakes_total", "3"},
		{`ktls_connections{direction="tx",mode="kernel-sw"} 1`, "connections.tx.kernel-sw", "1"},
		{`ktls_kernel{counter="TlsTxSw"} 12 1700000000`, "kernel.TlsTxSw", "12"},
		{`go_x{a="b,c",d="e\"f"} 1.5`, `go_x.b,c.e"f`, "1.5"},
	} {
		name, value, err := promSample(tc.in)
		if err != nil || name != tc.name || value != tc.value {
			t.Errorf("%s: %q %q %v", tc.in, name, value, err)
		}
	}
	for _, in := range []string{"ktls_x", `ktls_x{a="b" 1`, `ktls_x{a=b} 1`, "ktls_x 1 2 3"} {
		if _, _, err := promSample(in); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

// TestServeMetrics runs serve with --metrics, makes a connection, and reads
// the counters by HTTP and by ktls stat --url.
func TestServeMetrics(t *testing.T) {
	www, _ := tree(t, 10)
	ts := startServe(t, &serveOptions{dir: www, metrics: "127.0.0.1:0"})
	c := ts.client(false)
	defer c.CloseIdleConnections()
	get(t, c, "https://"+ts.addr+"/hello.txt")
	murl := ts.logged("metrics", "url")
	resp, err := http.Get(murl)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("%s: %s %q", murl, resp.Status, ct)
	}
	for _, want := range []string{"# TYPE ktls_handshakes_total counter", "\nktls_connections_total{direction=\"tx\",mode=\""} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %q:\n%s", want, body)
		}
	}
	if m := regexp.MustCompile(`(?m)^ktls_handshakes_total (\d+)$`).FindStringSubmatch(string(body)); m == nil || m[1] == "0" {
		t.Errorf("handshakes_total: %q", m)
	}
	resp, err = http.Get(strings.TrimSuffix(murl, "/metrics") + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	var vars struct {
		KTLS struct {
			Handshakes uint64 `json:"handshakes"`
		} `json:"ktls"`
	}
	err = json.NewDecoder(resp.Body).Decode(&vars)
	resp.Body.Close()
	if err != nil || vars.KTLS.Handshakes == 0 {
		t.Errorf("/debug/vars: %v, %+v", err, vars)
	}

	var stdout, stderr bytes.Buffer
	status := run(context.Background(), []string{"stat", "--url", strings.TrimSuffix(murl, "/metrics")}, &stdout, &stderr)
	lines := checkStatLines(t, status, stdout.String(), stderr.String())
	if !strings.Contains(stdout.String(), "\nhandshakes_total: ") || !strings.Contains(stdout.String(), "\nconnections_total.tx.") {
		t.Errorf("stat --url:\n%s", strings.Join(lines, "\n"))
	}
	for _, args := range [][]string{{"stat", "--url", "ftp://x"}, {"stat", "x"}, {"stat", "--url"}} {
		if status := run(context.Background(), args, &stdout, &stderr); status != exitUsage {
			t.Errorf("ktls %q: status %d", args, status)
		}
	}
	if status := run(context.Background(), []string{"stat", "--url", strings.Replace(murl, "/metrics", "/nothere", 1)}, &stdout, &stderr); status != 1 {
		t.Errorf("stat --url to a 404: status %d", status)
	}
}
