package bench

// The servers scenarios: ktls serve against the servers users run
// instead, each HTTP scenario over HTTP/1.1 and HTTP/2 and over TLS 1.3
// and 1.2 with AES-128-GCM, with the same Go client for every server.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ktls-go/ktls/internal/nginxref"
)

// Servers of the servers scenarios (Result.Server).
const (
	ServerKTLS      = "ktls-serve" // ktlshttp with ktls serve's handler (internal/fileserve, no access log); kernel engine where the kernel has TLS
	ServerNetHTTP   = "net/http"   // net/http + crypto/tls
	ServerNginxKTLS = "nginx-ktls" // nginx, 1 worker, sendfile, ssl_conf_command Options KTLS
	ServerNginx     = "nginx"      // the same nginx without kernel TLS
)

// Scenarios of the servers runs (Result.Scenario); the path is "servers-"
// and the scenario.
const (
	ScenarioLarge   = "large"   // one connection GETs the large file until --size bytes
	ScenarioSmall   = "4k"      // keep-alive connections GET a 4 KiB file for --duration
	ScenarioMedium  = "64k"     // the same with a 64 KiB file
	ScenarioNewConn = "newconn" // every GET of the 4 KiB file on a new connection
)

// Protocols of the servers scenarios (Result.Protocol).
const (
	ProtoHTTP1 = "HTTP/1.1"
	ProtoHTTP2 = "HTTP/2"
)

// Values of Result.KernelTLS: whether nginx-ktls (and ktls-serve) used
// kernel TLS, from the counters of /proc/net/tls_stat before and after
// their rounds.
const (
	KernelTLSUsed    = "used"
	KernelTLSNotUsed = "NOT USED"
	KernelTLSNone    = "no kernel TLS on this host"
)

// serversKeyword, in an element of Options.Filter, selects servers
// scenarios: they run only when asked for.
const serversKeyword = "servers"

const mediumFile, mediumSize = "64k.bin", 64 << 10

// addServers adds the servers scenarios to the plan. engine is the
// engine of ktls-serve.
func addServers(jobs []*job, engine string) []*job {
	for _, scenario := range []string{ScenarioLarge, ScenarioSmall, ScenarioMedium, ScenarioNewConn} {
		for _, proto := range []string{ProtoHTTP1, ProtoHTTP2} {
			for _, sc := range []suiteCase{suites[3], suites[0]} { // TLS 1.3 and 1.2, AES-128-GCM
				var row []*job
				for _, server := range []string{ServerKTLS, ServerNetHTTP, ServerNginxKTLS, ServerNginx} {
					path := serversKeyword + "-" + scenario
					j := &job{res: &Result{Path: path, Engine: server, Version: versionName(sc.version), Suite: sc.name, Available: true,
						Server: server, Scenario: scenario, Protocol: proto},
						sc: sc, engine: engine, method: path, server: server}
					switch server {
					case ServerNetHTTP:
						j.engine = EngineCryptoTLS
					case ServerNginxKTLS, ServerNginx:
						j.engine = "" // not a child of this program
					}
					row = append(row, j)
				}
				row[0].vsNetHTTP, row[0].vsNginx = row[1], row[2]
				jobs = append(jobs, row...)
			}
		}
	}
	return jobs
}

// findNginx returns the nginx executable: bin if given, else nginx in
// PATH, else /usr/sbin/nginx.
func findNginx(bin string) (string, error) {
	if bin != "" {
		return exec.LookPath(bin)
	}
	return nginxref.Binary()
}

// isNginx reports whether the job's server is nginx.
func (j *job) isNginx() bool { return j.server == ServerNginx || j.server == ServerNginxKTLS }

// measureServer runs one round of a servers scenario: the server (a child
// process, or nginx), then the client child, which connects its clients,
// then the measured window.
func (r *runner) measureServer(ctx context.Context, j *job) (sample, error) {
	scenario := j.res.Scenario
	cli := childSpec{Role: roleHTTPClient, Engine: EngineCryptoTLS, Version: j.sc.version, Suite: j.sc.suite,
		URLPath: "/small.bin", Concurrency: r.o.ServerConcurrency, Duration: r.o.Duration, HTTP2: j.res.Protocol == ProtoHTTP2}
	switch scenario {
	case ScenarioLarge:
		cli.URLPath, cli.Size, cli.Concurrency, cli.Duration = "/large.bin", r.o.Size, 1, 0
	case ScenarioMedium:
		cli.URLPath = "/" + mediumFile
	case ScenarioNewConn:
		cli.NewConn = true
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+r.o.Duration*2+time.Duration(r.o.Size/10e6)*time.Second)
	defer cancel()

	var srvProfile string
	if r.o.ProfileDir != "" {
		name := strings.NewReplacer("/", "-", " ", "_").Replace(j.res.Name())
		cli.Profile = filepath.Join(r.o.ProfileDir, fmt.Sprintf("%s.r%d.%s.pprof", name, len(j.rounds)+1, cli.Role))
		srvProfile = filepath.Join(r.o.ProfileDir, fmt.Sprintf("%s.r%d.%s.pprof", name, len(j.rounds)+1, roleHTTPServer))
	}
	// The kernel's TLS counters over the round of a server that should use
	// kernel TLS.
	tracked := j.server == ServerNginxKTLS || j.server == ServerKTLS
	var stat0 map[string]int64
	var statOK bool
	if tracked {
		stat0, statOK = readTLSStat()
	}
	var (
		addr   string
		server *child
		ref    refServer
	)
	if j.isNginx() {
		prefix, err := os.MkdirTemp(r.dir, "nginx-")
		if err != nil {
			return sample{}, err
		}
		ref, err = startNginx(ctx, nginxConfig{Bin: r.nginx, Prefix: prefix, Root: r.dir,
			Cert: filepath.Join(r.dir, "cert.pem"), Key: filepath.Join(r.dir, "key.pem"),
			KTLS: j.server == ServerNginxKTLS, Version: j.sc.version})
		if err != nil {
			return sample{}, err
		}
		defer ref.Stop()
		addr = ref.Addr()
	} else {
		srv := childSpec{Role: roleHTTPServer, Engine: j.engine, Version: j.sc.version, Suite: j.sc.suite, Dir: r.dir, Profile: srvProfile}
		var err error
		if server, err = r.start(ctx, srv, nil); err != nil {
			return sample{}, err
		}
		defer server.kill()
		line, err := server.line()
		if err != nil {
			return sample{}, err
		}
		a, ok := strings.CutPrefix(line, "ready ")
		if !ok {
			return sample{}, fmt.Errorf("server child: unexpected %q", line)
		}
		addr = a
	}
	cli.Addr = addr
	client, err := r.start(ctx, cli, nil)
	if err != nil {
		return sample{}, err
	}
	defer client.kill()
	if line, err := client.line(); err != nil {
		return sample{}, err
	} else if line != "warm" {
		return sample{}, fmt.Errorf("client child: unexpected %q", line)
	}
	// The measured window starts now.
	var pids []int
	var cpu0 time.Duration
	if ref != nil {
		if pids, err = ref.PIDs(); err != nil {
			return sample{}, err
		}
		if cpu0, err = procCPU(pids); err != nil {
			return sample{}, err
		}
	} else if _, err := io.WriteString(server.stdin, "start\n"); err != nil {
		return sample{}, err
	}
	if _, err := io.WriteString(client.stdin, "go\n"); err != nil {
		return sample{}, err
	}
	cres, err := client.result()
	if err != nil {
		return sample{}, err
	}
	var srvCPU time.Duration
	if ref != nil {
		cpu1, err := procCPU(pids)
		if err != nil {
			return sample{}, err
		}
		srvCPU = cpu1 - cpu0
		ref.Stop()
	} else {
		server.stdin.Close()
		sres, err := server.result()
		if err != nil {
			return sample{}, err
		}
		srvCPU = sres.CPU
	}
	if tracked {
		stat1, ok := readTLSStat()
		j.addTLSStat(stat0, stat1, statOK || ok)
	}
	return j.serverSample(srvCPU, cres)
}

// serverSample turns the server's CPU time and the client's report into a
// sample, and checks the version and suite the client saw.
func (j *job) serverSample(srvCPU time.Duration, cli *childResult) (sample, error) {
	if cli.Version != j.sc.version || suiteName(cli.Suite) != j.sc.name {
		return sample{}, fmt.Errorf("negotiated %s %s, want %s %s",
			versionName(cli.Version), suiteName(cli.Suite), versionName(j.sc.version), j.sc.name)
	}
	s := sample{syscalls: -1}
	n := float64(cli.Ops)
	if j.res.Scenario == ScenarioLarge {
		n = float64(cli.Bytes)
	}
	if n == 0 {
		return s, errors.New("no request completed")
	}
	s.rate = n / cli.Wall.Seconds()
	s.sndCPU, s.rcvCPU = srvCPU.Seconds()/n, cli.CPU.Seconds()/n
	return s, nil
}

// readTLSStat reads the kernel's TLS counters (/proc/net/tls_stat); ok is
// false where there is none (no kernel TLS, or the tls module not loaded
// yet).
func readTLSStat() (map[string]int64, bool) {
	b, err := os.ReadFile("/proc/net/tls_stat")
	if err != nil {
		return nil, false
	}
	m := map[string]int64{}
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			m[f[0]] = n
		}
	}
	return m, true
}

// addTLSStat adds the growth of the counters over one round; seen says
// whether /proc/net/tls_stat existed before or after it (before, the tls
// module may not be loaded yet: counters from 0).
func (j *job) addTLSStat(before, after map[string]int64, seen bool) {
	if !seen {
		return
	}
	if j.tlsStat == nil {
		j.tlsStat = map[string]int64{}
	}
	for k, v := range after {
		j.tlsStat[k] += v - before[k]
	}
}

// summarizeServer fills in the Result of a servers scenario from the
// rounds: the medians, and for ktls-serve the medians and ranges of the
// per-round ratios to net/http and to nginx-ktls.
func (j *job) summarizeServer() {
	r := j.res
	r.Rounds = len(j.rounds)
	r.SyscallsPerMiB = -1
	med := func(f func(s sample) float64) float64 {
		v := make([]float64, len(j.rounds))
		for i, s := range j.rounds {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rate := med(func(s sample) float64 { return s.rate })
	snd := med(func(s sample) float64 { return s.sndCPU })
	rcv := med(func(s sample) float64 { return s.rcvCPU })
	if r.Scenario == ScenarioLarge {
		r.ThroughputGbps, r.SenderCPUPerGB, r.ReceiverCPUPerGB = rate*8/1e9, snd*1e9, rcv*1e9
	} else {
		r.OpsPerSecond, r.SenderCPUPerOpUs, r.ReceiverCPUPerOpUs = rate, snd*1e6, rcv*1e6
	}
	if o := j.vsNetHTTP; o != nil && len(o.rounds) == len(j.rounds) {
		r.VsNetHTTP = j.serverRatio(o)
		r.Baseline = o.res.Name()
	}
	if o := j.vsNginx; o != nil && len(o.rounds) == len(j.rounds) {
		r.VsNginxKTLS = j.serverRatio(o)
	}
	if j.server == ServerNginxKTLS || j.server == ServerKTLS {
		why, fallback := "is OpenSSL built with kTLS?", "nginx-ktls ran like nginx"
		if j.server == ServerKTLS {
			why, fallback = "ktls-serve ran in user space", "ktls-serve used its user-space engine"
		}
		switch {
		case j.tlsStat == nil:
			r.KernelTLS = KernelTLSNone
			r.Note = "no /proc/net/tls_stat: no kernel TLS on this host, " + fallback
		case j.tlsStat["TlsTxSw"]+j.tlsStat["TlsTxDevice"] > 0:
			r.KernelTLS, r.Note = KernelTLSUsed, ""
		default:
			r.KernelTLS = KernelTLSNotUsed
			r.Note = "WARNING: the kernel's TLS counters (/proc/net/tls_stat TlsTxSw, TlsTxDevice) did not move: " + j.server + " did not use kernel TLS (" + why + ")"
		}
		r.TLSStat = j.tlsStat
	}
}

// serverRatio returns this job's per-round ratios to o's: median, smallest
// and largest. A round where o's value is 0 (nginx's CPU time is counted
// in ticks of 10 ms) has no ratio; without any, the ratio is 0.
func (j *job) serverRatio(o *job) *ServerRatio {
	ratios := func(f func(s sample) float64) (med, lo, hi float64) {
		var v []float64
		for i, s := range j.rounds {
			if d := f(o.rounds[i]); d > 0 {
				v = append(v, f(s)/d)
			}
		}
		if len(v) == 0 {
			return 0, 0, 0
		}
		slices.Sort(v)
		return v[len(v)/2], v[0], v[len(v)-1]
	}
	var r ServerRatio
	r.Rate, r.RateMin, r.RateMax = ratios(func(s sample) float64 { return s.rate })
	r.CPU, r.CPUMin, r.CPUMax = ratios(func(s sample) float64 { return s.sndCPU })
	return &r
}

// ServerRatio is ktls-serve against another server in a servers scenario:
// the medians of the per-round ratios of the rate (bytes/s, requests/s or
// handshakes/s; higher is better) and of the server CPU time per GB or per
// request (lower is better), with the smallest and largest per-round ratio;
// 0 where no round had a value to compare to.
type ServerRatio struct {
	Rate    float64 `json:"rate"`
	RateMin float64 `json:"rate_min"`
	RateMax float64 `json:"rate_max"`
	CPU     float64 `json:"server_cpu"`
	CPUMin  float64 `json:"server_cpu_min"`
	CPUMax  float64 `json:"server_cpu_max"`
}

// nginxRequested reports whether an element of the filter names nginx.
func nginxRequested(filter []string) bool {
	return slices.ContainsFunc(filter, func(f string) bool { return strings.Contains(f, "nginx") })
}

// prepareServers writes what the servers scenarios need into dir: the 64
// KiB file and nginx's certificate.
func prepareServers(dir string) error {
	if err := writeRandomFile(filepath.Join(dir, mediumFile), mediumSize); err != nil {
		return err
	}
	return writeCertPEM(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
}
