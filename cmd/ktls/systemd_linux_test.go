package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/ktlstest"
)

// Run as "KTLS_TEST_MAIN=1 TESTBINARY ARGS...", this test binary is ktls
// ARGS (see startActivated). With KTLS_TEST_LISTEN_PID=self it first sets
// LISTEN_PID to its own pid, as systemd does between fork and exec.
func init() {
	if os.Getenv("KTLS_TEST_MAIN") != "1" {
		return
	}
	os.Unsetenv("KTLS_TEST_MAIN")
	if os.Getenv("KTLS_TEST_LISTEN_PID") == "self" {
		os.Unsetenv("KTLS_TEST_LISTEN_PID")
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// activated is ktls running in a child process with sockets passed as
// systemd passes them.
type activated struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	notify <-chan string // the datagrams sent to NOTIFY_SOCKET
	done   chan error
}

// notifySocket listens on a datagram socket, as systemd's NOTIFY_SOCKET,
// and returns its path and the datagrams it receives.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

// startActivated runs ktls args in a child process (this test binary, see
// init) with the listeners lns passed as fd 3, 4, ... (LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES names) and NOTIFY_SOCKET, plus env. The
// listeners are the child's: they are closed here.
func startActivated(t *testing.T, lns []net.Listener, names string, env []string, args ...string) *activated {
	t.Helper()
	var files []*os.File
	for _, ln := range lns {
		f, err := ln.(interface{ File() (*os.File, error) }).File()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		ln.Close()
	}
	path, notify := notifySocket(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a := &activated{stderr: new(syncBuffer), notify: notify, done: make(chan error, 1)}
	a.cmd = exec.Command(exe, args...)
	a.cmd.Env = append(os.Environ(), "KTLS_TEST_MAIN=1", "KTLS_TEST_LISTEN_PID=self",
		"LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+names, "NOTIFY_SOCKET="+path)
	a.cmd.Env = append(a.cmd.Env, env...)
	a.cmd.ExtraFiles = files
	a.cmd.Stderr = a.stderr
	a.start(t)
	for _, f := range files {
		f.Close()
	}
	return a
}

// start starts a.cmd and stops it at the end of the test.
func (a *activated) start(t *testing.T) {
	t.Helper()
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			t.Logf("ktls stderr:\n%s", a.stderr)
		}
	})
}

// expect waits for the next datagram to NOTIFY_SOCKET other than
// WATCHDOG=1 (unless want is that) and fails unless it has the line want.
// It returns the datagram.
func (a *activated) expect(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(time.Minute) // a safety net, not a measure
	done := a.done
	var exited string
	for {
		select {
		case m, ok := <-a.notify:
			if !ok {
				t.Fatalf("NOTIFY_SOCKET closed, want %s", want)
			}
			if m == "WATCHDOG=1" && want != m {
				continue
			}
			for line := range strings.Lines(m) {
				if strings.TrimSuffix(line, "\n") == want {
					return m
				}
			}
			t.Fatalf("sd_notify %q, want %s", m, want)
		case err := <-done:
			// What ktls sent before it exited is queued on the socket:
			// go on reading it.
			a.done <- err
			done = nil
			exited = fmt.Sprintf(" (ktls exited: %v)", err)
		case <-timeout:
			t.Fatalf("no %s on NOTIFY_SOCKET%s", want, exited)
		}
	}
}

// stop sends SIGTERM, expects STOPPING=1 and a clean exit.
func (a *activated) stop(t *testing.T) {
	t.Helper()
	a.signal(t, syscall.SIGTERM)
	a.expect(t, "STOPPING=1")
	if err := <-a.done; err != nil {
		t.Errorf("ktls after SIGTERM: %v", err)
	}
	a.done <- nil
	if !strings.Contains(a.stderr.String(), "msg=stopped") {
		t.Error("no stopped line in the log")
	}
}

func (a *activated) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// TestServeSocketActivation runs ktls serve with a listening socket passed
// as systemd passes it (fd 3, LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES)
// and NOTIFY_SOCKET and WATCHDOG_USEC set: it logs the socket, sends
// READY=1, serves on it, sends WATCHDOG=1, on SIGHUP reloads its
// certificate between RELOADING=1 (with MONOTONIC_USEC) and READY=1, and on
// SIGTERM sends STOPPING=1 and exits cleanly.
func TestServeSocketActivation(t *testing.T) {
	www, _ := tree(t, 10)
	dir := t.TempDir()
	certFile, keyFile, first := certFiles(t, dir, "a", "a.test")
	ln := listenLoopback(t)
	addr := ln.Addr().String()
	a := startActivated(t, []net.Listener{ln}, "https", []string{"WATCHDOG_USEC=200000"},
		"serve", "--cert", certFile, "--key", keyFile, www)
	a.expect(t, "READY=1")
	c := (&testServe{}).client(false)
	defer c.CloseIdleConnections()
	if resp, body := get(t, c, "https://"+addr+"/hello.txt"); resp.StatusCode != 200 || body != "hello\n" {
		t.Errorf("over the passed socket: %s %q", resp.Status, body)
	}
	if got := peerCert(t, addr, ""); !got.Equal(first) {
		t.Error("not the certificate of --cert")
	}
	a.expect(t, "WATCHDOG=1")

	_, _, second := certFiles(t, dir, "a", "b.test")
	a.signal(t, syscall.SIGHUP)
	if m := a.expect(t, "RELOADING=1"); !regexp.MustCompile(`(?m)^MONOTONIC_USEC=[1-9][0-9]*$`).MatchString(m) {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m)
	}
	a.expect(t, "READY=1")
	if got := peerCert(t, addr, ""); !got.Equal(second) {
		t.Error("after RELOADING=1 and READY=1: not the new certificate")
	}
	a.stop(t) // the log is complete once ktls has exited
	if !regexp.MustCompile(`msg="listening on a socket from systemd" fd=3 name=https addr=` + regexp.QuoteMeta(addr)).MatchString(a.stderr.String()) {
		t.Errorf("no line for the socket in the log:\n%s", a.stderr)
	}
}

// echoTLS dials the proxy at addr, sends msg, ends its stream with
// close_notify and returns what came back up to the end of the stream.
func echoTLS(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// echoBack copies what c sends back to it until its end of stream.
func echoBack(c net.Conn) {
	defer c.Close()
	io.Copy(struct{ io.Writer }{c}, c)
	c.(*net.TCPConn).CloseWrite()
}

// TestProxySocketActivation runs ktls proxy, without --listen, with two
// listening sockets passed as systemd passes them: it relays on both,
// reports READY=1, RELOADING=1 and READY=1 on SIGHUP, STOPPING=1 on
// SIGTERM.
func TestProxySocketActivation(t *testing.T) {
	backend := listenBackend(t, echoBack)
	ln1, ln2 := listenLoopback(t), listenLoopback(t)
	addrs := []string{ln1.Addr().String(), ln2.Addr().String()}
	a := startActivated(t, []net.Listener{ln1, ln2}, "tls:alt", nil, "proxy", "--to", backend)
	a.expect(t, "READY=1")
	for _, addr := range addrs {
		if got := echoTLS(t, addr, "hello "+addr); got != "hello "+addr {
			t.Errorf("through %s: %q", addr, got)
		}
	}
	a.signal(t, syscall.SIGHUP)
	a.expect(t, "RELOADING=1")
	a.expect(t, "READY=1")
	if got := echoTLS(t, addrs[1], "after SIGHUP"); got != "after SIGHUP" {
		t.Errorf("after SIGHUP: %q", got)
	}
	a.stop(t) // the log is complete once ktls has exited
	for i, name := range []string{"tls", "alt"} {
		if !strings.Contains(a.stderr.String(), "fd="+strconv.Itoa(3+i)+" name="+name+" addr="+addrs[i]) {
			t.Errorf("no line for fd %d in the log", 3+i)
		}
	}
}

// TestSocketActivationErrors: a passed socket that is not a listening TCP
// socket, and --addr or --listen given with passed sockets, are errors
// (exit status 1, and 2 for the command line), with no READY=1.
func TestSocketActivationErrors(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	unixLn, err := net.Listen("unix", filepath.Join(t.TempDir(), "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	for _, tc := range []struct {
		name   string
		socket func() *os.File
		args   []string
		status int
		stderr string
	}{
		{"udp", func() *os.File { return file(t, udp) }, []string{"serve"}, 1, `not a listening TCP socket: not TCP`},
		{"unix", func() *os.File { return file(t, unixLn) }, []string{"proxy", "--to", "127.0.0.1:1"}, 1, `not a listening TCP socket: address family 1`},
		{"not-listening", func() *os.File {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			return os.NewFile(uintptr(fd), "socket")
		}, []string{"serve"}, 1, `not a listening TCP socket: not listening`},
		{"not-a-socket", func() *os.File {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, []string{"serve"}, 1, `not a listening TCP socket: getsockopt: socket operation on non-socket`},
		{"addr", func() *os.File { return file(t, listenLoopback(t)) }, []string{"serve", "--addr", "127.0.0.1:0"}, 2, `--addr: systemd passed listening sockets to use instead (LISTEN_FDS=1): drop --addr`},
		{"listen", func() *os.File { return file(t, listenLoopback(t)) }, []string{"proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:1"}, 2, `--listen: systemd passed listening sockets`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.socket()
			path, notify := notifySocket(t)
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, tc.args...)
			cmd.Env = append(os.Environ(), "KTLS_TEST_MAIN=1", "KTLS_TEST_LISTEN_PID=self", "LISTEN_FDS=1", "LISTEN_FDNAMES=x", "NOTIFY_SOCKET="+path)
			cmd.ExtraFiles = []*os.File{f}
			out, err := cmd.CombinedOutput()
			f.Close()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.status || !strings.Contains(string(out), tc.stderr) {
				t.Errorf("%v (want status %d), output:\n%s\nwant %q", err, tc.status, out, tc.stderr)
			}
			if tc.status == 1 && !strings.Contains(string(out), "fd 3 (x)") {
				t.Errorf("the error does not name the socket: %s", out)
			}
			select {
			case m := <-notify:
				t.Errorf("sd_notify %q", m)
			default:
			}
		})
	}
}

// file returns a dup of the socket of l (a net.Listener or net.PacketConn),
// which it closes.
func file(t *testing.T, l io.Closer) *os.File {
	t.Helper()
	f, err := l.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	return f
}

// TestServeSystemdSocketActivate runs ktls serve under systemd's own
// systemd-socket-activate on two ports: it starts ktls at the first
// connection, which ktls then serves, as connections to the other port.
func TestServeSystemdSocketActivate(t *testing.T) {
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		switch {
		case os.Getenv("KTLS_LAB") == "1": // the kernel lab has no systemd
			t.Log("no systemd-socket-activate: nothing to check")
			return
		case os.Getenv("CI") == "true":
			t.Fatal("systemd-socket-activate (package systemd) is missing")
		}
		t.Skip("no systemd-socket-activate (package systemd)")
	}
	www, _ := tree(t, 10)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// systemd-socket-activate binds the ports itself (not port 0): take
	// free ones, and try again should another process take one first.
	for attempt := 1; ; attempt++ {
		ports := []string{freePort(t), freePort(t)}
		path, notify := notifySocket(t)
		a := &activated{stderr: new(syncBuffer), notify: notify, done: make(chan error, 1)}
		a.cmd = exec.Command(tool, "-l", "127.0.0.1:"+ports[0], "-l", "127.0.0.1:"+ports[1], "--fdname=https:alt",
			"-E", "KTLS_TEST_MAIN=1", "-E", "NOTIFY_SOCKET="+path, exe, "serve", www)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() }) // after the end of the command (a.start)
		a.cmd.Stderr = io.MultiWriter(a.stderr, w)
		a.start(t)
		// It reports each socket ("Listening on 127.0.0.1:PORT as 3.")
		// before it waits for a connection, or that it failed.
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		listening, failed := 0, false
		for listening < 2 && !failed {
			select {
			case line := <-lines:
				listening += strings.Count(line, "Listening on ")
				failed = strings.HasPrefix(line, "Failed")
			case err := <-a.done:
				a.done <- err
				failed = true
			}
		}
		go func() {
			for range lines {
			}
		}()
		if failed && attempt < 5 {
			t.Logf("attempt %d: %s", attempt, a.stderr)
			continue
		}
		if failed {
			t.Fatalf("systemd-socket-activate did not listen:\n%s", a.stderr)
		}
		// The first connection starts ktls, which then serves it.
		c := (&testServe{}).client(false)
		defer c.CloseIdleConnections()
		for _, port := range ports {
			if resp, body := get(t, c, "https://127.0.0.1:"+port+"/hello.txt"); resp.StatusCode != 200 || body != "hello\n" {
				t.Errorf("port %s: %s %q", port, resp.Status, body)
			}
		}
		a.expect(t, "READY=1")
		a.stop(t)
		return
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln := listenLoopback(t)
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestKernelServeSocketActivation: connections accepted on a socket passed
// by systemd (net.FileListener) go to the kernel as those of a socket ktls
// binds itself: ktls serve with --tx kernel --rx kernel serves over it and
// logs both directions in the kernel, and ktls proxy relays over it with
// both of its TLS side's directions in the kernel.
func TestKernelServeSocketActivation(t *testing.T) {
	ktlstest.RequireKernel(t)
	www, _ := tree(t, 1<<20)
	inKernel := regexp.MustCompile(`tx=kernel-(sw|ifnet) rx=kernel-(sw|ifnet)`)
	t.Run("serve", func(t *testing.T) {
		ln := listenLoopback(t)
		addr := ln.Addr().String()
		a := startActivated(t, []net.Listener{ln}, "https", nil, "serve", "--tx", "kernel", "--rx", "kernel", "--log-level", "debug", www)
		a.expect(t, "READY=1")
		c := (&testServe{}).client(false)
		if resp, body := get(t, c, "https://"+addr+"/big.bin"); resp.StatusCode != 200 || len(body) != 1<<20 {
			t.Errorf("over the passed socket: %s, %d bytes", resp.Status, len(body))
		}
		c.CloseIdleConnections()
		a.stop(t)
		line := logLine(a.stderr, "msg=connection ")
		if !inKernel.MatchString(line) {
			t.Errorf("connection line %q, want tx and rx in the kernel", line)
		}
		t.Log(line)
	})
	t.Run("proxy", func(t *testing.T) {
		ln := listenLoopback(t)
		addr := ln.Addr().String()
		a := startActivated(t, []net.Listener{ln}, "tls", nil, "proxy", "--tx", "kernel", "--rx", "kernel", "--to", listenBackend(t, echoBack))
		a.expect(t, "READY=1")
		msg := strings.Repeat("kernel ", 100000)
		if got := echoTLS(t, addr, msg); got != msg {
			t.Errorf("through the passed socket: %d bytes back, want %d", len(got), len(msg))
		}
		a.stop(t)
		line := logLine(a.stderr, "msg=connection ")
		if !strings.Contains(line, "end=clean") || !inKernel.MatchString(line) {
			t.Errorf("connection line %q, want a clean end and tx and rx in the kernel", line)
		}
		t.Log(line)
	})
}
