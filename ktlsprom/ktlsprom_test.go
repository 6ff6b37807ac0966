package ktlsprom

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ktls-go/ktls"
)

// handshake runs one ktls connection (server and client) on loopback, so
// that the counters move.
func handshake(t *testing.T) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ktls.Listen("tcp", "127.0.0.1:0", &ktls.Config{TLS: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := ktls.DialContext(ctx, "tcp", ln.Addr().String(), &ktls.Config{TLS: &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	io.ReadFull(c, make([]byte, 5))
	c.CloseWrite()
	io.Copy(io.Discard, c)
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// families parses the text exposition format with the Prometheus text
// parser.
func families(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%s", err, text)
	}
	return mf
}

// scrape registers c in a registry of the caller's, scrapes it through
// promhttp and reads the text back with the client library's parser.
func scrape(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return families(t, text)
}

// TestCollector: the collector passes the client library's lint, and a
// scrape has every metric with its type and labels, and ktls.Stats()'s
// values.
func TestCollector(t *testing.T) {
	handshake(t)
	c := NewCollector()
	c.kernelStats = func() (map[string]uint64, error) { return map[string]uint64{"TlsTxSw": 7}, nil }
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	got := scrape(t, c)
	s := ktls.Stats()
	for _, w := range []struct {
		name   string
		typ    dto.MetricType
		labels string // label names, comma-separated
		n      int    // samples
	}{
		{"ktls_enabled", dto.MetricType_GAUGE, "", 1},
		{"ktls_cbc_enabled", dto.MetricType_GAUGE, "", 1},
		{"ktls_handshakes_total", dto.MetricType_COUNTER, "", 1},
		{"ktls_handshake_errors_total", dto.MetricType_COUNTER, "", 1},
		{"ktls_connections", dto.MetricType_GAUGE, "direction,mode", 10},
		{"ktls_connections_total", dto.MetricType_COUNTER, "direction,mode", 10},
		{"ktls_records_total", dto.MetricType_COUNTER, "direction", 2},
		{"ktls_bytes_total", dto.MetricType_COUNTER, "direction", 2},
		{"ktls_fallbacks_total", dto.MetricType_COUNTER, "reason", 7},
		{"ktls_bad_records_total", dto.MetricType_COUNTER, "class", 4},
		{"ktls_rekeys_total", dto.MetricType_COUNTER, "direction", 2},
		{"ktls_rekey_errors_total", dto.MetricType_COUNTER, "", 1},
		{"ktls_key_limit_exceeded_total", dto.MetricType_COUNTER, "", 1},
		{"ktls_eof_without_close_notify_total", dto.MetricType_COUNTER, "", 1},
		{"ktls_kernel_options_refused_total", dto.MetricType_COUNTER, "", 1},
		{"ktls_control_records_total", dto.MetricType_COUNTER, "kind", 7},
		{"ktls_kernel", dto.MetricType_UNTYPED, "counter", 1},
	} {
		f := got[w.name]
		if f == nil || f.GetType() != w.typ || len(f.GetMetric()) != w.n {
			t.Errorf("%s: %v, want %d samples of type %v", w.name, f, w.n, w.typ)
			continue
		}
		var names []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			names = append(names, l.GetName())
		}
		if strings.Join(names, ",") != w.labels {
			t.Errorf("%s: labels %q, want %q", w.name, names, w.labels)
		}
	}
	if len(got) != 17 {
		t.Errorf("%d metric families, want 17", len(got))
	}
	// Values: the handshakes (nothing else runs in this test binary) and
	// user-space connections handed off (this host has no kernel TLS, or
	// the kernel took them: either way the total is Stats()'s).
	if v := got["ktls_handshakes_total"].GetMetric()[0].GetCounter().GetValue(); v != float64(s.Handshakes) || v < 2 {
		t.Errorf("ktls_handshakes_total = %v, Stats().Handshakes = %d", v, s.Handshakes)
	}
	var tx float64
	for _, m := range got["ktls_connections_total"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "tx" {
			tx += m.GetCounter().GetValue()
		}
	}
	if tx != float64(s.Handshakes) {
		t.Errorf("ktls_connections_total{direction=\"tx\"} sum to %v, want %d (one per hand-off)", tx, s.Handshakes)
	}
}

// TestCollectorKernel: ktls_kernel carries the kernel's counters where it
// has them, and is left out where it has none.
func TestCollectorKernel(t *testing.T) {
	c := NewCollector()
	c.kernelStats = func() (map[string]uint64, error) { return map[string]uint64{"TlsRxSw": 3}, nil }
	want := "# HELP ktls_kernel The kernel's TLS counters (/proc/net/tls_stat, kern.ipc.tls.stats).\n# TYPE ktls_kernel untyped\nktls_kernel{counter=\"TlsRxSw\"} 3\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ktls_kernel"); err != nil {
		t.Error(err)
	}
	c.kernelStats = func() (map[string]uint64, error) { return nil, net.ErrClosed }
	if n := testutil.CollectAndCount(c, "ktls_kernel"); n != 0 {
		t.Errorf("%d ktls_kernel metrics without kernel counters", n)
	}
}
