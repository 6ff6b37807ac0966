package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
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
status 1 and writes nothing. A binary body (a NUL byte in its first 4 KiB,
or a media type that is not text) is not written to a terminal unless
asked for with -o -. With -C, a partial FILE is completed: the download
asks for the bytes after the ones FILE holds (a Range request). SIGINT
(Ctrl-C) ends the download with status 130, keeping the bytes received.

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
	cont         bool
	tx, rx       ktls.Offload

	// offset is the size of the partial file -C continues, 0 if none;
	// kept the bytes written to the output so far (offset included).
	offset int64
	kept   atomic.Int64
}

func getFlags() (*flag.FlagSet, *getOptions) {
	o := &getOptions{}
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.output, "o", "", "write the body to `FILE` (created or truncated) instead of standard output; - for standard output even when the body is binary and it is a terminal")
	fs.BoolVar(&o.cont, "C", false, "continue a partial download: ask for the bytes after those in the -o FILE (same as --continue)")
	fs.BoolVar(&o.cont, "continue", false, "continue a partial download into the -o FILE")
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	caught := make(chan os.Signal, 1)
	go func() {
		select {
		case s := <-sigc:
			caught <- s
			cancel()
		case <-ctx.Done():
		}
	}()
	err := o.get(ctx, stdout, stderr)
	if err == nil {
		return 0
	}
	select {
	case s := <-caught:
		where := "in " + o.output
		if o.output == "" || o.output == "-" {
			where = "written to standard output"
		}
		fmt.Fprintf(stderr, "ktls get: interrupted (%v): %d bytes kept %s\n", s, o.kept.Load(), where)
		if sn, ok := s.(syscall.Signal); ok {
			return 128 + int(sn) // as shells report a process ended by the signal
		}
		return 1
	default:
	}
	fmt.Fprintf(stderr, "ktls get: %v\n", err)
	return 1
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
	case o.cont && (o.output == "" || o.output == "-"):
		return errors.New("-C/--continue needs -o FILE")
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
	if o.cont {
		if fi, err := os.Stat(o.output); err == nil && fi.Mode().IsRegular() {
			o.offset = fi.Size()
			o.kept.Store(o.offset)
		}
	}
	u := o.url
	for redirects := 0; ; redirects++ {
		resp, kc, br, err := o.request(ctx, u, stderr)
		if err != nil {
			return err
		}
		loc := resp.Header.Get("Location")
		switch {
		case o.offset > 0 && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			kc.Close()
			if total, ok := rangeTotal(resp.Header.Get("Content-Range")); ok && total == o.offset {
				fmt.Fprintf(stderr, "ktls get: %s already holds all %d bytes\n", o.output, total)
				return nil
			}
			return fmt.Errorf("%s: %s for the bytes after the %d in %s (Content-Range %q)", u, resp.Status, o.offset, o.output, resp.Header.Get("Content-Range"))
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			if err := o.checkRange(resp, stderr); err != nil {
				kc.Close()
				return fmt.Errorf("%s: %w", u, err)
			}
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

// checkRange checks, when -C continues a partial file, that a 206 response
// starts where the file ends; after a 200 (the server ignored the range)
// the whole file is written again.
func (o *getOptions) checkRange(resp *http.Response, stderr io.Writer) error {
	if o.offset == 0 {
		return nil
	}
	if resp.StatusCode != http.StatusPartialContent {
		fmt.Fprintf(stderr, "ktls get: the server sent the whole body (%s), not the rest: writing %s again\n", resp.Status, o.output)
		o.offset = 0
		o.kept.Store(0)
		return nil
	}
	var start, end int64
	cr := resp.Header.Get("Content-Range")
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/", &start, &end); err != nil || start != o.offset {
		return fmt.Errorf("asked for the bytes after %d, got Content-Range %q", o.offset, cr)
	}
	return nil
}

// rangeTotal returns the complete length in a Content-Range header value
// ("bytes 0-9/100", "bytes */100"), if it gives one.
func rangeTotal(cr string) (int64, bool) {
	_, total, ok := strings.Cut(cr, "/")
	n, err := strconv.ParseInt(total, 10, 64)
	return n, ok && err == nil && n >= 0
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
		err = fmt.Errorf("connecting to %s: %w", addr, err)
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) {
			err = fmt.Errorf("%w\n(to trust the server's certificate, give its CA with --ca FILE; -k skips the check)", err)
		}
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
	var hdr string
	if o.offset > 0 {
		hdr = fmt.Sprintf("Range: bytes=%d-\r\n", o.offset)
	}
	_, err = fmt.Fprintf(kc, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ktls-get\r\nAccept: */*\r\nAccept-Encoding: identity\r\n%sConnection: close\r\n\r\n",
		target, u.Host, hdr)
	var resp *http.Response
	br := bufio.NewReader(kc)
	what := "sending the request"
	if err == nil {
		what = "reading the response header from the server"
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
		return nil, nil, nil, fmt.Errorf("%s: %s: %w", u, what, err)
	}
	if o.verbose {
		fmt.Fprintf(stderr, "%s: %s, Content-Length %d, Transfer-Encoding %q\n", u, resp.Status, resp.ContentLength, resp.TransferEncoding)
	}
	return resp, kc, br, nil
}

// save writes the body of resp to the output, after the o.offset bytes a
// partial file holds. A signal (ctx) ends the download.
func (o *getOptions) save(ctx context.Context, resp *http.Response, kc *ktls.Conn, br *bufio.Reader, stdout, stderr io.Writer) error {
	defer context.AfterFunc(ctx, func() { kc.Close() })()
	var f *os.File
	name := "standard output"
	body := io.Reader(resp.Body)
	switch o.output {
	case "", "-":
		if sf, ok := stdout.(*os.File); ok {
			f = sf
			if o.output == "" && term.IsTerminal(int(sf.Fd())) {
				bb := bufio.NewReaderSize(resp.Body, sniffLen)
				head, _ := bb.Peek(sniffLen)
				if ct := resp.Header.Get("Content-Type"); binaryBody(ct, head) {
					return fmt.Errorf("%s: not writing a binary body (Content-Type %q) to the terminal: use -o FILE, or -o - to write it anyway", o.url, ct)
				}
				body = bb
			}
		}
	default:
		flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if o.offset > 0 {
			flag = os.O_WRONLY
		}
		var err error
		if f, err = os.OpenFile(o.output, flag, 0o666); err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Seek(o.offset, io.SeekStart); err != nil {
			return err
		}
		name = o.output
	}
	out := &sink{w: stdout, remaining: -1, kept: &o.kept}
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
	if rx.IsKernel() && resp.TransferEncoding == nil && body == resp.Body {
		err = out.raw(kc, br, resp.ContentLength)
	} else {
		_, err = io.Copy(struct{ io.Writer }{out}, body)
	}
	if err == nil && out.f != nil && o.output != "" {
		if err = f.Close(); err != nil {
			err = &writeError{err}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		if we := (*writeError)(nil); errors.As(err, &we) {
			return fmt.Errorf("%s: writing %s: %w", o.url, name, we.err)
		}
		return fmt.Errorf("%s: reading the body from the server (%d bytes in): %w", o.url, out.n.Load(), err)
	}
	if o.verbose {
		fmt.Fprintf(stderr, "%d bytes to %s, %d of them through the file's ReadFrom (splice)\n", out.n.Load(), name, out.spliced)
	}
	return nil
}

// sniffLen is how much of a body binaryBody looks at.
const sniffLen = 4096

// binaryBody reports whether a body is binary, by its first bytes head (a
// NUL byte, as curl checks before writing to a terminal) or by its media
// type contentType: anything but text/*, JSON, XML, JavaScript and forms.
func binaryBody(contentType string, head []byte) bool {
	if bytes.IndexByte(head, 0) >= 0 {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if contentType == "" || err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"), strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return false
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript", "application/ecmascript", "application/x-www-form-urlencoded":
		return false
	}
	return true
}

// writeError marks an error of the output, as opposed to one of the
// connection.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// outputErrno reports whether err, of splice(2) from the socket into the
// output file, is one of the output's errors (the disk is full, say).
func outputErrno(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EROFS, syscall.EPIPE, syscall.EIO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
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
	kept      *atomic.Int64 // the bytes of the output, counted too if not nil
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
	if err != nil {
		return n, &writeError{err}
	}
	return n, done
}

func (s *sink) count(n int64) {
	s.n.Add(n)
	if s.kept != nil {
		s.kept.Add(n)
	}
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
		if err != nil && outputErrno(err) {
			err = &writeError{err}
		}
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
