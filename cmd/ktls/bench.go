package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktls-go/ktls/internal/bench"
	"github.com/ktls-go/ktls/internal/kernel"
)

const benchUsage = `Usage: ktls bench [flags]

Measure, on loopback, every way ktls sends data over TLS next to plain TCP
(the ceiling) and crypto/tls (the baseline), in the same run: throughput,
sender and receiver CPU seconds per GB (10^9 bytes), system calls per MiB
(sender) and the ratios to the matching crypto/tls path. Paths: plain TCP
write and sendfile; crypto/tls Write and io.Copy from a file; the ktls
user-space engine's Write and ReadFrom a file; the kernel engine's Write,
sendfile and splice from a TCP socket (only where the kernel has TLS); for
TLS 1.2 and 1.3 with AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 where
they can be selected. Also handshake (+ hand-off) against a crypto/tls
handshake, and ktls serve's file server against net/http + crypto/tls on a
large file (throughput) and a 4 KiB file (requests per second), and its
memory: --mem-conns keep-alive connections, idle after the handshake, after
a 1 KiB GET and after a 300 KiB GET, the server's resident set and Go heap
per connection (after garbage collection) against net/http + crypto/tls.

--run servers compares servers instead, with the same Go client for all:
ktls-serve (ktls serve's server, kernel engine where the kernel has TLS),
net/http (+ crypto/tls), nginx-ktls (nginx, 1 worker, sendfile, ssl_conf_command
Options KTLS) and nginx (the same without kernel TLS), on a large file
(throughput, server CPU per GB), 4 KiB and 64 KiB files over 16 keep-alive
connections and new connections (requests or connections per second,
server CPU per request), each over HTTP/1.1 and HTTP/2 and TLS 1.3 and 1.2
with AES-128-GCM; with the ratios of ktls-serve to nginx-ktls and to
net/http. The server CPU of nginx is that of its processes (/proc/PID/stat).
Whether nginx-ktls used kernel TLS is read from /proc/net/tls_stat. Without
nginx (--nginx) its rows are left out, unless --run names nginx. These
scenarios run only when --run asks for them (a string with "servers").

Each sender and each receiver runs in its own process (this program,
re-executed), so that CPU time is attributed to one side. Values are medians
over --rounds; ratios are medians of the per-round ratios, and "rounds'
range" shows the smallest and largest per-round throughput ratio. Only
ratios within one run compare well; the machine should be otherwise idle.

Sizes take a unit: 64MiB, 1GiB, 500MB, 4096.

Flags:
`

// benchOptions are the settings of ktls bench.
type benchOptions struct {
	json        bool
	markdown    bool
	quick       bool
	plot        string
	from        string
	title       string
	size        int64
	fileSize    int64
	writeSize   int64
	duration    time.Duration
	rounds      int
	concurrency int
	memConns    int
	serverConns int
	nginx       string
	run         string
	cpuprofile  string
}

// benchFlags returns the flag set of ktls bench. Its Usage prints to w.
func benchFlags(w io.Writer) (*flag.FlagSet, *benchOptions) {
	o := &benchOptions{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.json, "json", false, "print the results as one JSON array instead of a table")
	fs.BoolVar(&o.markdown, "markdown", false, "print the results as Markdown tables instead of a text table")
	fs.BoolVar(&o.quick, "quick", false, "a short run: --size 64MiB --rounds 1 --duration 500ms unless given")
	fs.StringVar(&o.plot, "plot", "", "draw the ratios to crypto/tls as a bar chart into `FILE` (.png, .svg or .pdf)")
	fs.StringVar(&o.from, "from", "", "measure nothing: read the results from `FILE`, written by --json, and print the table (or --plot)")
	fs.StringVar(&o.title, "title", "", "the plot's `TITLE` (default: ktls bench, with the kernel release)")
	fs.Func("size", "bytes each bulk path moves and the large-file HTTP scenario downloads, `SIZE` (default 1GiB)", sizeFlag(&o.size))
	fs.Func("file-size", "size of the file the file paths send over and over, `SIZE` (default min(size, 64MiB))", sizeFlag(&o.fileSize))
	fs.Func("write-size", "bytes per Write on the write paths, `SIZE` (default 256KiB)", sizeFlag(&o.writeSize))
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "how long the handshake and 4 KiB HTTP scenarios run, `DURATION`")
	fs.IntVar(&o.rounds, "rounds", 3, "run every path `N` times, interleaved")
	fs.IntVar(&o.concurrency, "concurrency", 8, "`N` concurrent clients in the 4 KiB HTTP scenario; the servers scenarios have 16 unless given")
	fs.IntVar(&o.memConns, "mem-conns", 2000, "`N` keep-alive connections in the memory scenario")
	fs.StringVar(&o.nginx, "nginx", "", "the nginx executable of the servers scenarios, `PATH` (default: nginx in PATH, else /usr/sbin/nginx)")
	fs.StringVar(&o.run, "run", "", "measure only the paths whose name (as in the table: engine path [protocol] version suite) contains one of the comma-separated `STRINGS`, and their baselines; the servers scenarios only for a string that contains \"servers\"")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of every sender and receiver process into `DIR` (go tool pprof)")
	fs.Usage = func() {
		fmt.Fprint(w, benchUsage)
		printFlags(w, fs)
	}
	return fs, o
}

// sizeFlag parses a byte count with an optional unit (KiB, MiB, GiB, KB,
// MB, GB, K, M, G as binary).
func sizeFlag(p *int64) func(string) error {
	return func(s string) error {
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		*p = n
		return nil
	}
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("bad size %q: want a positive number of bytes with an optional unit (KiB, MiB, GiB, KB, MB, GB)", s)
	}
	return int64(f * float64(mult)), nil
}

// runBench runs "ktls bench", or one side of a measurement when this is
// a child process started by it.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if spec := os.Getenv(bench.ChildEnv); spec != "" {
		return bench.RunChild(spec, os.Stdin, stdout, stderr)
	}
	fs, o := benchFlags(stdout)
	status, done := parseArgs("bench", fs, args, fs.Usage, stderr, func(pos []string) error {
		if err := noArgs(pos); err != nil {
			return err
		}
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		return o.check(given)
	})
	if done {
		return status
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := o.results(ctx, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ktls bench: %v\n", err)
		return 1
	}
	for _, r := range results {
		if r.KernelTLS == bench.KernelTLSNotUsed {
			fmt.Fprintf(stderr, "ktls bench: %s: %s\n", r.Name(), r.Note)
		}
	}
	if o.plot != "" {
		if err := bench.WritePlot(o.plot, o.plotTitle(), results); err != nil {
			fmt.Fprintf(stderr, "ktls bench: %v\n", err)
			return 1
		}
	}
	switch {
	case o.json:
		err = bench.WriteJSON(stdout, results)
	case o.markdown:
		err = bench.WriteMarkdown(stdout, results)
	default:
		err = bench.WriteTable(stdout, results)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ktls bench: %v\n", err)
		return 1
	}
	return 0
}

// check fills in the defaults of the size flags and, with --quick, of
// the flags not given.
func (o *benchOptions) check(given map[string]bool) error {
	if o.size == 0 {
		o.size = 1 << 30
	}
	if o.writeSize == 0 {
		o.writeSize = 256 << 10
	}
	o.serverConns = 16
	if given["concurrency"] {
		o.serverConns = o.concurrency
	}
	if o.quick {
		if !given["size"] {
			o.size = 64 << 20
		}
		if !given["rounds"] {
			o.rounds = 1
		}
		if !given["duration"] {
			o.duration = 500 * time.Millisecond
		}
	}
	switch {
	case o.duration <= 0:
		return errors.New("--duration must be positive")
	case o.rounds <= 0:
		return errors.New("--rounds must be positive")
	case o.concurrency <= 0:
		return errors.New("--concurrency must be positive")
	case o.memConns <= 0:
		return errors.New("--mem-conns must be positive")
	case o.writeSize > 1<<30:
		return errors.New("--write-size must be at most 1GiB")
	case o.json && o.markdown:
		return errors.New("--json and --markdown exclude each other")
	case o.fileSize > o.size:
		return errors.New("--file-size must not exceed --size")
	}
	return nil
}

// results measures, or reads the results of --from.
func (o *benchOptions) results(ctx context.Context, stderr io.Writer) ([]bench.Result, error) {
	if o.from != "" {
		f, err := os.Open(o.from)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return bench.ReadJSON(f)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot re-execute this program for the measurements: %w", err)
	}
	bo := bench.Options{
		Size:        o.size,
		FileSize:    o.fileSize,
		WriteSize:   int(o.writeSize),
		Duration:    o.duration,
		Rounds:      o.rounds,
		Concurrency: o.concurrency,
		MemConns:    o.memConns,
		Command:     []string{exe, "bench"},
		ProfileDir:  o.cpuprofile,
		Nginx:       o.nginx,

		ServerConcurrency: o.serverConns,
	}
	if o.cpuprofile != "" {
		if err := os.MkdirAll(o.cpuprofile, 0o755); err != nil {
			return nil, err
		}
	}
	if o.run != "" {
		bo.Filter = strings.Split(o.run, ",")
	}
	start, tty := time.Now(), isTerminal(stderr)
	bo.Progress = func(done, total int, what string) {
		switch {
		case tty && done == total:
			fmt.Fprintf(stderr, "\r\033[K")
		case tty:
			fmt.Fprintf(stderr, "\r\033[K[%d/%d %s] %s", done+1, total, time.Since(start).Round(time.Second), what)
		case done < total:
			fmt.Fprintf(stderr, "ktls bench: [%d/%d %s] %s\n", done+1, total, time.Since(start).Round(time.Second), what)
		}
	}
	return bench.Run(ctx, bo)
}

func (o *benchOptions) plotTitle() string {
	if o.title != "" {
		return o.title
	}
	t := "ktls bench"
	if rel := kernelRelease(); rel != "" && o.from == "" {
		t += ", kernel " + rel
		if kernel.Supported() != nil {
			t += " (no kernel TLS)"
		}
	}
	return t
}

// kernelRelease returns the running kernel's release, or "".
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
