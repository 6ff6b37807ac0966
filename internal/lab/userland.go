package lab

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Userland programs the guest can be given (TestOptions.With,
// RunOptions.With): Debian packages unpacked into the lab cache, of which
// the program and the shared libraries it needs go into the initramfs at
// their Debian paths.
const (
	// UserlandNginx is Debian 12's nginx (/usr/sbin/nginx) with OpenSSL 3.0
	// (libssl3, built with kernel TLS), PCRE2, zlib, libcrypt and glibc.
	UserlandNginx = "nginx"
)

// NginxRefPackage is the package that starts nginx as a reference server;
// the test binaries and programs that depend on it get nginx in the guest
// without being asked.
const NginxRefPackage = "github.com/ktls-go/ktls/internal/nginxref"

// userlandSuites are the Debian suites the userland packages come from
// (the newest version among them): Debian 12 with its updates and
// security fixes, the release whose OpenSSL (3.0) has kernel TLS.
var userlandSuites = []string{"bookworm", "bookworm-updates", "bookworm-security"}

// userland is one program fetched for the guest.
type userland struct {
	name string // "nginx"
	pkg  string // the binary package holding it
	prog string // its guest path
	dirs []string
}

var userlands = []userland{{
	name: UserlandNginx,
	pkg:  "nginx",
	prog: "/usr/sbin/nginx",
	// nginx's compiled-in paths, for a plain "nginx -t" or a
	// configuration without its own temp paths.
	dirs: []string{"/var/lib/nginx", "/var/log/nginx", "/etc/nginx"},
}}

// checkUserland validates the names given to With.
func checkUserland(names []string) error {
	for _, n := range names {
		if _, err := findUserland(n); err != nil {
			return err
		}
	}
	return nil
}

func findUserland(name string) (userland, error) {
	for _, u := range userlands {
		if u.name == name {
			return u, nil
		}
	}
	var have []string
	for _, u := range userlands {
		have = append(have, u.name)
	}
	return userland{}, fmt.Errorf("unknown userland program %q (have %s)", name, strings.Join(have, ", "))
}

// Userland makes sure the named program (UserlandNginx) is in the cache
// and returns the directory that holds it and its libraries at their
// guest paths (CACHE/userland/NAME/root), fetching the packages the first
// time with the lab's private apt configuration.
func Userland(o *Options, name string) (string, error) {
	u, err := findUserland(name)
	if err != nil {
		return "", err
	}
	dir, err := o.cacheDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, "userland", u.name, "root")
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(u.prog))); err == nil {
		return root, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, "lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(u.prog))); err == nil {
		return root, nil
	}
	for _, t := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := lookTool(t); err != nil {
			return "", CheckTools()
		}
	}
	apt := &aptEnv{dir: filepath.Join(dir, "apt")}
	if err := apt.setup("/etc/apt"); err != nil {
		return "", err
	}
	return root, fetchUserland(o, apt, u, root)
}

// fetchUserland downloads the program's package, then, as long as the
// program or a library it loads names a library (DT_NEEDED) that is not
// there, the dependencies (Depends) of the package that needs it, and
// copies the program with what it needs into root.
func fetchUserland(o *Options, apt *aptEnv, u userland, root string) error {
	work := filepath.Join(filepath.Dir(root), "work")
	os.RemoveAll(work)
	defer os.RemoveAll(work)
	var trees []pkgTree
	depends := map[string][]string{}
	versions := map[string]string{}
	fetch := func(pkgs []string) error {
		var specs []string
		for _, p := range pkgs {
			v, err := apt.suiteVersion(p, userlandSuites)
			if err != nil {
				return err
			}
			versions[p] = v
			specs = append(specs, p+"="+v)
		}
		o.logf("downloading %s", strings.Join(specs, " "))
		debs := filepath.Join(work, "debs")
		os.RemoveAll(debs)
		if err := os.MkdirAll(debs, 0o755); err != nil {
			return err
		}
		if err := apt.download(debs, specs...); err != nil {
			return err
		}
		for _, p := range pkgs {
			files, _ := filepath.Glob(filepath.Join(debs, p+"_*.deb"))
			if len(files) != 1 {
				return fmt.Errorf("apt-get download %s: got %d .deb files", p, len(files))
			}
			t := pkgTree{name: p, dir: filepath.Join(work, "pkgs", p)}
			if err := os.MkdirAll(t.dir, 0o755); err != nil {
				return err
			}
			if err := command("", "dpkg-deb", "-x", files[0], t.dir); err != nil {
				return err
			}
			out, err := commandOutput("dpkg-deb", "-f", files[0], "Depends")
			if err != nil {
				return err
			}
			depends[p] = parseDepends(string(out))
			trees = append(trees, t)
		}
		return nil
	}
	if err := fetch([]string{u.pkg}); err != nil {
		return err
	}
	var files map[string]string
	for {
		var missing map[string][]string
		var err error
		files, missing, err = elfClosure(trees, u.prog)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			break
		}
		var next []string
		for _, needers := range missing {
			for _, n := range needers {
				for _, d := range depends[n] {
					if _, done := versions[d]; !done && !contains(next, d) {
						next = append(next, d)
					}
				}
			}
		}
		if len(next) == 0 {
			var libs []string
			for l, n := range missing {
				libs = append(libs, fmt.Sprintf("%s (needed by %s)", l, strings.Join(n, ", ")))
			}
			sort.Strings(libs)
			return fmt.Errorf("%s: not found in the packages or their dependencies: %s", u.prog, strings.Join(libs, "; "))
		}
		sort.Strings(next)
		if err := fetch(next); err != nil {
			return err
		}
	}
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	for g, h := range files {
		if err := copyFile(filepath.Join(tmp, filepath.FromSlash(g)), h); err != nil {
			return err
		}
	}
	for _, d := range u.dirs {
		if err := os.MkdirAll(filepath.Join(tmp, filepath.FromSlash(d)), 0o755); err != nil {
			return err
		}
	}
	var list []string
	for p, v := range versions {
		list = append(list, p+"="+v+"\n")
	}
	sort.Strings(list)
	if err := os.WriteFile(filepath.Join(filepath.Dir(root), "packages.txt"), []byte(strings.Join(list, "")), 0o644); err != nil {
		return err
	}
	os.RemoveAll(root)
	return os.Rename(tmp, root)
}

// parseDepends returns the package names of a Depends field, the first
// of each set of alternatives.
func parseDepends(field string) []string {
	var names []string
	for _, d := range strings.Split(field, ",") {
		alt, _, _ := strings.Cut(d, "|")
		name, _, _ := strings.Cut(strings.TrimSpace(alt), " ")
		name, _, _ = strings.Cut(name, ":")
		name, _, _ = strings.Cut(name, "(")
		if name != "" && !contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// suiteVersion returns the newest version of a package in the suites,
// fetching the package lists first if it has none there.
func (a *aptEnv) suiteVersion(pkg string, suites []string) (string, error) {
	for try := 0; ; try++ {
		out, err := a.run(a.dir, "apt-cache", "madison", pkg)
		if err != nil && try > 0 {
			return "", err
		}
		if v := madisonVersion(string(out), pkg, suites); v != "" {
			return v, nil
		}
		if try > 0 {
			return "", fmt.Errorf("package %s not found in the suites %s", pkg, strings.Join(suites, ", "))
		}
		if err := a.update(); err != nil {
			return "", err
		}
	}
}

// madisonVersion picks from apt-cache madison's output (newest version
// first) the first version of pkg found in one of the suites.
func madisonVersion(out, pkg string, suites []string) string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 || strings.TrimSpace(f[0]) != pkg {
			continue
		}
		src := strings.Fields(f[2]) // URI suite/component arch Packages
		if len(src) < 2 {
			continue
		}
		suite, _, _ := strings.Cut(src[1], "/")
		if contains(suites, suite) {
			return strings.TrimSpace(f[1])
		}
	}
	return ""
}

// commandOutput runs a host program and returns its standard output.
func commandOutput(name string, args ...string) ([]byte, error) {
	p, err := lookTool(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out, err := exec.Command(p, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

// copyFile copies the host file src (following symlinks) to dst, with
// its permission bits, creating dst's directory.
func copyFile(dst, src string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// userlandFiles returns the [guest path, host path] pairs that put the
// named programs into the initramfs.
func userlandFiles(o *Options, names []string) ([][2]string, error) {
	var files [][2]string
	for _, n := range names {
		root, err := Userland(o, n)
		if err != nil {
			return nil, fmt.Errorf("%s for the guest: %w", n, err)
		}
		files = append(files, [2]string{"/", root})
	}
	return files, nil
}

// withUserland adds to the requested programs those that the packages
// (imports and dependencies) call for: nginx for NginxRefPackage.
func withUserland(with, uses []string) []string {
	out := append([]string{}, with...)
	if contains(uses, NginxRefPackage) && !contains(out, UserlandNginx) {
		out = append(out, UserlandNginx)
	}
	return out
}
