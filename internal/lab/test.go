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

// defaultTestTimeout is the -test.timeout of each test binary unless the
// go test flags set one.
const defaultTestTimeout = 4 * time.Minute

// hasFlag reports whether args set the flag ("-name" or "-name=...").
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// TestOptions configure Test.
type TestOptions struct {
	Options
	// Kernel selects kernels by release prefix (see MatchPrefix).
	Kernel string
	// Packages are go package patterns; none means "./...".
	Packages []string
	// TestFlags are go test flags (see TranslateTestFlags).
	TestFlags []string
	// Require makes a skipped test fail the run.
	Require bool
	// Timeout limits each boot (0: none).
	Timeout time.Duration
	// KVM uses hardware virtualization instead of emulation.
	KVM bool
	// With names userland programs to put into the guest (UserlandNginx);
	// nginx is added anyway when a package uses NginxRefPackage.
	With []string
}

// Test builds the packages' test binaries, boots each selected kernel in
// turn and runs them there. Test output goes to o.Stdout, followed for
// each kernel by one line "kernel RELEASE: N passed, M failed, K skipped".
// ok is false if a test failed, a kernel did not boot, timed out or hit a
// fault, or (with Require) a test skipped.
func Test(ctx context.Context, o *TestOptions) (ok bool, err error) {
	all, err := Kernels(&o.Options, false)
	if err != nil {
		return false, err
	}
	ks, err := Select(all, o.Kernel)
	if err != nil {
		return false, err
	}
	patterns := o.Packages
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	pkgs, err := listTestPackages(patterns)
	if err != nil {
		return false, err
	}
	if len(pkgs) == 0 {
		return false, fmt.Errorf("no packages with tests in %s", strings.Join(patterns, " "))
	}
	if err := checkUserland(o.With); err != nil {
		return false, err
	}
	with := o.With
	for _, p := range pkgs {
		with = withUserland(with, p.Uses)
	}
	files, err := userlandFiles(&o.Options, with)
	if err != nil {
		return false, err
	}
	tmp, err := os.MkdirTemp("", "ktlslab-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)

	o.logf("building %d test binaries", len(pkgs))
	start := time.Now()
	initBin := filepath.Join(tmp, "init")
	if err := buildStatic(initBin, guestInitPkg); err != nil {
		return false, err
	}
	if err := buildTests(tmp, pkgs); err != nil {
		return false, err
	}
	cfg := guestconf.Config{Env: []string{"KTLS_LAB=1"}}
	if ci, set := os.LookupEnv("CI"); set {
		cfg.Env = append(cfg.Env, "CI="+ci)
	}
	flags := append([]string{"-test.v"}, TranslateTestFlags(o.TestFlags)...)
	if !hasFlag(flags, "-test.timeout") {
		// Like go test's 10m default, but short enough that a hanging test
		// panics with its goroutines before the boot times out.
		t := defaultTestTimeout
		if o.Timeout > 0 && o.Timeout/2 < t {
			t = o.Timeout / 2
		}
		flags = append(flags, "-test.timeout="+t.String())
	}
	for _, p := range pkgs {
		bin := path.Join("/lab/bin", filepath.Base(p.Binary))
		dir := path.Join("/lab/src", p.Rel)
		files = append(files, [2]string{bin, p.Binary})
		if fi, err := os.Stat(filepath.Join(p.Dir, "testdata")); err == nil && fi.IsDir() {
			files = append(files, [2]string{path.Join(dir, "testdata"), filepath.Join(p.Dir, "testdata")})
		}
		cfg.Steps = append(cfg.Steps, guestconf.Step{Name: p.ImportPath, Dir: dir, Args: append([]string{bin}, flags...)})
	}
	common := filepath.Join(tmp, "common.cpio.gz")
	if err := commonArchive(common, initBin, files); err != nil {
		return false, err
	}
	msg := ""
	if fi, err := os.Stat(common); err == nil {
		msg = fmt.Sprintf("; initramfs %.1f MB", float64(fi.Size())/1e6)
	}
	if len(with) > 0 {
		msg += " with " + strings.Join(with, ", ")
	}
	o.logf("built in %v%s", time.Since(start).Round(100*time.Millisecond), msg)

	ok = true
	for _, k := range ks {
		kok, err := testKernel(ctx, o, k, tmp, common, cfg)
		if err != nil {
			return false, err
		}
		ok = ok && kok
	}
	return ok, nil
}

func testKernel(ctx context.Context, o *TestOptions, k Kernel, tmp, common string, cfg guestconf.Config) (bool, error) {
	kpart := filepath.Join(tmp, "kernel.cpio.gz")
	initrd := filepath.Join(tmp, "initrd-"+k.Release)
	nmod, err := kernelArchive(kpart, k, cfg)
	if err != nil {
		return false, err
	}
	if err := concat(initrd, common, kpart); err != nil {
		return false, err
	}
	defer os.Remove(initrd)
	o.logf("booting %s (%d modules)", k.Release, nmod)
	m := &machine{kernel: k, initrd: initrd, timeout: o.Timeout, kvm: o.KVM}
	r, err := m.bootRetrying(ctx, o.stdout(), o.log())
	if err != nil {
		return false, err
	}
	var pass, fail, skip int
	var failed []string
	for _, s := range r.steps {
		pass += s.pass
		fail += s.fail
		skip += s.skip
		if s.code != 0 {
			if s.fail == 0 {
				fail++ // exited non-zero without a FAIL line (build, panic, timeout, crash)
			}
			if s.code == -1 {
				failed = append(failed, s.name+" (did not finish)")
			} else {
				failed = append(failed, fmt.Sprintf("%s (exit status %d)", s.name, s.code))
			}
		}
	}
	if n := len(cfg.Steps) - len(r.steps); n > 0 {
		fail += n
		failed = append(failed, fmt.Sprintf("%d test binaries not run", n))
	}
	r.report(o.log(), k.Release)
	if len(failed) > 0 {
		o.logf("kernel %s: failed: %s", k.Release, strings.Join(failed, ", "))
	}
	o.logf("kernel %s: boot and tests took %v", k.Release, r.duration.Round(100*time.Millisecond))
	fmt.Fprintf(o.stdout(), "kernel %s: %d passed, %d failed, %d skipped\n", k.Release, pass, fail, skip)
	ok := r.problem() == "" && fail == 0 && len(failed) == 0
	if o.Require && skip > 0 {
		o.logf("kernel %s: %d tests skipped (not allowed with -require or CI=true)", k.Release, skip)
		ok = false
	}
	return ok, nil
}
