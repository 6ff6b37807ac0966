package ktlshttp

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"crypto/rand"
	"crypto/tls"
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
	h2Prof   = flag.String("h2cpuprofile", "", "BenchmarkH2: write the server's CPU profile to `file`.SERVER-SIZE; - prints it (base64) to stderr, for runs of a second or more")
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

func startH2Server(b *testing.B, server, version, dir, name string) *h2Proc {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), h2ServerEnv+"="+server+" "+version+" "+dir, "GOMAXPROCS=2")
	if *h2Prof != "" {
		cmd.Env = append(cmd.Env, h2ProfEnv+"="+*h2Prof+"."+server+"-"+version+"-"+name)
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

// BenchmarkH2 downloads files over HTTP/2 from a server in another process:
// net/http with crypto/tls, Server in user space, Server with the default
// policy (kernel TLS where the kernel has it). The client is net/http's
// (crypto/tls, one HTTP/2 connection); files up to 64 KiB are fetched by 16
// concurrent streams, larger ones by 2. srv-us/op is the server process's
// CPU time per request (user and system, in 10 ms ticks: run for a second
// or more). -h2rounds repeats all cases, interleaved; -h2sizes picks the
// sizes. Only ratios within one run mean anything.
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
			for i, name := range strings.Split(*h2Sizes, ",") {
				for _, server := range h2Servers {
					b.Run(fmt.Sprintf("round=%d/tls=%s/size=%s/server=%s", round, v, name, server), func(b *testing.B) {
						benchH2(b, server, v, dir, name, sizes[i])
					})
				}
			}
		}
	}
}

func benchH2(b *testing.B, server, version, dir, name string, size int) {
	p := startH2Server(b, server, version, dir, name)
	defer func() { p.stop(b.Elapsed() >= time.Second) }()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	url := "https://" + p.addr + "/" + name
	var mode string
	get := func() error {
		u := url
		if mode == "-" {
			u += "?mode"
		}
		resp, err := c.Get(u)
		if err != nil {
			return err
		}
		if mode == "-" {
			mode = resp.Header.Get("X-Mode")
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (n != int64(size) || resp.ProtoMajor != 2) {
			err = fmt.Errorf("%s: %d bytes, want %d", resp.Proto, n, size)
		}
		return err
	}
	mode = "-"
	if err := get(); err != nil { // the connection, before the clock
		b.Fatal(err)
	}
	streams := 16
	if size > 64<<10 {
		streams = 2
	}
	b.SetParallelism(max(1, streams/runtime.GOMAXPROCS(0)))
	b.SetBytes(int64(size))
	cpu0 := p.cpu(b)
	var failed atomic.Value
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(); err != nil {
				failed.CompareAndSwap(nil, err)
				return
			}
		}
	})
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((p.cpu(b)-cpu0).Microseconds())/float64(b.N), "srv-us/op")
	if mode != "" {
		// 1 where the server's direction is in the kernel.
		b.ReportMetric(float64(strings.Count(mode, "tx=kernel")), "ktx")
		b.ReportMetric(float64(strings.Count(mode, "rx=kernel")), "krx")
	}
}
