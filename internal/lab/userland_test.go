package lab

import (
	"debug/elf"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
)

// hostELF returns the real file of a dynamically linked host program and
// of a host library, or skips (they are Debian's amd64 files on the lab's
// build machines).
func hostELF(t *testing.T, p string) string {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs Linux amd64 host files")
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Skip(err)
	}
	f, err := elf.Open(real)
	if err != nil {
		t.Skip(err)
	}
	f.Close()
	return real
}

func place(t *testing.T, root, guest, src string) {
	t.Helper()
	if err := copyFile(filepath.Join(root, filepath.FromSlash(guest)), src); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, root, guest, target string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(guest))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// TestELFClosure resolves a program's interpreter and DT_NEEDED libraries
// across unpacked packages, through absolute and relative symbolic links,
// and names what is missing with the packages that need it.
func TestELFClosure(t *testing.T) {
	if os.Getenv("KTLS_LAB") == "1" {
		// A skip would fail the lab run; this is a test of the host side.
		t.Log("the lab's guest has no dynamically linked program to resolve: nothing to check")
		return
	}
	sh := hostELF(t, "/bin/sh")                                    // NEEDED libc.so.6, PT_INTERP /lib64/ld-linux-x86-64.so.2
	libc := hostELF(t, "/lib/x86_64-linux-gnu/libc.so.6")          // NEEDED ld-linux-x86-64.so.2
	ld := hostELF(t, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2") // no NEEDED
	dir := t.TempDir()
	app := pkgTree{"app", filepath.Join(dir, "app")}
	c := pkgTree{"libc", filepath.Join(dir, "libc")}
	place(t, app.dir, "/usr/sbin/app", sh)

	files, missing, err := elfClosure([]pkgTree{app}, "/usr/sbin/app")
	if err != nil {
		t.Fatal(err)
	}
	wantMissing := map[string][]string{"libc.so.6": {"app"}, "/lib64/ld-linux-x86-64.so.2": {"app"}}
	if !reflect.DeepEqual(missing, wantMissing) || len(files) != 1 {
		t.Fatalf("app alone: files %v, missing %v; want missing %v", files, missing, wantMissing)
	}

	// libc.so.6 is a relative link to the real file, the interpreter an
	// absolute link into the library directory.
	place(t, c.dir, "/lib/x86_64-linux-gnu/libc-2.36.so", libc)
	symlink(t, c.dir, "/lib/x86_64-linux-gnu/libc.so.6", "libc-2.36.so")
	place(t, c.dir, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", ld)
	symlink(t, c.dir, "/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	files, missing, err = elfClosure([]pkgTree{app, c}, "/usr/sbin/app")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/usr/sbin/app":                              filepath.Join(app.dir, "usr/sbin/app"),
		"/lib/x86_64-linux-gnu/libc.so.6":            filepath.Join(c.dir, "lib/x86_64-linux-gnu/libc-2.36.so"),
		"/lib64/ld-linux-x86-64.so.2":                filepath.Join(c.dir, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
		"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": filepath.Join(c.dir, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
	}
	if len(missing) != 0 || !reflect.DeepEqual(files, want) {
		t.Fatalf("app and libc: files %v, missing %v; want files %v", files, missing, want)
	}

	// A library that needs what nobody has: named with its package.
	if err := os.Remove(filepath.Join(c.dir, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	_, missing, err = elfClosure([]pkgTree{app, c}, "/usr/sbin/app")
	if err != nil {
		t.Fatal(err)
	}
	// (glibc's libc.so.6 is also a program, with an interpreter.)
	wantMissing = map[string][]string{"/lib64/ld-linux-x86-64.so.2": {"app", "libc"}, "ld-linux-x86-64.so.2": {"libc"}}
	if !reflect.DeepEqual(missing, wantMissing) {
		t.Fatalf("without ld.so: missing %v, want %v", missing, wantMissing)
	}

	// A link loop is an error, not a hang.
	symlink(t, app.dir, "/usr/sbin/loop", "loop")
	if _, _, err := elfClosure([]pkgTree{app}, "/usr/sbin/loop"); err == nil {
		t.Fatal("link loop: no error")
	}
}

func TestParseDepends(t *testing.T) {
	got := parseDepends("libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0), libssl3 (>= 3.0.0), zlib1g (>= 1:1.1.4), iproute2, nginx-common (<< 1.22.1-9+deb12u12.1~), nginx-common (>= 1.22.1-9+deb12u12), foo:any | bar, baz(>=1)")
	want := []string{"libc6", "libcrypt1", "libssl3", "zlib1g", "iproute2", "nginx-common", "foo", "baz"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseDepends = %q, want %q", got, want)
	}
}

func TestMadisonVersion(t *testing.T) {
	out := `     libc6 |     2.43-7 | http://example.org/debian sid/main amd64 Packages
     libc6 | 2.41-12+deb13u5 | http://example.org/debian trixie/main amd64 Packages
     libc6 | 2.36-9+deb12u14 | http://example.org/debian bookworm/main amd64 Packages
     libc6 | 2.36-9+deb12u7 | http://example.org/debian-security bookworm-security/main amd64 Packages
 libc6-dev | 2.36-9+deb12u15 | http://example.org/debian bookworm-updates/main amd64 Packages
`
	if v := madisonVersion(out, "libc6", userlandSuites); v != "2.36-9+deb12u14" {
		t.Errorf("libc6: %q", v)
	}
	if v := madisonVersion(out, "libc6", []string{"bullseye"}); v != "" {
		t.Errorf("libc6 in bullseye: %q", v)
	}
}

func TestWithUserland(t *testing.T) {
	if got := withUserland(nil, []string{"fmt", NginxRefPackage}); !reflect.DeepEqual(got, []string{UserlandNginx}) {
		t.Errorf("a package using nginxref: %q", got)
	}
	if got := withUserland([]string{UserlandNginx}, []string{NginxRefPackage}); !reflect.DeepEqual(got, []string{UserlandNginx}) {
		t.Errorf("asked and used: %q", got)
	}
	if got := withUserland(nil, []string{"fmt"}); len(got) != 0 {
		t.Errorf("no user: %q", got)
	}
	if err := checkUserland([]string{"nginx"}); err != nil {
		t.Error(err)
	}
	if err := checkUserland([]string{"apache2"}); err == nil {
		t.Error("apache2: no error")
	}
}
