package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/ktls-go/ktls"
)

const getUsage = `Usage: ktls get [flags] URL

Download URL (https only) with HTTP/1.1 over a ktls connection and write the
body to standard output, or to FILE with -o. With the receiving direction in
the kernel and a body sent with Content-Length or up to the end of the
connection, the body goes from the socket to a regular file or a pipe with
splice(2), without entering user space; chunked bodies are decoded in user
space. A progress bar is drawn on standard error when it is a terminal.

Redirects (301, 302, 303, 307, 308) to https URLs are followed, up to
--max-redirects. A response status other than 2xx ends the command with
status 1 and writes nothing.

Flags:
`

// getOptions are the settings of ktls get.
type getOptions struct {
	url          *url.URL
	output       string
	insecure     bool
	caFile       string
	maxRedirects int
	timeout      time.Duration
	verbose      bool
	tx, rx       ktls.Offload
}

func getFlags() (*flag.FlagSet, *getOptions) {
	o := &getOptions{}
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.output, "o", "", "write the body to `FILE` (created or truncated) instead of standard output")
	fs.BoolVar(&o.insecure, "k", false, "do not verify the server's certificate (same as --insecure)")
	fs.BoolVar(&o.insecure, "insecure", false, "do not verify the server's certificate")
	fs.StringVar(&o.caFile, "ca", "", "verify the server against the certificates in `FILE` (PEM) instead of the system's")
	fs.IntVar(&o.maxRedirects, "max-redirects", 5, "follow at most `N` redirects")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "limit connecting, the handshake and the response header to `DURATION`")
	fs.BoolVar(&o.verbose, "v", false, "print each connection (tls=VERSION tx=MODE rx=MODE) and response status on standard error")
	fs.Func("tx", "where the sending direction's records go, `MODE` auto, kernel, user or off, as for serve (default auto)", offloadFlag(&o.tx))
	fs.Func("rx", "where the receiving direction's records go, `MODE` as for --tx (default auto)", offloadFlag(&o.rx))
	return fs, o
}

// runGet runs "ktls get args".
func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := getFlags()
	help := func() {
		fmt.Fprint(stdout, getUsage)
		printFlags(stdout, fs)
	}
	if status, done := parseArgs("get", fs, args, help, stderr, o.check); done {
		return status
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := o.get(ctx, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "ktls get: %v\n", err)
		return 1
	}
	return 0
}

// check validates the options and takes the URL.
func (o *getOptions) check(pos []string) error {
	if len(pos) != 1 {
		return fmt.Errorf("want one URL, have %d arguments", len(pos))
	}
	if err := schemeMissing(pos[0], "https"); err != nil {
		return err
	}
	u, err := url.Parse(pos[0])
	if err != nil {
		return err
	}
	if err := checkURL(u); err != nil {
		return err
	}
	switch {
	case o.insecure && o.caFile != "":
		return errors.New("--insecure and --ca exclude each other")
	case o.maxRedirects < 0:
		return errors.New("--max-redirects must not be negative")
	case o.timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	o.url = u
	return nil
}

// checkURL accepts https URLs with a host.
func checkURL(u *url.URL) error {
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q: want an https://HOST[:PORT]/PATH URL", u.String())
	}
	return nil
}

// get downloads o.url, following redirects.
func (o *getOptions) get(ctx context.Context, stdout, stderr io.Writer) error {
	u := o.url
	for redirects := 0; ; redirects++ {
		resp, kc, br, err := o.request(ctx, u, stderr)
		if err != nil {
			return err
		}
		loc := resp.Header.Get("Location")
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			err := o.save(ctx, resp, kc, br, stdout, stderr)
			kc.Close()
			return err
		case isRedirect(resp.StatusCode) && loc != "":
			kc.Close()
			if redirects == o.maxRedirects {
				return fmt.Errorf("%s: more than %d redirects", o.url, o.maxRedirects)
			}
			next, err := u.Parse(loc)
			if err != nil {
				return fmt.Errorf("%s: bad Location: %w", u, err)
			}
			if err := checkURL(next); err != nil {
				return fmt.Errorf("%s: redirect to %w", u, err)
			}
			u = next
		default:
			kc.Close()
			return fmt.Errorf("%s: %s", u, resp.Status)
		}
	}
}

func isRedirect(code int) bool {
	switch code {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

// request connects to u's host, sends the GET and reads the response
// header. The caller closes kc.
func (o *getOptions) request(ctx context.Context, u *url.URL, stderr io.Writer) (*http.Response, *ktls.Conn, *bufio.Reader, error) {
	cfg, err := clientTLS(u.Hostname(), o.insecure, o.caFile)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg.NextProtos = []string{"http/1.1"}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	kc, err := ktls.DialContext(ctx, "tcp", addr, &ktls.Config{TLS: cfg, TX: o.tx, RX: o.rx})
	if err != nil {
		return nil, nil, nil, err
	}
	// The context bounds the request and the response header too.
	stopAfter := context.AfterFunc(ctx, func() { kc.SetDeadline(time.Unix(1, 0)) })
	defer stopAfter()
	if o.verbose {
		st := kc.ConnectionState()
		tx, rx := kc.Mode()
		fmt.Fprintf(stderr, "connected to %s: tls=%q suite=%s tx=%s rx=%s\n", kc.RemoteAddr(),
			tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), tx, rx)
	}
	req := &http.Request{Method: "GET", URL: u, Header: http.Header{}}
	target := u.RequestURI()
	_, err = fmt.Fprintf(kc, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ktls-get\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
		target, u.Host)
	var resp *http.Response
	br := bufio.NewReader(kc)
	if err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if err == nil && !stopAfter() {
		err = ctx.Err()
	}
	if err != nil {
		kc.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (--timeout %v)", err, o.timeout)
		}
		return nil, nil, nil, fmt.Errorf("%s: %w", u, err)
	}
	if o.verbose {
		fmt.Fprintf(stderr, "%s: %s, Content-Length %d, Transfer-Encoding %q\n", u, resp.Status, resp.ContentLength, resp.TransferEncoding)
	}
	return resp, kc, br, nil
}

// save writes the body of resp to the output.
// A signal (ctx) ends the download.
func (o *getOptions) save(ctx context.Context, resp *http.Response, kc *ktls.Conn, br *bufio.Reader, stdout, stderr io.Writer) error {
	defer context.AfterFunc(ctx, func() { kc.Close() })()
	var f *os.File
	name := "standard output"
	switch o.output {
	case "", "-":
		if sf, ok := stdout.(*os.File); ok {
			f = sf
		}
	default:
		var err error
		if f, err = os.Create(o.output); err != nil {
			return err
		}
		defer f.Close()
		name = o.output
	}
	out := &sink{w: stdout, remaining: -1}
	if f != nil {
		out.w = f
		if fi, err := f.Stat(); err == nil && (fi.Mode().IsRegular() || fi.Mode()&os.ModeNamedPipe != 0) {
			out.f = f
		}
	}
	if ef, ok := stderr.(*os.File); ok && term.IsTerminal(int(ef.Fd())) {
		stop := progress(ef, &out.n, resp.ContentLength)
		defer stop()
	}
	_, rx := kc.Mode()
	var err error
	if rx.IsKernel() && resp.TransferEncoding == nil {
		err = out.raw(kc, br, resp.ContentLength)
	} else {
		_, err = io.Copy(struct{ io.Writer }{out}, resp.Body)
	}
	if err == nil && out.f != nil && o.output != "" {
		err = f.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("%s: writing %s: %w", o.url, name, err)
	}
	if o.verbose {
		fmt.Fprintf(stderr, "%d bytes to %s, %d of them through the file's ReadFrom (splice)\n", out.n.Load(), name, out.spliced)
	}
	return nil
}

// sink is where a body goes; it counts the bytes and stops at the body's
// length.
type sink struct {
	w io.Writer
	// f is set when w is a file splice(2) can write to (a regular file or
	// a pipe).
	f *os.File
	// remaining is the number of body bytes still expected, -1 if unknown.
	remaining int64
	n         atomic.Int64
	spliced   int64
}

// errBodyDone stops a copy when the body is complete.
var errBodyDone = errors.New("body complete")

// raw copies a body of length size (-1: up to the end of the stream) that
// starts with br's buffered bytes and goes on in kc, moving the rest with
// kc.WriteTo: splice(2) from the kernel's TLS socket into s.f.
func (s *sink) raw(kc *ktls.Conn, br *bufio.Reader, size int64) error {
	s.remaining = size
	head, _ := br.Peek(br.Buffered())
	if _, err := s.Write(head); err != nil && err != errBodyDone {
		return err
	}
	if s.remaining != 0 {
		if _, err := kc.WriteTo(s); err != nil && err != errBodyDone {
			return err
		}
	}
	if s.remaining > 0 {
		return fmt.Errorf("connection closed after %d of %d bytes: %w", s.n.Load(), size, io.ErrUnexpectedEOF)
	}
	return nil
}

func (s *sink) Write(p []byte) (int, error) {
	if s.remaining == 0 {
		return 0, errBodyDone
	}
	var done error
	if s.remaining > 0 && int64(len(p)) > s.remaining {
		p, done = p[:s.remaining], errBodyDone
	}
	n, err := s.w.Write(p)
	s.count(int64(n))
	if err == nil {
		err = done
	}
	return n, err
}

func (s *sink) count(n int64) {
	s.n.Add(n)
	if s.remaining > 0 {
		s.remaining -= n
	}
}

// ReadFrom moves r's bytes to the file with the file's ReadFrom (splice
// from a socket) in steps of at most 1 MiB, so that the progress moves, and
// up to the body's length. It returns nil at the end of r and errBodyDone
// at the end of the body.
func (s *sink) ReadFrom(r io.Reader) (int64, error) {
	if s.f == nil {
		return io.Copy(struct{ io.Writer }{s}, r)
	}
	var total int64
	for s.remaining != 0 {
		step := int64(1 << 20)
		if s.remaining > 0 && s.remaining < step {
			step = s.remaining
		}
		n, err := s.f.ReadFrom(&io.LimitedReader{R: r, N: step})
		total += n
		s.spliced += n
		s.count(n)
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, errBodyDone
}

// progress draws a progress bar of *n out of size bytes (-1: unknown) on
// the terminal w every 200 ms until the returned function is called.
func progress(w io.Writer, n *atomic.Int64, size int64) (stop func()) {
	start := time.Now()
	draw := func(final bool) {
		done := n.Load()
		secs := time.Since(start).Seconds()
		rate := ""
		if secs > 0 {
			rate = fmt.Sprintf("%s/s", bytesString(float64(done)/secs))
		}
		line := fmt.Sprintf("%10s  %10s", bytesString(float64(done)), rate)
		if size > 0 {
			const width = 30
			filled := int(min(done, size) * width / size)
			line = fmt.Sprintf("[%s%s] %3d%% %10s / %s  %10s", strings.Repeat("#", filled), strings.Repeat(" ", width-filled),
				min(done, size)*100/size, bytesString(float64(done)), bytesString(float64(size)), rate)
		}
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(w, "\r%s\x1b[K%s", line, end)
	}
	t := time.NewTicker(200 * time.Millisecond)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-t.C:
				draw(false)
			case <-quit:
				return
			}
		}
	}()
	return func() {
		t.Stop()
		close(quit)
		wg.Wait()
		draw(true)
	}
}

// bytesString formats a byte count with a binary unit.
func bytesString(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(b, 'f', 0, 64) + " B"
	}
	return strconv.FormatFloat(b, 'f', 1, 64) + " " + units[i]
}
