// Package lab is the kernel lab: it fetches Debian kernels, builds an
// initramfs around Go test binaries (or any static program) and boots it
// under qemu, so that the kernel TLS paths can be tested on machines whose
// own kernel has no CONFIG_TLS. See README.md in this directory.
//
// The lab knows nothing about the tests it runs: it builds the packages'
// test binaries, runs them as the guest's only programs and counts the
// "--- PASS/FAIL/SKIP" lines they print.
package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Options are the settings shared by every lab command.
type Options struct {
	// CacheDir holds the apt state and the extracted kernels; "" means
	// DefaultCacheDir().
	CacheDir string
	// Log receives progress messages (nil: os.Stderr).
	Log io.Writer
	// Stdout receives test and program output (nil: os.Stdout).
	Stdout io.Writer
}

func (o *Options) log() io.Writer {
	if o.Log == nil {
		return os.Stderr
	}
	return o.Log
}

func (o *Options) stdout() io.Writer {
	if o.Stdout == nil {
		return os.Stdout
	}
	return o.Stdout
}

func (o *Options) logf(format string, args ...any) {
	fmt.Fprintf(o.log(), "ktlslab: "+format+"\n", args...)
}

func (o *Options) cacheDir() (string, error) {
	if o.CacheDir != "" {
		return filepath.Abs(o.CacheDir)
	}
	return DefaultCacheDir()
}

// DefaultCacheDir is $KTLS_LAB_CACHE, else $XDG_CACHE_HOME/ktls-lab, else
// ~/.cache/ktls-lab.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("KTLS_LAB_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "ktls-lab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set KTLS_LAB_CACHE: %w", err)
	}
	return filepath.Join(home, ".cache", "ktls-lab"), nil
}

// hostTools are the host programs the lab runs, with the Debian package
// that provides each.
var hostTools = [][2]string{
	{"qemu-system-x86_64", "qemu-system-x86"},
	{"depmod", "kmod"},
	{"dpkg-deb", "dpkg"},
	{"apt-get", "apt"},
	{"apt-cache", "apt"},
}

// ErrMissingTool is wrapped by the error CheckTools returns.
var ErrMissingTool = errors.New("missing host tool")

// CheckTools reports the host tools the lab needs that are not installed,
// naming the Debian packages to install.
func CheckTools() error {
	var missing, pkgs []string
	for _, t := range hostTools {
		if _, err := lookTool(t[0]); err != nil {
			missing = append(missing, t[0])
			pkgs = append(pkgs, t[1])
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s not found; install the Debian packages: apt-get install %s",
		ErrMissingTool, strings.Join(missing, ", "), strings.Join(uniq(pkgs), " "))
}

// lookTool finds a program on $PATH or in the sbin directories, which are
// not on every user's $PATH.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func uniq(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// command runs a host program, returning its combined output in the error.
func command(dir, name string, args ...string) error {
	p, err := lookTool(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	cmd := exec.Command(p, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out, 4000))
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
