package lab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCPIOFormat(t *testing.T) {
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	w.File("/a/b/c.txt", 0o644, []byte("hello"))
	w.File("a/b/c.txt", 0o644, []byte("ignored duplicate"))
	w.CharDev("/dev/console", 5, 1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if len(b)%4 != 0 {
		t.Errorf("archive length %d not a multiple of 4", len(b))
	}
	if !bytes.HasPrefix(b, []byte("070701")) {
		t.Errorf("no newc magic: %q", b[:6])
	}
	// Entries in order: a, a/b, a/b/c.txt, dev, dev/console, TRAILER!!!.
	var names []string
	for off := 0; off < len(b); {
		h := string(b[off : off+110])
		var size, namesize int
		parseHex(t, h[54:62], &size)
		parseHex(t, h[94:102], &namesize)
		name := string(b[off+110 : off+110+namesize-1])
		names = append(names, name)
		off = align4(off+110+namesize) + align4(size)
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("trailer at %d, archive ends at %d", off, len(b))
			}
			break
		}
	}
	want := "a a/b a/b/c.txt dev dev/console TRAILER!!!"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("entries %q, want %q", got, want)
	}
}

func TestCPIOReadByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		if os.Getenv("KTLS_LAB") == "1" {
			return // no cpio in the lab's guest; its kernel unpacked our archive to get here
		}
		t.Skip("cpio not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "x"), []byte("xyz\n"), 0o600)
	os.WriteFile(filepath.Join(src, "y"), bytes.Repeat([]byte{1}, 4097), 0o755)
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	w.CopyTree("/t", src)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir = out
	cmd.Stdin = &buf
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, b)
	}
	if b, err := os.ReadFile(filepath.Join(out, "t", "sub", "x")); err != nil || string(b) != "xyz\n" {
		t.Errorf("t/sub/x = %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(out, "t", "y"))
	if err != nil || fi.Size() != 4097 || fi.Mode().Perm() != 0o755 {
		t.Errorf("t/y: %v %v", fi, err)
	}
}

func align4(n int) int { return (n + 3) &^ 3 }

func parseHex(t *testing.T, s string, v *int) {
	t.Helper()
	var x uint32
	for _, c := range s {
		x <<= 4
		switch {
		case c >= '0' && c <= '9':
			x |= uint32(c - '0')
		case c >= 'a' && c <= 'f':
			x |= uint32(c-'a') + 10
		default:
			t.Fatalf("bad hex %q", s)
		}
	}
	*v = int(x)
}
