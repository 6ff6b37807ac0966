package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestGetBinaryToTerminal: with standard output a terminal, a binary body
// is refused (status 1, nothing written) unless -o - asks for it; text is
// written.
func TestGetBinaryToTerminal(t *testing.T) {
	www, _ := tree(t, 10)
	bin := append([]byte("BIN"), make([]byte, 100)...)
	if err := os.WriteFile(filepath.Join(www, "bin.dat"), bin, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startServe(t, &serveOptions{dir: www})
	for _, tc := range []struct {
		args   []string
		status int
		out    string // on the terminal
		err    string
	}{
		{[]string{"/bin.dat"}, 1, "", "not writing a binary body"},
		{[]string{"-o", "-", "/bin.dat"}, 0, "BIN", ""},
		{[]string{"/hello.txt"}, 0, "hello", ""},
	} {
		master, slave := openPTY(t)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(master) // ends with EIO once the slave is closed
			got <- b
		}()
		args := append([]string{"get", "-k"}, tc.args[:len(tc.args)-1]...)
		args = append(args, "https://"+ts.addr+tc.args[len(tc.args)-1])
		var stderr syncBuffer
		status := run(t.Context(), args, slave, &stderr)
		slave.Close()
		out := <-got
		master.Close()
		if status != tc.status || !bytes.Contains(out, []byte(tc.out)) || tc.out == "" && len(out) > 0 || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("ktls %q to a terminal: status %d, terminal %q, stderr %q; want %d, %q, %q", args, status, out, stderr.String(), tc.status, tc.out, tc.err)
		}
	}
	if !binaryBody("", []byte("a\x00b")) || binaryBody("", []byte("text")) || !binaryBody("image/png", nil) ||
		binaryBody("application/json; charset=utf-8", nil) || binaryBody("image/svg+xml", nil) || binaryBody("text/html", nil) {
		t.Error("binaryBody")
	}
}
