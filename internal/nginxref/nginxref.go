// Package nginxref runs nginx as a reference HTTPS server: a static file
// server whose TLS records OpenSSL hands to the kernel (ssl_conf_command
// Options KTLS) and whose files go out with sendfile(2), to compare the
// package ktls with. In the kernel lab the guest has Debian 12's nginx
// (1.22 with OpenSSL 3.0) at /usr/sbin/nginx, on $PATH, whenever the test
// binary or program uses this package (see internal/lab/README.md).
package nginxref

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes one nginx server.
type Config struct {
	// Root is the directory of the files served.
	Root string
	// Addr is the listening address, host:port; port 0 picks a free port
	// (Server.Addr tells which).
	Addr string
	// Cert and Key are the PEM files of the certificate (chain) and its key.
	Cert, Key string
	// KTLS lets OpenSSL hand the records to the kernel
	// (ssl_conf_command Options KTLS), in each direction that OpenSSL and
	// the kernel support (OpenSSL 3.0: sending with TLS 1.2 and 1.3,
	// receiving with TLS 1.2).
	KTLS bool
	// HTTP2 offers HTTP/2 by ALPN besides HTTP/1.1.
	HTTP2 bool
	// Workers is the number of worker processes (0: 1).
	Workers int
	// Protocols is ssl_protocols ("": "TLSv1.2 TLSv1.3").
	Protocols string
	// Ciphers is ssl_ciphers, the TLS 1.2 cipher suites in OpenSSL's
	// notation ("": nginx's default).
	Ciphers string
	// Ciphersuites are the TLS 1.3 cipher suites
	// (ssl_conf_command Ciphersuites; "": OpenSSL's default).
	Ciphersuites string
	// Binary is the nginx executable ("": see Binary).
	Binary string
	// Dir holds the configuration, the pid file and nginx's temporary
	// files ("": a new temporary directory, removed by Stop).
	Dir string
}

// Binary finds nginx: on $PATH, else /usr/sbin/nginx (Debian's, not on
// every user's $PATH).
func Binary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	const sbin = "/usr/sbin/nginx"
	if fi, err := os.Stat(sbin); err == nil && fi.Mode()&0o111 != 0 {
		return sbin, nil
	}
	return "", fmt.Errorf("nginx: %w", exec.ErrNotFound)
}

// Version returns the version of an nginx executable ("1.22.1").
func Version(binary string) (string, error) {
	out, err := exec.Command(binary, "-v").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s -v: %w: %s", binary, err, bytes.TrimSpace(out))
	}
	v := parseVersion(string(out))
	if v == "" {
		return "", fmt.Errorf("%s -v: no version in %q", binary, bytes.TrimSpace(out))
	}
	return v, nil
}

var versionRE = regexp.MustCompile(`nginx/([0-9]+(\.[0-9]+)*)`)

// parseVersion finds the version in nginx -v's output
// ("nginx version: nginx/1.22.1").
func parseVersion(s string) string {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// atLeast reports whether the dotted version v is at least want.
func atLeast(v string, want ...int) bool {
	f := strings.Split(v, ".")
	for i, w := range want {
		n := 0
		if i < len(f) {
			n, _ = strconv.Atoi(f[i])
		}
		if n != w {
			return n > w
		}
	}
	return true
}

// quote writes a path as a quoted nginx configuration string (checkPath
// has made sure that it needs no escapes).
func quote(s string) string { return `"` + s + `"` }

// checkPath refuses paths that a quoted nginx string cannot hold as they
// are (nginx would expand $ in some directives).
func checkPath(p string) error {
	if strings.ContainsAny(p, "\"$\\\n") {
		return fmt.Errorf("nginxref: path %q: \", $, \\ or a newline cannot be used", p)
	}
	return nil
}

// Render returns nginx.conf for the configuration, for nginx of the given
// version ("1.22.1": before 1.25.1 HTTP/2 is a parameter of listen, since
// then the http2 directive), with its pid and temporary files in dir. It
// does not set daemon: Start runs nginx with -g "daemon off;".
func (c *Config) Render(version, dir string) ([]byte, error) {
	if c.Root == "" || c.Addr == "" || c.Cert == "" || c.Key == "" {
		return nil, errors.New("nginxref: Root, Addr, Cert and Key must be set")
	}
	for _, p := range []string{c.Root, c.Cert, c.Key, dir} {
		if err := checkPath(p); err != nil {
			return nil, err
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil || strings.ContainsAny(c.Addr, ";{}\"'\\$ \t\n") {
		return nil, fmt.Errorf("nginxref: bad address %q", c.Addr)
	}
	for _, s := range []string{c.Protocols, c.Ciphers, c.Ciphersuites} {
		if strings.ContainsAny(s, ";{}\"'\\$\n") {
			return nil, fmt.Errorf("nginxref: bad parameter %q", s)
		}
	}
	workers := c.Workers
	if workers <= 0 {
		workers = 1
	}
	protocols := c.Protocols
	if protocols == "" {
		protocols = "TLSv1.2 TLSv1.3"
	}
	newHTTP2 := atLeast(version, 1, 25, 1)
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Written by internal/nginxref for nginx %s.", version)
	p("worker_processes %d;", workers)
	if os.Geteuid() == 0 {
		// Workers keep running as root: the guest knows no other user.
		p("user root root;")
	}
	p("pid %s;", quote(filepath.Join(dir, "nginx.pid")))
	p("error_log stderr warn;")
	p("events {")
	p("    worker_connections 4096;")
	p("}")
	p("http {")
	p("    access_log off;")
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		p("    %s_temp_path %s;", t, quote(filepath.Join(dir, t)))
	}
	p("    types {")
	p("        text/html html;")
	p("        text/plain txt;")
	p("    }")
	p("    default_type application/octet-stream;")
	p("    sendfile on;")
	p("    tcp_nopush on;")
	p("    keepalive_timeout 300s;")
	p("    keepalive_requests 1000000;")
	p("    server {")
	listen := "listen " + c.Addr + " ssl"
	if c.HTTP2 && !newHTTP2 {
		listen += " http2"
	}
	p("        %s;", listen)
	if c.HTTP2 && newHTTP2 {
		p("        http2 on;")
	}
	p("        ssl_certificate %s;", quote(c.Cert))
	p("        ssl_certificate_key %s;", quote(c.Key))
	p("        ssl_protocols %s;", protocols)
	if c.Ciphers != "" {
		p("        ssl_ciphers %s;", c.Ciphers)
	}
	if c.Ciphersuites != "" {
		p("        ssl_conf_command Ciphersuites %s;", c.Ciphersuites)
	}
	if c.KTLS {
		p("        ssl_conf_command Options KTLS;")
	}
	p("        root %s;", quote(c.Root))
	p("        location / {")
	p("        }")
	p("    }")
	p("}")
	return b.Bytes(), nil
}

// Server is a running nginx.
type Server struct {
	// Addr is the address nginx listens on.
	Addr string

	cmd     *exec.Cmd
	dir     string
	tempDir bool
	done    chan struct{}
	waitErr error
	stderr  *syncBuffer
	stop    sync.Once
}

// syncBuffer collects nginx's error log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start writes the configuration and runs nginx in the foreground
// (-g "daemon off;", the master process with c.Workers workers), its
// error log on stderr, collected for ErrorLog. It returns once nginx
// accepts connections; cancelling ctx before then stops it.
func Start(ctx context.Context, c Config) (*Server, error) {
	bin := c.Binary
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, err
		}
	}
	version, err := Version(bin)
	if err != nil {
		return nil, err
	}
	s := &Server{dir: c.Dir, done: make(chan struct{}), stderr: &syncBuffer{}}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "nginxref-"); err != nil {
			return nil, err
		}
		s.tempDir = true
	}
	fail := func(err error) (*Server, error) {
		if s.tempDir {
			os.RemoveAll(s.dir)
		}
		return nil, err
	}
	if c.Addr, err = resolvePort(c.Addr); err != nil {
		return fail(err)
	}
	s.Addr = c.Addr
	conf, err := c.Render(version, s.dir)
	if err != nil {
		return fail(err)
	}
	confFile := filepath.Join(s.dir, "nginx.conf")
	if err := os.WriteFile(confFile, conf, 0o644); err != nil {
		return fail(err)
	}
	s.cmd = exec.Command(bin, "-p", s.dir, "-c", confFile, "-e", "stderr", "-g", "daemon off;")
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fail(fmt.Errorf("nginxref: %w", err))
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitAccepting(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// resolvePort replaces port 0 with a port that is free now.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("nginxref: %w", err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("nginxref: %w", err)
	}
	defer l.Close()
	return net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

// waitAccepting dials until nginx accepts a connection, exits, or ctx ends.
func (s *Server) waitAccepting(ctx context.Context) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", s.Addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("nginxref: nginx exited before accepting (%v): %s", s.waitErr, strings.TrimSpace(s.stderr.String()))
		case <-ctx.Done():
			return fmt.Errorf("nginxref: waiting for nginx on %s: %w: %s", s.Addr, context.Cause(ctx), strings.TrimSpace(s.stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Pid returns the process ID of nginx's master process (its workers are
// its children).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// ErrorLog returns what nginx has written to its error log (stderr).
func (s *Server) ErrorLog() string { return s.stderr.String() }

// Stop stops nginx (SIGTERM to the master, which ends its workers; SIGKILL
// to the process group if that takes more than 10 seconds) and removes a
// temporary directory. It returns nil if nginx exited on the signal.
func (s *Server) Stop() error {
	var err error
	s.stop.Do(func() {
		select {
		case <-s.done:
			err = fmt.Errorf("nginxref: nginx had exited: %v: %s", s.waitErr, strings.TrimSpace(s.stderr.String()))
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.done
			}
			var ee *exec.ExitError
			if s.waitErr != nil && !errors.As(s.waitErr, &ee) {
				err = s.waitErr
			}
		}
		if s.tempDir {
			os.RemoveAll(s.dir)
		}
	})
	return err
}
