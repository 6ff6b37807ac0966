// Command goshim runs crypto/tls's own BoGo shim (the crypto/tls test binary
// in -bogo-mode, from Go's bogo_shim_test.go) under our runner revision, for
// the comparison of pass counts (scripts/bogo.sh go). That shim sends an
// 8-byte shim ID first, which this runner revision predates: goshim starts
// it on a port of its own and relays each of its connections to the
// runner's, minus those 8 bytes. It adds -trust-cert $KTLS_BOGO_TRUST (the
// CA of the runner's certificates). The test binary is $KTLS_BOGO_GOSHIM,
// else crypto-tls.test beside goshim.
package main

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
)

func main() {
	bin := os.Getenv("KTLS_BOGO_GOSHIM")
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			fail(err)
		}
		bin = filepath.Join(filepath.Dir(self), "crypto-tls.test")
	}
	args := append([]string{"-bogo-mode"}, os.Args[1:]...)
	if ca := os.Getenv("KTLS_BOGO_TRUST"); ca != "" && !slices.Contains(args, "-trust-cert") {
		// This runner revision never passes -trust-cert; crypto/tls's shim
		// verifies the runner's certificates, which scripts/bogo.sh signs
		// with this CA.
		args = append(args, "-trust-cert", ca)
	}
	var runnerPort string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	_, ours, _ := net.SplitHostPort(ln.Addr().String())
	for i := range args {
		if args[i] == "-port" && i+1 < len(args) {
			runnerPort, args[i+1] = args[i+1], ours
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				relay(c.(*net.TCPConn), runnerPort)
			}()
		}
	}()
	err = cmd.Wait()
	ln.Close()
	wg.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		fail(err)
	}
}

// relay drops the shim ID and copies both ways, passing on half-closes.
func relay(shim *net.TCPConn, port string) {
	defer shim.Close()
	if _, err := io.ReadFull(shim, make([]byte, 8)); err != nil {
		return
	}
	c, err := net.Dial("tcp", net.JoinHostPort("::1", port))
	if err != nil {
		c, err = net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	}
	if err != nil {
		return
	}
	runner := c.(*net.TCPConn)
	defer runner.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(runner, shim)
		runner.CloseWrite()
		close(done)
	}()
	io.Copy(shim, runner)
	shim.CloseWrite()
	<-done
}

func fail(err error) {
	os.Stderr.WriteString("goshim: " + err.Error() + "\n")
	os.Exit(1)
}
