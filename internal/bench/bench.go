// Package bench implements ktls bench: it measures, on loopback, the
// throughput, CPU time per byte and system calls per byte of each way of
// sending data over TLS that ktls offers, next to plain TCP (the ceiling) and
// crypto/tls (the baseline) measured in the same run, plus handshakes and an
// HTTPS file server.
//
// Each side of a measurement runs in its own process, a re-execution of
// the running binary with ChildEnv set (see RunChild), so that the CPU time
// of the sender and of the receiver can be told apart. Each child measures
// itself over the transfer only (getrusage(RUSAGE_SELF), all threads), after
// the handshake; system calls are counted from /proc/self/io.
package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ktls-go/ktls/internal/kernel"
)

// Engines: who carries the records of a path.
const (
	EngineTCP       = "tcp"         // no TLS: the ceiling
	EngineCryptoTLS = "crypto/tls"  // the baseline
	EngineUser      = "ktls-user"   // ktls, user-space record layer
	EngineKernel    = "ktls-kernel" // ktls, kernel TLS
)

// Methods: how the sender hands the data over.
const (
	MethodWrite        = "write"         // Write from memory
	MethodSendfile     = "sendfile"      // ReadFrom an *os.File: sendfile(2)
	MethodCopyFile     = "copy-file"     // io.Copy from an *os.File (crypto/tls)
	MethodReadFromFile = "readfrom-file" // ReadFrom an *os.File (ktls user space)
	MethodSpliceTCP    = "splice-tcp"    // ReadFrom a TCP socket: splice(2)
	MethodCopyTCP      = "copy-tcp"      // io.Copy from a TCP socket (crypto/tls)
	MethodHandshake    = "handshake"     // TCP connect, handshake (+ hand-off), one byte each way, close
	MethodHTTPLarge    = "http-large"    // GET a large file, HTTP/1.1
	MethodHTTPSmall    = "http-4k"       // GET a 4 KiB file, concurrent clients
	MethodMemory       = "memory"        // the file server's memory per keep-alive connection (see memStates)
)

// Options configure a run.
type Options struct {
	// Size is the number of bytes each bulk path moves (and the HTTP large
	// file scenario downloads).
	Size int64
	// FileSize is the size of the file the file paths send over and over.
	FileSize int64
	// WriteSize is the size of each Write of the write paths.
	WriteSize int
	// Duration bounds the handshake and the 4 KiB HTTP scenarios.
	Duration time.Duration
	// Rounds is how many times each path runs; reported values are
	// medians, ratios medians of the per-round ratios.
	Rounds int
	// Concurrency is the number of clients of the 4 KiB HTTP scenario.
	Concurrency int
	// MemConns is the number of connections of the memory scenario.
	MemConns int
	// ServerConcurrency is the number of connections of the servers
	// scenarios with keep-alive and new connections.
	ServerConcurrency int
	// Nginx is the nginx executable of the servers scenarios; "" means
	// nginx in PATH, else /usr/sbin/nginx.
	Nginx string
	// Command is the program and arguments that re-execute this binary as a
	// child (ChildEnv is added to its environment).
	Command []string
	// Filter, if not empty, keeps only the paths whose name (see
	// Result.Name) contains one of its strings. The servers scenarios run
	// only when asked for: by a string that contains "servers".
	Filter []string
	// ProfileDir, if not empty, is a directory where every child writes
	// a CPU profile (go tool pprof), named after the path, round and role.
	ProfileDir string
	// Progress, if not nil, is called before each measurement.
	Progress func(done, total int, what string)
}

// Result is the outcome of one path. Rates are medians over the rounds;
// ratios are medians of the per-round ratios to the matching crypto/tls
// path (Baseline) of the same round.
type Result struct {
	Path      string `json:"path"`
	Engine    string `json:"engine"`
	Version   string `json:"version"`
	Suite     string `json:"suite"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`

	ThroughputGbps   float64 `json:"throughput_gbps"`
	SenderCPUPerGB   float64 `json:"sender_cpu_s_per_gb"`
	ReceiverCPUPerGB float64 `json:"receiver_cpu_s_per_gb"`
	SyscallsPerMiB   float64 `json:"syscalls_per_mib"` // -1: not counted
	RatioVsCryptoTLS float64 `json:"ratio_vs_crypto_tls"`
	// RatioMin and RatioMax are the smallest and largest per-round
	// throughput (ops/s) ratios, which say how much RatioVsCryptoTLS can
	// be trusted; 0 in results written before they existed.
	RatioMin           float64 `json:"ratio_vs_crypto_tls_min,omitempty"`
	RatioMax           float64 `json:"ratio_vs_crypto_tls_max,omitempty"`
	SenderCPURatio     float64 `json:"sender_cpu_ratio_vs_crypto_tls"`
	ReceiverCPURatio   float64 `json:"receiver_cpu_ratio_vs_crypto_tls"`
	OpsPerSecond       float64 `json:"ops_per_s,omitempty"`
	SenderCPUPerOpUs   float64 `json:"sender_cpu_us_per_op,omitempty"`
	ReceiverCPUPerOpUs float64 `json:"receiver_cpu_us_per_op,omitempty"`
	Baseline           string  `json:"baseline,omitempty"`
	Mode               string  `json:"mode,omitempty"` // ktls: tx/rx mode of the sender
	// Conns and Memory are the results of the memory scenario: the
	// number of connections and the memory per connection in each state.
	Conns  int        `json:"conns,omitempty"`
	Memory []MemState `json:"memory,omitempty"`
	// Server, Scenario and Protocol name a row of the servers scenarios
	// (Engine is the server, Path "servers-" and the scenario). On the
	// ktls-serve rows, VsNetHTTP and VsNginxKTLS compare it to net/http
	// and to nginx-ktls. On the nginx-ktls and ktls-serve rows, KernelTLS
	// says whether the server used kernel TLS, and TLSStat is the growth of
	// the kernel's counters (/proc/net/tls_stat) over its rounds.
	Server      string           `json:"server,omitempty"`
	Scenario    string           `json:"scenario,omitempty"`
	Protocol    string           `json:"protocol,omitempty"`
	VsNetHTTP   *ServerRatio     `json:"vs_net_http,omitempty"`
	VsNginxKTLS *ServerRatio     `json:"vs_nginx_ktls,omitempty"`
	KernelTLS   string           `json:"kernel_tls,omitempty"`
	TLSStat     map[string]int64 `json:"tls_stat_delta,omitempty"`
	Rounds      int              `json:"rounds"`
	Note        string           `json:"note,omitempty"`
}

// Name is "engine method [protocol] version suite", the path's name in
// tables and plots.
func (r *Result) Name() string {
	return strings.Join(slices.DeleteFunc([]string{r.Engine, r.Path, r.Protocol, r.Version, r.Suite},
		func(s string) bool { return s == "" }), " ")
}

// suiteCase is one protocol version and cipher suite.
type suiteCase struct {
	version uint16
	suite   uint16 // configured on both ends (TLS 1.2); 0 for TLS 1.3
	name    string
	chacha  bool // TLS 1.3: make the client prefer ChaCha20 (GODEBUG=cpu.aes=off)
}

var suites = []suiteCase{
	{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "AES-128-GCM", false},
	{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "AES-256-GCM", false},
	{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ChaCha20-Poly1305", false},
	{tls.VersionTLS13, 0, "AES-128-GCM", false},
	{tls.VersionTLS13, 0, "AES-256-GCM", false},
	{tls.VersionTLS13, 0, "ChaCha20-Poly1305", true},
}

// unreachable explains the suites no run can select.
const tls13AES256 = "TLS 1.3 suites cannot be configured in crypto/tls, and between two Go peers the server never picks TLS_AES_256_GCM_SHA384 (its order is AES-128-GCM, ChaCha20-Poly1305, AES-256-GCM)"

func versionName(v uint16) string {
	if v == 0 {
		return ""
	}
	return tls.VersionName(v)
}

// suiteName names a negotiated suite as the table does.
func suiteName(id uint16) string {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:
		return "AES-128-GCM"
	case tls.TLS_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:
		return "AES-256-GCM"
	case tls.TLS_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256:
		return "ChaCha20-Poly1305"
	}
	return tls.CipherSuiteName(id)
}

// job is one path to measure.
type job struct {
	res      *Result
	baseline *job // nil for a crypto/tls path of its own kind
	sc       suiteCase
	engine   string
	method   string
	rounds   []sample
	conns    int // the memory scenario's connections
	// The servers scenarios: the server, and for ktls-serve the jobs it is
	// compared to; tlsStat is the growth of the kernel's TLS counters over
	// the rounds of nginx-ktls and ktls-serve (nil: no /proc/net/tls_stat).
	server             string
	vsNetHTTP, vsNginx *job
	tlsStat            map[string]int64
}

// sample is one round of one job.
type sample struct {
	rate           float64 // bytes/s or ops/s
	sndCPU, rcvCPU float64 // s per byte or per op
	syscalls       float64 // per MiB, -1 if unknown
	mode           string
	mem            []memSample // the memory scenario, one per memStates
}

// plan lists the jobs of a run; kernelErr is kernel.Supported().
func plan(kernelErr error) []*job {
	var jobs []*job
	add := func(engine, method string, sc suiteCase, base *job) *job {
		j := &job{res: &Result{Path: method, Engine: engine, Version: versionName(sc.version), Suite: sc.name, Available: true},
			baseline: base, sc: sc, engine: engine, method: method}
		jobs = append(jobs, j)
		return j
	}
	unavailable := func(j *job, why string) {
		j.res.Available, j.res.Reason = false, why
	}
	kernelWhy := ""
	if kernelErr != nil {
		kernelWhy = "kernel TLS unavailable: " + kernelErr.Error()
	}
	defSuite := suites[3] // TLS 1.3 AES-128-GCM, what Go picks by default on AES hardware
	var defWrite, defFile *job
	for _, sc := range suites {
		write := add(EngineCryptoTLS, MethodWrite, sc, nil)
		file := add(EngineCryptoTLS, MethodCopyFile, sc, nil)
		tcp := add(EngineCryptoTLS, MethodCopyTCP, sc, nil)
		add(EngineUser, MethodWrite, sc, write)
		add(EngineUser, MethodReadFromFile, sc, file)
		kw := add(EngineKernel, MethodWrite, sc, write)
		ks := add(EngineKernel, MethodSendfile, sc, file)
		kt := add(EngineKernel, MethodSpliceTCP, sc, tcp)
		if kernelErr != nil {
			unavailable(kw, kernelWhy)
			unavailable(ks, kernelWhy)
			unavailable(kt, kernelWhy)
			unavailable(tcp, "measured only as the baseline of the kernel's splice path")
		}
		if sc == defSuite {
			defWrite, defFile = write, file
		}
	}
	for _, j := range jobs {
		if j.sc.version == tls.VersionTLS13 && j.sc.name == "AES-256-GCM" {
			unavailable(j, tls13AES256)
		}
	}
	none := suiteCase{}
	tcpWrite := add(EngineTCP, MethodWrite, none, defWrite)
	tcpWrite.res.Note = "ratio against crypto/tls TLS 1.3 AES-128-GCM"
	tcpFile := add(EngineTCP, MethodSendfile, none, defFile)
	tcpFile.res.Note = tcpWrite.res.Note

	// Handshakes: ktls (both ends) against crypto/tls (both ends), each
	// version with its default suite.
	engine := EngineUser
	if kernelErr == nil {
		engine = EngineKernel
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		sc := suiteCase{version: v}
		base := add(EngineCryptoTLS, MethodHandshake, sc, nil)
		add(engine, MethodHandshake, sc, base)
	}
	// HTTP: net/http + crypto/tls against ktlshttp as ktls serve runs it.
	for _, m := range []string{MethodHTTPLarge, MethodHTTPSmall} {
		base := add(EngineCryptoTLS, m, none, nil)
		base.res.Engine = "net/http+crypto/tls"
		add(engine, m, none, base).res.Engine = "ktls-serve(" + engine + ")"
	}
	// Memory: net/http + crypto/tls against ktlshttp, with each engine.
	base := add(EngineCryptoTLS, MethodMemory, none, nil)
	base.res.Engine = "net/http+crypto/tls"
	add(EngineUser, MethodMemory, none, base).res.Engine = "ktls-serve(" + EngineUser + ")"
	if kernelErr == nil {
		add(EngineKernel, MethodMemory, none, base).res.Engine = "ktls-serve(" + EngineKernel + ")"
	}
	return addServers(jobs, engine)
}

// Run measures every path and returns one Result per path, unavailable
// ones included.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.ServerConcurrency <= 0 {
		o.ServerConcurrency = 16
	}
	if o.Size <= 0 || o.WriteSize <= 0 || o.Rounds <= 0 || o.Concurrency <= 0 || o.Duration <= 0 || o.MemConns <= 0 {
		return nil, errors.New("bench: size, write size, rounds, concurrency, memory connections and duration must be positive")
	}
	if len(o.Command) == 0 {
		return nil, errors.New("bench: no command to re-execute")
	}
	if o.FileSize <= 0 || o.FileSize > o.Size {
		o.FileSize = min(o.Size, 64<<20)
	}
	dir, err := os.MkdirTemp("", "ktls-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "large.bin")
	if err := writeRandomFile(file, o.FileSize); err != nil {
		return nil, err
	}
	for name, size := range map[string]int64{"small.bin": 4096, memSmallFile: memSmallSize, memLargeFile: memLargeSize} {
		if err := writeRandomFile(filepath.Join(dir, name), size); err != nil {
			return nil, err
		}
	}

	if err := prepareServers(dir); err != nil {
		return nil, err
	}

	jobs := plan(kernel.Supported())
	nginx, nginxErr := findNginx(o.Nginx)
	for _, j := range jobs {
		if j.isNginx() && nginxErr != nil {
			if nginxRequested(o.Filter) && j.selected(o.Filter) {
				return nil, fmt.Errorf("%s asked for by --run: %w", j.res.Name(), nginxErr)
			}
			j.res.Available, j.res.Reason = false, "nginx not found (--nginx PATH): "+nginxErr.Error()
		}
	}
	var todo []*job
	for _, j := range jobs {
		if j.res.Available && j.selected(o.Filter) {
			todo = append(todo, j)
		}
	}
	// A selected path needs its baseline, ktls-serve the servers it is
	// compared to.
	for _, j := range slices.Clone(todo) {
		for _, dep := range []*job{j.baseline, j.vsNetHTTP, j.vsNginx} {
			if dep != nil && dep.res.Available && !slices.Contains(todo, dep) {
				todo = append(todo, dep)
			}
		}
	}
	r := &runner{o: o, file: file, dir: dir, nginx: nginx}
	total := len(todo) * o.Rounds
	for round := range o.Rounds {
		for i, j := range todo {
			if o.Progress != nil {
				o.Progress(round*len(todo)+i, total, fmt.Sprintf("round %d/%d: %s", round+1, o.Rounds, j.res.Name()))
			}
			s, err := r.measure(ctx, j)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", j.res.Name(), err)
			}
			j.rounds = append(j.rounds, s)
		}
	}
	if o.Progress != nil {
		o.Progress(total, total, "done")
	}
	var out []Result
	for _, j := range jobs {
		if !slices.Contains(todo, j) {
			if !j.res.Available && j.selected(o.Filter) {
				out = append(out, *j.res)
			}
			continue
		}
		j.summarize()
		out = append(out, *j.res)
	}
	return out, nil
}

func (j *job) selected(filter []string) bool {
	if len(filter) == 0 {
		return j.server == ""
	}
	name := j.res.Name()
	return slices.ContainsFunc(filter, func(f string) bool {
		return strings.Contains(name, f) && (j.server == "" || strings.Contains(f, serversKeyword))
	})
}

// summarize fills in the Result from the rounds.
func (j *job) summarize() {
	if j.server != "" {
		j.summarizeServer()
		return
	}
	r := j.res
	r.Rounds = len(j.rounds)
	med := func(f func(s sample) float64) float64 {
		v := make([]float64, len(j.rounds))
		for i, s := range j.rounds {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	// ratios returns the per-round ratios to the baseline, sorted.
	ratios := func(f func(s sample) float64) []float64 {
		v := make([]float64, len(j.rounds))
		for i, s := range j.rounds {
			v[i] = 1
			if j.baseline != nil {
				v[i] = f(s) / f(j.baseline.rounds[i])
			}
		}
		slices.Sort(v)
		return v
	}
	ratio := func(f func(s sample) float64) float64 {
		v := ratios(f)
		return v[len(v)/2]
	}
	if j.baseline != nil {
		r.Baseline = j.baseline.res.Name()
	}
	if j.method == MethodMemory {
		r.Conns, r.Mode = j.conns, j.rounds[0].mode
		j.summarizeMemory()
		return
	}
	rate := ratios(func(s sample) float64 { return s.rate })
	r.RatioVsCryptoTLS, r.RatioMin, r.RatioMax = rate[len(rate)/2], rate[0], rate[len(rate)-1]
	r.SenderCPURatio = ratio(func(s sample) float64 { return s.sndCPU })
	r.ReceiverCPURatio = ratio(func(s sample) float64 { return s.rcvCPU })
	r.Mode = j.rounds[0].mode
	switch j.method {
	case MethodHandshake, MethodHTTPSmall:
		r.OpsPerSecond = med(func(s sample) float64 { return s.rate })
		r.SenderCPUPerOpUs = med(func(s sample) float64 { return s.sndCPU }) * 1e6
		r.ReceiverCPUPerOpUs = med(func(s sample) float64 { return s.rcvCPU }) * 1e6
		r.SyscallsPerMiB = -1
	default:
		r.ThroughputGbps = med(func(s sample) float64 { return s.rate }) * 8 / 1e9
		r.SenderCPUPerGB = med(func(s sample) float64 { return s.sndCPU }) * 1e9
		r.ReceiverCPUPerGB = med(func(s sample) float64 { return s.rcvCPU }) * 1e9
		r.SyscallsPerMiB = med(func(s sample) float64 { return s.syscalls })
	}
	if j.method == MethodSpliceTCP {
		r.Note = "splice(2) is not counted by the kernel's per-process I/O accounting"
	}
}

func writeRandomFile(name string, size int64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runner starts the child processes of measurements.
type runner struct {
	o     Options
	file  string
	dir   string
	nginx string // the nginx executable, "" if none
}

// measure runs one round of one job.
func (r *runner) measure(ctx context.Context, j *job) (sample, error) {
	if j.method == MethodMemory {
		j.conns = r.o.MemConns
		return r.measureMemory(ctx, j)
	}
	if j.server != "" {
		return r.measureServer(ctx, j)
	}
	spec := childSpec{Engine: j.engine, Method: j.method, Version: j.sc.version, Suite: j.sc.suite}
	var srv, cli childSpec
	var feed *childSpec
	switch j.method {
	case MethodHandshake:
		srv, cli = spec, spec
		srv.Role, cli.Role = roleHSServer, roleHSClient
		cli.Duration = r.o.Duration
	case MethodHTTPLarge, MethodHTTPSmall:
		srv, cli = spec, spec
		srv.Role, cli.Role = roleHTTPServer, roleHTTPClient
		srv.Dir = r.dir
		cli.URLPath, cli.Size, cli.Concurrency = "/large.bin", r.o.Size, 1
		if j.method == MethodHTTPSmall {
			cli.URLPath, cli.Size, cli.Concurrency, cli.Duration = "/small.bin", 0, r.o.Concurrency, r.o.Duration
		}
	default:
		srv, cli = spec, spec
		srv.Role, cli.Role = roleSend, roleRecv
		srv.Size, cli.Size = r.o.Size, r.o.Size
		srv.WriteSize, srv.File = r.o.WriteSize, r.file
		if j.method == MethodSpliceTCP || j.method == MethodCopyTCP {
			feed = &childSpec{Role: roleFeed, Engine: EngineTCP, Size: r.o.Size, WriteSize: r.o.WriteSize}
		}
	}
	if r.o.ProfileDir != "" {
		name := strings.NewReplacer("/", "-", " ", "_", "(", "", ")", "").Replace(j.res.Name())
		prof := func(s *childSpec) {
			s.Profile = filepath.Join(r.o.ProfileDir, fmt.Sprintf("%s.r%d.%s.pprof", name, len(j.rounds)+1, s.Role))
		}
		prof(&srv)
		prof(&cli)
	}
	var cliEnv []string
	if j.sc.chacha {
		cliEnv = []string{"GODEBUG=cpu.aes=off"}
	}
	// Bound the measurement generously: 10 s plus 1 s per 10 MB.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second+r.o.Duration*2+time.Duration(r.o.Size/10e6)*time.Second)
	defer cancel()

	server, err := r.start(ctx, srv, nil)
	if err != nil {
		return sample{}, err
	}
	defer server.kill()
	line, err := server.line()
	if err != nil {
		return sample{}, err
	}
	addrs := strings.Fields(strings.TrimPrefix(line, "ready "))
	if !strings.HasPrefix(line, "ready ") || len(addrs) == 0 {
		return sample{}, fmt.Errorf("server child: unexpected %q", line)
	}
	cli.Addr = addrs[0]
	var feeder *child
	if feed != nil {
		if len(addrs) < 2 {
			return sample{}, errors.New("server child gave no source address")
		}
		feed.Addr = addrs[1]
		if feeder, err = r.start(ctx, *feed, nil); err != nil {
			return sample{}, err
		}
		defer feeder.kill()
	}
	client, err := r.start(ctx, cli, cliEnv)
	if err != nil {
		return sample{}, err
	}
	defer client.kill()
	if cli.Role == roleHTTPClient {
		// The clients are connected: measure from here.
		if line, err := client.line(); err != nil {
			return sample{}, err
		} else if line != "warm" {
			return sample{}, fmt.Errorf("client child: unexpected %q", line)
		}
		if _, err := io.WriteString(server.stdin, "start\n"); err != nil {
			return sample{}, err
		}
		if _, err := io.WriteString(client.stdin, "go\n"); err != nil {
			return sample{}, err
		}
	}
	cres, err := client.result()
	if err != nil {
		return sample{}, err
	}
	if feeder != nil {
		if _, err := feeder.result(); err != nil {
			return sample{}, err
		}
	}
	server.stdin.Close()
	sres, err := server.result()
	if err != nil {
		return sample{}, err
	}
	return j.sample(sres, cres)
}

// sample turns the reports of the server and the client into a sample and
// checks that the protocol and suite are those asked for.
func (j *job) sample(srv, cli *childResult) (sample, error) {
	if j.sc.version != 0 {
		if srv.Version != j.sc.version || suiteName(srv.Suite) != j.sc.name && j.sc.name != "" {
			return sample{}, fmt.Errorf("negotiated %s %s, want %s %s",
				versionName(srv.Version), suiteName(srv.Suite), versionName(j.sc.version), j.sc.name)
		}
	}
	var s sample
	if srv.TX != "" {
		s.mode = "tx=" + srv.TX + " rx=" + srv.RX
	}
	switch j.method {
	case MethodHandshake, MethodHTTPSmall:
		ops := float64(cli.Ops)
		if ops == 0 {
			return s, errors.New("no operation completed")
		}
		s.rate = ops / cli.Wall.Seconds()
		s.sndCPU, s.rcvCPU = srv.CPU.Seconds()/ops, cli.CPU.Seconds()/ops
		s.syscalls = -1
		return s, nil
	}
	n := float64(cli.Bytes)
	if n == 0 {
		return s, errors.New("no data moved")
	}
	s.rate = n / cli.Wall.Seconds()
	s.sndCPU, s.rcvCPU = srv.CPU.Seconds()/n, cli.CPU.Seconds()/n
	s.syscalls = -1
	if srv.Syscalls >= 0 {
		s.syscalls = float64(srv.Syscalls) / (n / (1 << 20))
	}
	return s, nil
}

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *strings.Builder
	spec   childSpec
}

func (r *runner) start(ctx context.Context, spec childSpec, env []string) (*child, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, r.o.Command[0], r.o.Command[1:]...)
	cmd.Env = append(append(os.Environ(), ChildEnv+"="+string(b)), env...)
	c := &child{cmd: cmd, stderr: &strings.Builder{}, spec: spec}
	cmd.Stderr = c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.out = bufio.NewReader(out)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s child: %w", spec.Role, err)
	}
	return c, nil
}

// line reads the next line of output, or fails with the child's error.
func (c *child) line() (string, error) {
	line, err := readLine(c.out)
	if err != nil {
		return "", c.fail(err)
	}
	return line, nil
}

// result reads the child's result and waits for it to exit.
func (c *child) result() (*childResult, error) {
	line, err := c.line()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Wait(); err != nil {
		return nil, c.fail(err)
	}
	var res childResult
	if js, ok := strings.CutPrefix(line, "result "); !ok {
		return nil, fmt.Errorf("%s child: unexpected %q", c.spec.Role, line)
	} else if err := json.Unmarshal([]byte(js), &res); err != nil {
		return nil, fmt.Errorf("%s child: %v", c.spec.Role, err)
	}
	return &res, nil
}

// fail waits for the child and returns an error with what it printed.
func (c *child) fail(err error) error {
	c.cmd.Wait()
	if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
		return fmt.Errorf("%s child: %s", c.spec.Role, msg)
	}
	return fmt.Errorf("%s child: %w", c.spec.Role, err)
}

// kill ends the child if it still runs.
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
