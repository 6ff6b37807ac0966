package bench

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNginxConf(t *testing.T) {
	c := nginxConfig{Prefix: "/p", Root: "/www", Cert: "/p/cert.pem", Key: "/p/key.pem", KTLS: true, Version: tls.VersionTLS13}
	rc, err := c.refConfig()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := rc.Render("1.22.1", "/p")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"worker_processes 1;", "sendfile on;", "listen 127.0.0.1:0 ssl http2;",
		`root "/www";`, "ssl_protocols TLSv1.3;", "ssl_conf_command Options KTLS;", "ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;",
		"error_log stderr", `ssl_certificate_key "/p/key.pem";`} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nginx.conf lacks %q:\n%s", want, conf)
		}
	}
	c.KTLS, c.Version = false, tls.VersionTLS12
	if rc, err = c.refConfig(); err != nil {
		t.Fatal(err)
	}
	if conf, err = rc.Render("1.22.1", "/p"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(conf), "KTLS") {
		t.Errorf("nginx.conf without kernel TLS:\n%s", conf)
	}
	if !strings.Contains(string(conf), "ssl_protocols TLSv1.2;") || !strings.Contains(string(conf), "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;") {
		t.Errorf("TLS 1.2 nginx.conf:\n%s", conf)
	}
	if _, err := (nginxConfig{Version: tls.VersionTLS11}).refConfig(); err == nil {
		t.Error("TLS 1.1: no error")
	}
}

func TestPlanServers(t *testing.T) {
	jobs := plan(errors.New("no TLS here"))
	var srv []*job
	for _, j := range jobs {
		if j.server == "" {
			if !j.selected(nil) || !j.selected([]string{"http"}) == strings.Contains(j.res.Name(), "http") {
				t.Errorf("%s: selection changed", j.res.Name())
			}
			continue
		}
		srv = append(srv, j)
		name := j.res.Name()
		if j.selected(nil) || j.selected([]string{"http"}) || j.selected([]string{"nginx"}) {
			t.Errorf("%s selected without asking for the servers scenarios", name)
		}
		if !j.selected([]string{"servers"}) {
			t.Errorf("%s not selected by servers", name)
		}
		if j.server == ServerKTLS {
			if j.engine != EngineUser || j.vsNetHTTP == nil || j.vsNginx == nil ||
				j.vsNetHTTP.server != ServerNetHTTP || j.vsNginx.server != ServerNginxKTLS ||
				j.vsNginx.res.Scenario != j.res.Scenario || j.vsNginx.res.Protocol != j.res.Protocol || j.vsNginx.sc != j.sc {
				t.Errorf("%s: engine %s, compared to %v and %v", name, j.engine, j.vsNetHTTP, j.vsNginx)
			}
		}
	}
	// 4 servers x 4 scenarios x 2 protocols x 2 versions.
	if len(srv) != 64 {
		t.Errorf("%d servers rows, want 64", len(srv))
	}
	for _, j := range plan(nil) {
		if j.server == ServerKTLS && j.engine != EngineKernel {
			t.Errorf("%s with kernel TLS: engine %s", j.res.Name(), j.engine)
		}
	}
	if !nginxRequested([]string{"servers", "nginx-ktls servers-4k"}) || nginxRequested([]string{"servers"}) {
		t.Error("nginxRequested")
	}
}

// serverJobs returns a ktls-serve job and the jobs it is compared to, with
// two rounds each.
func serverJobs() (ks, nh, nx *job) {
	mk := func(server string, rates ...float64) *job {
		j := &job{server: server, sc: suites[3], res: &Result{Engine: server, Server: server, Path: "servers-4k",
			Scenario: ScenarioSmall, Protocol: ProtoHTTP1, Version: "TLS 1.3", Suite: "AES-128-GCM", Available: true}}
		for _, r := range rates {
			j.rounds = append(j.rounds, sample{rate: r, sndCPU: 1 / r, rcvCPU: 2 / r, syscalls: -1})
		}
		return j
	}
	ks, nh, nx = mk(ServerKTLS, 100, 120, 90), mk(ServerNetHTTP, 100, 100, 100), mk(ServerNginxKTLS, 200, 200, 100)
	ks.vsNetHTTP, ks.vsNginx = nh, nx
	return
}

func TestSummarizeServer(t *testing.T) {
	ks, nh, nx := serverJobs()
	for _, j := range []*job{ks, nh, nx} {
		j.summarize()
	}
	r := ks.res
	if r.OpsPerSecond != 100 || r.SenderCPUPerOpUs != 1e4 || r.Rounds != 3 {
		t.Errorf("ktls-serve: %+v", r)
	}
	if v := r.VsNetHTTP; v == nil || v.Rate != 1 || v.RateMin != 0.9 || v.RateMax != 1.2 || v.CPU != 1 {
		t.Errorf("vs net/http: %+v", v)
	}
	if v := r.VsNginxKTLS; v == nil || v.Rate != 0.6 || v.RateMin != 0.5 || v.RateMax != 0.9 || math.Abs(v.CPU-1/0.6) > 1e-9 {
		t.Errorf("vs nginx-ktls: %+v", v)
	}
	if nh.res.VsNetHTTP != nil || nh.res.KernelTLS != "" {
		t.Errorf("net/http: %+v", nh.res)
	}
	if nx.res.KernelTLS != KernelTLSNone || !strings.Contains(nx.res.Note, "no kernel TLS") {
		t.Errorf("nginx-ktls without tls_stat: %q %q", nx.res.KernelTLS, nx.res.Note)
	}

	// Counters that did not move say so loudly; counters that did are kept.
	nx.addTLSStat(map[string]int64{"TlsTxSw": 5, "TlsRxSw": 5}, map[string]int64{"TlsTxSw": 5, "TlsRxSw": 5, "TlsCurrTxSw": 0}, true)
	nx.summarize()
	if nx.res.KernelTLS != KernelTLSNotUsed || !strings.Contains(nx.res.Note, "WARNING") || nx.res.TLSStat == nil {
		t.Errorf("nginx-ktls, counters still: %q %q %v", nx.res.KernelTLS, nx.res.Note, nx.res.TLSStat)
	}
	var buf bytes.Buffer
	WriteTable(&buf, []Result{*ks.res, *nx.res})
	if !strings.Contains(buf.String(), "WARNING") || !strings.Contains(buf.String(), KernelTLSNotUsed) {
		t.Errorf("table does not warn:\n%s", buf.String())
	}
	nx.addTLSStat(nil, map[string]int64{"TlsTxSw": 16, "TlsRxSw": 16}, true)
	nx.summarize()
	if nx.res.KernelTLS != KernelTLSUsed || nx.res.TLSStat["TlsTxSw"] != 16 || nx.res.Note != "" {
		t.Errorf("nginx-ktls, counters moved: %q %v %q", nx.res.KernelTLS, nx.res.TLSStat, nx.res.Note)
	}
}

func TestServersReport(t *testing.T) {
	ks, nh, nx := serverJobs()
	var rs []Result
	for _, j := range []*job{ks, nh, nx} {
		j.summarize()
		rs = append(rs, *j.res)
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, rs); err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(js.Bytes(), &objs); err != nil {
		t.Fatal(err)
	}
	if objs[0]["server"] != ServerKTLS || objs[0]["scenario"] != ScenarioSmall || objs[0]["protocol"] != ProtoHTTP1 {
		t.Errorf("row 0: %v", objs[0])
	}
	for _, k := range []string{"vs_net_http", "vs_nginx_ktls"} {
		v, _ := objs[0][k].(map[string]any)
		for _, f := range []string{"rate", "rate_min", "rate_max", "server_cpu", "server_cpu_min", "server_cpu_max"} {
			if _, ok := v[f]; !ok {
				t.Errorf("%s lacks %s: %v", k, f, objs[0][k])
			}
		}
	}
	if objs[2]["kernel_tls"] != KernelTLSNone {
		t.Errorf("row 2: %v", objs[2])
	}
	var md bytes.Buffer
	WriteMarkdown(&md, rs)
	for _, want := range []string{"| ktls-serve | 4k | HTTP/1.1 | TLS 1.3 | AES-128-GCM | 100 req/s |", "| 0.60x (0.50–0.90) |", "| 1.00x (0.90–1.20) |", KernelTLSNone} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	// Servers alone: their chart into the file; with other paths, next to it.
	dir := t.TempDir()
	if err := WritePlot(filepath.Join(dir, "s.png"), "servers", rs); err != nil {
		t.Fatal(err)
	}
	if err := WritePlot(filepath.Join(dir, "all.svg"), "all", append(sampleResults(), rs...)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"s.png", "all.svg", "all-servers.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestServerRatioZero(t *testing.T) {
	ks, _, nx := serverJobs()
	nx.rounds[1].sndCPU = 0 // no tick of nginx's CPU time in that round
	for i := range nx.rounds {
		nx.rounds[i].rate = 0
	}
	v := ks.serverRatio(nx)
	if v.Rate != 0 || v.CPU != 2 || math.Abs(v.CPUMin-100.0/90) > 1e-9 || v.CPUMax != 2 {
		t.Errorf("%+v", v)
	}
	if rate, _ := serverRatioCells(v); rate != "n/a" {
		t.Errorf("rate cell %q", rate)
	}
}
