package lab

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktls-go/ktls/internal/lab/guestconf"
)

// RunOptions configure Run.
type RunOptions struct {
	Options
	// Kernel selects the kernel by release prefix; the newest match boots.
	Kernel string
	// Program is a static executable, or a Go package ("./cmd/x", a
	// directory, or an import path) that is built statically first.
	Program string
	// Args are the program's arguments.
	Args []string
	// Forwards are TCP forwards from 127.0.0.1 on the host.
	Forwards []Forward
	// Files are [host path, guest path] pairs copied into the guest.
	Files [][2]string
	// Timeout stops the machine (0: none).
	Timeout time.Duration
	// KVM uses hardware virtualization instead of emulation.
	KVM bool
	// With names userland programs to put into the guest (UserlandNginx);
	// nginx is added anyway when a Go program uses NginxRefPackage.
	With []string
}

// Run boots one kernel and runs a program in it, its output on o.Stdout.
// It returns the program's exit status; cancelling ctx stops the machine.
func Run(ctx context.Context, o *RunOptions) (int, error) {
	all, err := Kernels(&o.Options, false)
	if err != nil {
		return 0, err
	}
	ks, err := Select(all, o.Kernel)
	if err != nil {
		return 0, err
	}
	k := ks[len(ks)-1]
	tmp, err := os.MkdirTemp("", "ktlslab-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)

	initBin := filepath.Join(tmp, "init")
	if err := buildStatic(initBin, guestInitPkg); err != nil {
		return 0, err
	}
	if err := checkUserland(o.With); err != nil {
		return 0, err
	}
	with := o.With
	prog := o.Program
	if isGoPackage(prog) {
		deps, err := packageDeps(prog)
		if err != nil {
			return 0, err
		}
		with = withUserland(with, deps)
		o.logf("building %s", prog)
		bin := filepath.Join(tmp, "program")
		if err := buildStatic(bin, prog); err != nil {
			return 0, err
		}
		prog = bin
	}
	guestProg := path.Join("/lab/bin", filepath.Base(prog))
	files := [][2]string{{guestProg, prog}} // guest path, host path
	for _, f := range o.Files {
		files = append(files, [2]string{f[1], f[0]})
	}
	uf, err := userlandFiles(&o.Options, with)
	if err != nil {
		return 0, err
	}
	files = append(files, uf...)
	common := filepath.Join(tmp, "common.cpio.gz")
	if err := commonArchive(common, initBin, files); err != nil {
		return 0, err
	}
	cfg := guestconf.Config{
		Network: true,
		Env:     []string{"KTLS_LAB=1"},
		Steps:   []guestconf.Step{{Name: filepath.Base(prog), Dir: "/", Args: append([]string{guestProg}, o.Args...)}},
	}
	if ci, set := os.LookupEnv("CI"); set {
		cfg.Env = append(cfg.Env, "CI="+ci)
	}
	kpart := filepath.Join(tmp, "kernel.cpio.gz")
	if _, err := kernelArchive(kpart, k, cfg); err != nil {
		return 0, err
	}
	initrd := filepath.Join(tmp, "initrd")
	if err := concat(initrd, common, kpart); err != nil {
		return 0, err
	}
	msg := "booting " + k.Release
	for i, f := range o.Forwards {
		if i == 0 {
			msg += "; forwarding"
		}
		msg += fmt.Sprintf(" 127.0.0.1:%d->%d", f.HostPort, f.GuestPort)
	}
	o.logf("%s", msg)
	m := &machine{kernel: k, initrd: initrd, timeout: o.Timeout, kvm: o.KVM, network: true, forwards: o.Forwards}
	r, err := m.bootRetrying(ctx, o.stdout(), o.log())
	if err != nil {
		return 0, err
	}
	r.report(o.log(), k.Release)
	if p := r.problem(); p != "" {
		return 0, fmt.Errorf("kernel %s: %s", k.Release, p)
	}
	if len(r.steps) != 1 {
		return 0, fmt.Errorf("kernel %s: program did not run", k.Release)
	}
	return r.steps[0].code, nil
}

// isGoPackage reports whether the program is to be built with go build: a
// directory, or a path that is no file ("./cmd/x", "./...", an import path).
// An existing file is copied as it is.
func isGoPackage(p string) bool {
	if fi, err := os.Stat(p); err == nil {
		return fi.IsDir()
	}
	return strings.Contains(p, "/") && !filepath.IsAbs(p)
}
