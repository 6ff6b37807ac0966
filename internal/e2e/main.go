// Command e2e is the helper of scripts/e2e.sh, the end-to-end check of the ktls command.
//
//	e2e echo ADDR                                   plain TCP echo server (each connection's bytes come back; FIN after EOF)
//	e2e stream -addr A -ca F -name N -size BYTES    TLS client: send BYTES through an echo path and check they all come back
//	e2e guest -ktls BIN -www DIR -cert F -key F     the lab guest's program (below)
//	e2e freeport                                    print a free TCP port on 127.0.0.1
//	e2e dial ADDR                                   exit 0 when a TCP connection to ADDR succeeds
//	e2e ctl ADDR COMMAND...                         send a command to the guest's control port, print the answer
//	e2e checkjson FILE true|false                   check `ktls check --json` output: kernel TLS available or not
//	e2e statdiff BEFORE AFTER                       print the `ktls stat` counters that changed; fail unless TlsTxSw and TlsRxSw grew
//
// In the lab guest (which has no shell) "guest" starts an echo backend on 127.0.0.1:9000,
// `ktls serve --addr :8443 DIR` and `ktls proxy --listen :8444 --to 127.0.0.1:9000`, both at
// debug level with their logs on standard output prefixed "serve: " and "proxy: ", then answers
// one line per connection on the control port :9999: "ping" (pong), "sha256 FILE", "quit"
// (stops the servers and exits), or arguments for the ktls binary, whose combined output comes
// back followed by a line "exit=STATUS".
package main

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2e echo|stream|guest ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "echo":
		if len(os.Args) != 3 {
			err = errors.New("usage: e2e echo ADDR")
			break
		}
		err = echo(os.Args[2], nil)
	case "stream":
		err = stream(os.Args[2:])
	case "guest":
		err = guest(os.Args[2:])
	case "freeport":
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			fmt.Println(ln.Addr().(*net.TCPAddr).Port)
			ln.Close()
		}
	case "dial":
		var c net.Conn
		if c, err = net.DialTimeout("tcp", arg(2), 5*time.Second); err == nil {
			c.Close()
		}
	case "ctl":
		err = ctl(arg(2), strings.Join(os.Args[3:], " "))
	case "checkjson":
		err = checkJSON(arg(2), arg(3) == "true")
	case "statdiff":
		err = statDiff(arg(2), arg(3))
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

// echo serves a plain TCP echo on addr; ready, if not nil, is closed once it listens.
func echo(addr string, ready chan<- struct{}) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if ready != nil {
		close(ready)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		}()
	}
}

// stream sends -size pseudo-random bytes over TLS to -addr, reads everything that comes back
// until close_notify or EOF, and compares length and SHA-256.
func stream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	addr := fs.String("addr", "", "TLS address of the proxy")
	ca := fs.String("ca", "", "PEM certificate to trust")
	name := fs.String("name", "localhost", "server name")
	size := fs.Int64("size", 50<<20, "bytes to send")
	fs.Parse(args)
	pem, err := os.ReadFile(*ca)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return errors.New("no certificate in " + *ca)
	}
	start := time.Now()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", *addr,
		&tls.Config{RootCAs: roots, ServerName: *name})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	sent := sha256.New()
	werr := make(chan error, 1)
	go func() {
		src := io.LimitReader(rand.NewChaCha8([32]byte{'e', '2', 'e'}), *size)
		_, err := io.Copy(io.MultiWriter(c, sent), src)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got := sha256.New()
	n, rerr := io.Copy(got, c)
	if err := <-werr; err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("receive after %d bytes: %w", n, rerr)
	}
	d := time.Since(start)
	fmt.Printf("sent %d bytes sha256=%x, received %d bytes sha256=%x in %.1fs\n",
		*size, sent.Sum(nil), n, got.Sum(nil), d.Seconds())
	if n != *size || string(sent.Sum(nil)) != string(got.Sum(nil)) {
		return errors.New("stream differs")
	}
	return nil
}

// guest runs the lab side: echo backend, ktls serve, ktls proxy and the control port.
func guest(args []string) error {
	fs := flag.NewFlagSet("guest", flag.ExitOnError)
	bin := fs.String("ktls", "/e2e/ktls", "ktls binary")
	www := fs.String("www", "/e2e/www", "directory to serve")
	cert := fs.String("cert", "/e2e/cert.pem", "certificate")
	key := fs.String("key", "/e2e/key.pem", "private key")
	fs.Parse(args)

	ready := make(chan struct{})
	go func() { fmt.Println("echo:", echo("127.0.0.1:9000", ready)) }()
	<-ready
	var out sync.Mutex
	var cmds []*exec.Cmd
	for _, s := range [][]string{
		{"serve", "--addr", ":8443", "--cert", *cert, "--key", *key, "--log-level", "debug", *www},
		{"proxy", "--listen", ":8444", "--to", "127.0.0.1:9000", "--cert", *cert, "--key", *key, "--log-level", "debug"},
	} {
		cmd := exec.Command(*bin, s...)
		pr, err := cmd.StderrPipe()
		if err != nil {
			return err
		}
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			return err
		}
		cmds = append(cmds, cmd)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				out.Lock()
				fmt.Printf("%s: %s\n", s[0], sc.Text())
				out.Unlock()
			}
		}()
	}
	for _, a := range []string{"127.0.0.1:8443", "127.0.0.1:8444"} {
		if err := waitListen(a); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", ":9999")
	if err != nil {
		return err
	}
	fmt.Println("e2e guest ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if control(c, *bin) {
			break
		}
	}
	for _, cmd := range cmds {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range cmds {
		cmd.Wait()
	}
	time.Sleep(200 * time.Millisecond) // let the log readers finish
	fmt.Println("e2e guest done")
	return nil
}

func waitListen(addr string) error {
	for range 300 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("nothing listens on " + addr)
}

// control answers one command on c and reports whether it was "quit".
func control(c net.Conn, bin string) bool {
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return false
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 0:
	case f[0] == "ping":
		fmt.Fprintln(c, "pong")
	case f[0] == "quit":
		fmt.Fprintln(c, "bye")
		return true
	case f[0] == "sha256" && len(f) == 2:
		h := sha256.New()
		fl, err := os.Open(f[1])
		if err == nil {
			_, err = io.Copy(h, fl)
			fl.Close()
		}
		if err != nil {
			fmt.Fprintln(c, "error:", err)
			break
		}
		fmt.Fprintf(c, "%x\n", h.Sum(nil))
	default:
		cmd := exec.Command(bin, f...)
		cmd.Stdout, cmd.Stderr = c, c
		err := cmd.Run()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			fmt.Fprintln(c, "error:", err)
			code = -1
		}
		fmt.Fprintf(c, "exit=%d\n", code)
	}
	return false
}

// arg returns os.Args[i], or "" when there are fewer arguments.
func arg(i int) string {
	if i < len(os.Args) {
		return os.Args[i]
	}
	return ""
}

// ctl sends one command line to the guest's control port and copies the answer to stdout.
func ctl(addr, cmd string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return err
	}
	_, err = io.Copy(os.Stdout, c)
	return err
}

// checkJSON checks the report of `ktls check --json` in file: kernel TLS available with at
// least four suites taking both directions, or unavailable with a reason.
func checkJSON(file string, available bool) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var r struct {
		System    string `json:"system"`
		KernelTLS bool   `json:"kernel_tls"`
		Reason    string `json:"reason"`
		Suites    []struct {
			Version, Cipher, TX, RX string
		} `json:"suites"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	if r.KernelTLS != available {
		return fmt.Errorf("kernel_tls=%v reason=%q", r.KernelTLS, r.Reason)
	}
	if !available {
		if r.Reason == "" {
			return errors.New("unavailable without a reason")
		}
		fmt.Printf("%s: unavailable: %s\n", r.System, r.Reason)
		return nil
	}
	var ok []string
	for _, s := range r.Suites {
		if s.TX == "yes" && s.RX == "yes" {
			ok = append(ok, s.Version+" "+s.Cipher)
		}
	}
	if len(ok) < 4 {
		return fmt.Errorf("%d of %d suites take TX and RX", len(ok), len(r.Suites))
	}
	fmt.Printf("%s: available, %d suites TX+RX: %s\n", r.System, len(ok), strings.Join(ok, ", "))
	return nil
}

// statDiff prints the counters of two `ktls stat` outputs that changed and fails unless
// TlsTxSw and TlsRxSw (kernel sessions set up) grew.
func statDiff(before, after string) error {
	a, err := readStat(before)
	if err != nil {
		return err
	}
	b, err := readStat(after)
	if err != nil {
		return err
	}
	var moved []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if b[k] != a[k] {
			moved = append(moved, fmt.Sprintf("%s %d->%d", k, a[k], b[k]))
		}
	}
	fmt.Println(strings.Join(moved, ", "))
	for _, k := range []string{"TlsTxSw", "TlsRxSw"} {
		if b[k] <= a[k] {
			return fmt.Errorf("%s did not grow (%d -> %d)", k, a[k], b[k])
		}
	}
	return nil
}

// readStat reads the "name: value" lines of `ktls stat`.
func readStat(file string) (map[string]int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for l := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(l, ":")
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); ok && err == nil {
			m[strings.TrimSpace(k)] = n
		}
	}
	return m, nil
}
