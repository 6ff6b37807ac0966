package ktlshttp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/kernel"
)

// The flags of BenchmarkH2 (after -args with go test; as they are after
// ktlslab test's --).
var (
	h2Rounds = flag.Int("h2rounds", 1, "BenchmarkH2: rounds of all its cases, interleaved")
	h2Sizes  = flag.String("h2sizes", "4k,64k,4m", "BenchmarkH2: file sizes (k, m suffixes)")
	h2Prof   = flag.String("h2cpuprofile", "", "BenchmarkH2: write each server's CPU profile (all sizes of a round and TLS version) to `file`.SERVER-VERSION; - prints it (base64) to stderr")
)

// h2ServerEnv makes the test binary (TestMain) an HTTP/2 file server for
// BenchmarkH2, in its own process so that its CPU time can be measured
// apart from the client's: "SERVER TLSVERSION DIR", SERVER one of
// h2Servers. It prints its address and serves until its stdin closes.
const h2ServerEnv = "KTLSHTTP_H2BENCH_SERVER"

// h2ProfEnv names the file the server writes its CPU profile to.
const h2ProfEnv = "KTLSHTTP_H2BENCH_PROFILE"

// h2Servers are the servers BenchmarkH2 compares: net/http with
// crypto/tls (and its bundled HTTP/2), and Server with both directions in
// user space and with the default policy (the kernel where it can, as
// ktls serve runs).
var h2Servers = []string{"net-http", "ktls-user", "ktls-auto"}

func TestMain(m *testing.M) {
	if v := os.Getenv(h2ServerEnv); v != "" {
		if err := h2Serve(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// h2Serve runs the server of BenchmarkH2 described by spec (see
// h2ServerEnv).
func h2Serve(spec string) error {
	f := strings.Fields(spec)
	if len(f) != 3 {
		return fmt.Errorf("bad %s %q", h2ServerEnv, spec)
	}
	cert, _ := testCert(fakeTB{})
	tcfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if f[1] == "1.2" {
		tcfg.MaxVersion = tls.VersionTLS12
	}
	root, err := os.OpenRoot(f[2])
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fsys := RootFS(root)
	var serve func() error
	switch f[0] {
	case "net-http":
		srv := &http.Server{Handler: http.FileServer(fsys), TLSConfig: tcfg}
		serve = func() error { return srv.ServeTLS(ln, "", "") }
	case "ktls-user", "ktls-auto":
		cfg := &ktls.Config{TLS: tcfg}
		if f[0] == "ktls-user" {
			cfg.TX, cfg.RX = ktls.OffloadUser, ktls.OffloadUser
		}
		files := http.FileServer(fsys)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The modes, for the client's first request.
			if kc, ok := r.Context().Value(ConnContextKey).(*ktls.Conn); ok && r.URL.RawQuery == "mode" {
				tx, rx := kc.Mode()
				w.Header().Set("X-Mode", fmt.Sprintf("tx=%v rx=%v", tx, rx))
			}
			files.ServeHTTP(w, r)
		})
		srv := &Server{Server: http.Server{Handler: h}, Config: cfg}
		serve = func() error { return srv.Serve(ln) }
	default:
		return fmt.Errorf("bad server %q", f[0])
	}
	prof := os.Getenv(h2ProfEnv)
	var profBuf bytes.Buffer
	if prof != "" {
		var w io.Writer = &profBuf
		if !strings.HasPrefix(prof, "-") {
			pf, err := os.Create(prof)
			if err != nil {
				return err
			}
			w = pf
		}
		if err := pprof.StartCPUProfile(w); err != nil {
			return err
		}
	}
	fmt.Println(ln.Addr())
	go func() {
		// The client writes "dump" to have a profile printed, then closes.
		cmd, _ := io.ReadAll(os.Stdin)
		pprof.StopCPUProfile()
		if strings.HasPrefix(prof, "-") && string(cmd) == "dump" {
			fmt.Fprintf(os.Stderr, "h2prof %s begin\n%s\nh2prof end\n", prof[1:], base64.StdEncoding.EncodeToString(profBuf.Bytes()))
		}
		os.Exit(0)
	}()
	return serve()
}

// fakeTB lets testCert run outside a test; it never fails in practice.
type fakeTB struct{ testing.TB }

func (fakeTB) Helper()           {}
func (fakeTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

// h2Proc is a server process of BenchmarkH2.
type h2Proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

func startH2Server(b *testing.B, server, version, dir string) *h2Proc {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), h2ServerEnv+"="+server+" "+version+" "+dir, "GOMAXPROCS=2")
	if *h2Prof != "" {
		cmd.Env = append(cmd.Env, h2ProfEnv+"="+*h2Prof+"."+server+"-"+version)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &h2Proc{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		p.stop(false)
		b.Fatalf("server %s: %v", server, err)
	}
	p.addr = strings.TrimSpace(line)
	return p
}

func (p *h2Proc) stop(dump bool) {
	if dump {
		io.WriteString(p.stdin, "dump")
	}
	p.stdin.Close()
	p.cmd.Wait()
}

// cpu returns the CPU time (user and system) the process used so far, from
// /proc/PID/stat, in clock ticks of 10 ms.
func (p *h2Proc) cpu(b *testing.B) time.Duration {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	_, after, _ := strings.Cut(string(s), ") ")
	f := strings.Fields(after)
	// Fields 14 and 15 of stat (utime, stime); after the command's ")"
	// the state is field 3.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func parseSize(s string) (int, error) {
	mul := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mul, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mul, s = 1<<20, strings.TrimSuffix(s, "m")
	}
	n, err := strconv.Atoi(s)
	return n * mul, err
}

// BenchmarkH2 downloads files over HTTP/2 from three servers at once, each
// in a process of its own: net/http with crypto/tls, Server in user space,
// and Server with the default policy (kernel TLS where the kernel has it,
// as ktls serve runs). The client is net/http's (crypto/tls, one HTTP/2
// connection per server); files up to 64 KiB are fetched by 16 concurrent
// streams, larger ones by 2, each of which takes the servers in turn (an
// op is one request to each), so that a busy machine (qemu under TCG on
// shared cores) slows all three alike. Metrics, per server: us/req-SERVER, the server process's
// CPU time (user and system, in 10 ms ticks: run for a second or more) per
// request; lat-SERVER, the client's mean time per request; and the ratios
// to net/http: cpu-SERVER/net-http and lat-SERVER/net-http (below 1: the
// server is cheaper or faster). -h2rounds repeats all cases; -h2sizes
// picks the sizes.
func BenchmarkH2(b *testing.B) {
	dir := b.TempDir()
	var sizes []int
	for s := range strings.SplitSeq(*h2Sizes, ",") {
		n, err := parseSize(s)
		if err != nil {
			b.Fatal(err)
		}
		data := make([]byte, n)
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(dir, s), data, 0o644); err != nil {
			b.Fatal(err)
		}
		sizes = append(sizes, n)
	}
	versions := []string{"1.3"}
	if kernel.Supported() == nil {
		versions = append(versions, "1.2")
	}
	for round := 1; round <= *h2Rounds; round++ {
		for _, v := range versions {
			ts := startH2Targets(b, v, dir)
			for i, name := range strings.Split(*h2Sizes, ",") {
				b.Run(fmt.Sprintf("round=%d/tls=%s/size=%s", round, v, name), func(b *testing.B) {
					benchH2(b, ts, name, sizes[i])
				})
			}
			for _, t := range ts {
				t.p.stop(*h2Prof != "")
				t.c.CloseIdleConnections()
			}
		}
	}
}

// startH2Targets starts the servers of BenchmarkH2 for TLS version v,
// serving dir, with their clients.
func startH2Targets(b *testing.B, v, dir string) []*h2Target {
	var ts []*h2Target
	for _, server := range h2Servers {
		t := &h2Target{name: server, p: startH2Server(b, server, v, dir)}
		ts = append(ts, t)
		t.c = &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		}}
		t.url = "https://" + t.p.addr + "/"
	}
	return ts
}

// h2Target is one server of BenchmarkH2 with its client and counts.
type h2Target struct {
	name string
	p    *h2Proc
	c    *http.Client
	url  string // of the root
	mode string // the server's X-Mode

	n   atomic.Int64 // requests
	lat atomic.Int64 // their total time, ns
}

func (t *h2Target) get(name string, size int, query string) error {
	start := time.Now()
	resp, err := t.c.Get(t.url + name + query)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && (n != int64(size) || resp.ProtoMajor != 2) {
		err = fmt.Errorf("%s: %s: %d bytes, want %d", t.name, resp.Proto, n, size)
	}
	if query != "" {
		t.mode = resp.Header.Get("X-Mode")
	}
	t.n.Add(1)
	t.lat.Add(int64(time.Since(start)))
	return err
}

func benchH2(b *testing.B, ts []*h2Target, name string, size int) {
	// The connection (once) and the modes, before the clock.
	for _, t := range ts {
		if err := t.get(name, size, "?mode"); err != nil {
			b.Fatal(err)
		}
	}
	streams := 16
	if size > 64<<10 {
		streams = 2
	}
	b.SetParallelism(max(1, streams/runtime.GOMAXPROCS(0)))
	b.SetBytes(int64(size) * int64(len(ts)))
	cpu0 := make([]time.Duration, len(ts))
	for i, t := range ts {
		t.n.Store(0)
		t.lat.Store(0)
		cpu0[i] = t.p.cpu(b)
	}
	var failed atomic.Value
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// One op is a request to each server, in an order that turns.
		for i := next.Add(1); pb.Next(); i++ {
			for j := range ts {
				if err := ts[(i+int64(j))%int64(len(ts))].get(name, size, ""); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}
	})
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	cpu := make([]float64, len(ts))
	lat := make([]float64, len(ts))
	for i, t := range ts {
		n := float64(max(1, t.n.Load()))
		cpu[i] = float64((t.p.cpu(b) - cpu0[i]).Microseconds()) / n
		lat[i] = float64(t.lat.Load()) / n / 1e3
		b.ReportMetric(cpu[i], "us/req-"+t.name)
		if i > 0 {
			b.ReportMetric(cpu[i]/cpu[0], "cpu-"+t.name+"/"+ts[0].name)
			b.ReportMetric(lat[i]/lat[0], "lat-"+t.name+"/"+ts[0].name)
		}
		if t.mode != "" {
			// 1 where the server's direction is in the kernel.
			b.ReportMetric(float64(strings.Count(t.mode, "tx=kernel")), "ktx-"+t.name)
			b.ReportMetric(float64(strings.Count(t.mode, "rx=kernel")), "krx-"+t.name)
		}
	}
}
