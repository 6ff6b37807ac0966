// Command ktlslab is the kernel lab: it runs Go tests and programs on
// Debian kernels under qemu, for machines whose kernel has no kernel TLS.
//
// Usage:
//
//	ktlslab kernels [-kernel K] [-update]
//	ktlslab test [-kernel K] [-require] [-timeout D] [-kvm] [-with nginx] [packages] [-- go test flags]
//	ktlslab run [-kernel K] [-with nginx] [-forward [127.0.0.1:]HOSTPORT:GUESTPORT]... [-file HOSTPATH:GUESTPATH]... -- PROGRAM ARGS
//
// See internal/lab/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ktls-go/ktls/internal/lab"
)

const usage = `usage:
  ktlslab kernels [-kernel K] [-update]
  ktlslab test [-kernel K] [-require] [-timeout D] [-kvm] [-with nginx] [packages] [-- go test flags]
  ktlslab run [-kernel K] [-timeout D] [-kvm] [-with nginx] [-forward [127.0.0.1:]HOSTPORT:GUESTPORT]... [-file HOSTPATH:GUESTPATH]... -- PROGRAM [ARGS]

K selects kernels by release prefix (5.10, 6.1, 6.12, 7, all). The cache is
$KTLS_LAB_CACHE, else $XDG_CACHE_HOME/ktls-lab, else ~/.cache/ktls-lab.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var code int
	switch os.Args[1] {
	case "kernels":
		code = kernels(os.Args[2:])
	case "test":
		code = test(ctx, os.Args[2:])
	case "run":
		code = run(ctx, os.Args[2:])
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "ktlslab: unknown command %q\n%s", os.Args[1], usage)
		code = 2
	}
	os.Exit(code)
}

func fail(err error) int {
	fmt.Fprintf(os.Stderr, "ktlslab: %v\n", err)
	return 1
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ktlslab "+name, flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	return fs
}

func kernels(args []string) int {
	fs := newFlags("kernels")
	kernel := fs.String("kernel", "all", "kernel release prefix")
	update := fs.Bool("update", false, "fetch the package lists again and download newer kernels")
	fs.Parse(args)
	if err := lab.CheckTools(); err != nil {
		return fail(err)
	}
	ks, err := lab.Kernels(&lab.Options{}, *update)
	if err != nil {
		return fail(err)
	}
	ks, err = lab.Select(ks, *kernel)
	if err != nil {
		return fail(err)
	}
	for _, k := range ks {
		fmt.Printf("%s\t%s\n", k.Release, k.Vmlinuz)
	}
	return 0
}

func test(ctx context.Context, args []string) int {
	fs := newFlags("test")
	var o lab.TestOptions
	fs.StringVar(&o.Kernel, "kernel", "all", "kernel release prefix")
	fs.BoolVar(&o.Require, "require", os.Getenv("CI") == "true", "fail if any test skips (default with CI=true)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "timeout per kernel boot (each test binary gets -test.timeout of 4m or half of this, unless the go test flags set -timeout)")
	fs.BoolVar(&o.KVM, "kvm", false, "use KVM instead of TCG emulation")
	fs.Var((*listFlag)(&o.With), "with", "put a userland `program` into the guest: nginx (repeatable; automatic for packages using internal/nginxref)")
	pre, post := splitDashes(args)
	o.TestFlags = post
	// Packages and flags may be interleaved before "--".
	for fs.Parse(pre); fs.NArg() > 0; fs.Parse(fs.Args()[1:]) {
		o.Packages = append(o.Packages, fs.Arg(0))
	}
	if err := lab.CheckTools(); err != nil {
		return fail(err)
	}
	ok, err := lab.Test(ctx, &o)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return 1
	}
	return 0
}

// splitDashes splits args at the first "--"; after is nil if there is none.
func splitDashes(args []string) (before, after []string) {
	for i, a := range args {
		if a == "--" {
			return args[:i], append([]string{}, args[i+1:]...)
		}
	}
	return args, nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func run(ctx context.Context, args []string) int {
	fs := newFlags("run")
	var o lab.RunOptions
	var forwards, files listFlag
	fs.StringVar(&o.Kernel, "kernel", "all", "kernel release prefix (the newest match is booted)")
	fs.DurationVar(&o.Timeout, "timeout", 0, "stop the machine after this long (0: never)")
	fs.BoolVar(&o.KVM, "kvm", false, "use KVM instead of TCG emulation")
	fs.Var(&forwards, "forward", "forward `[127.0.0.1:]HOSTPORT:GUESTPORT` (TCP, repeatable)")
	fs.Var(&files, "file", "copy `HOSTPATH:GUESTPATH` into the guest (repeatable)")
	fs.Var((*listFlag)(&o.With), "with", "put a userland `program` into the guest: nginx (repeatable; automatic for programs using internal/nginxref)")
	pre, prog := splitDashes(args)
	fs.Parse(pre)
	if prog == nil {
		prog = fs.Args()
	} else if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected %q before --", fs.Arg(0)))
	}
	if len(prog) == 0 {
		fs.Usage()
		return 2
	}
	o.Program, o.Args = prog[0], prog[1:]
	for _, f := range forwards {
		fw, err := lab.ParseForward(f)
		if err != nil {
			return fail(err)
		}
		o.Forwards = append(o.Forwards, fw)
	}
	for _, f := range files {
		host, guest, ok := strings.Cut(f, ":")
		if !ok || host == "" || !strings.HasPrefix(guest, "/") {
			return fail(fmt.Errorf("-file %q: want HOSTPATH:/GUESTPATH", f))
		}
		o.Files = append(o.Files, [2]string{host, guest})
	}
	if err := lab.CheckTools(); err != nil {
		return fail(err)
	}
	code, err := lab.Run(ctx, &o)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return fail(err)
	}
	return code
}
