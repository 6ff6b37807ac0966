// Command ktls is the command-line face of the ktls project: an HTTPS file
// server whose connections run over kernel TLS (serve) and a check of what
// kernel TLS the machine offers (check), a TLS terminating proxy (proxy),
// counters (stat), a client download (get) and a benchmark (bench).
//
// Usage:
//
//	ktls serve [flags] [DIR]    serve DIR over HTTPS (HTTP/1.1 and HTTP/2)
//	ktls proxy --listen ADDR --to ADDR [flags]
//	                            relay TCP, terminating (or originating) TLS
//	ktls check [--json]         report what kernel TLS this machine offers
//	ktls stat [--url URL]       print the kernel's (or a server's) TLS counters
//	ktls get [flags] URL        download an https URL
//	ktls bench [flags]          measure the data paths on loopback
//	ktls help [COMMAND]         show help
//	ktls version                print the version
//
// See README.md in this directory for the full manual.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// exitUsage is the exit status for a command line that cannot be run.
const exitUsage = 2

const usage = `Usage: ktls COMMAND [flags] [arguments]

ktls serves and tests TLS connections whose records the kernel encrypts and
decrypts (kernel TLS), with a user-space record layer where the kernel cannot.

Commands:
  serve [DIR]   serve the files under DIR over HTTPS (HTTP/1.1 and HTTP/2)
  proxy         relay TCP connections, terminating TLS (or, with
                --upstream-tls, originating it), with splice both ways
  check         report what kernel TLS this machine offers
  stat          print the kernel's TLS counters, or a server's (--url)
  get URL       download an https URL (splice into the file)
  bench         measure the data paths on loopback
  help [CMD]    show this help, or the help of a command
  version       print the version

Run 'ktls help COMMAND' for the flags of a command.
`

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch cmd := args[0]; cmd {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "proxy":
		return runProxy(ctx, args[1:], stdout, stderr)
	case "stat":
		return runStat(ctx, args[1:], stdout, stderr)
	case "get":
		return runGet(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 2 {
			fmt.Fprintf(stderr, "ktls help: unexpected argument %q\n", args[2])
			return exitUsage
		}
		if len(args) > 1 {
			return help(args[1], stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "-version", "--version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "ktls version: unexpected argument %q\n", args[1])
			return exitUsage
		}
		fmt.Fprintln(stdout, version())
		return 0
	default:
		fmt.Fprintf(stderr, "ktls: unknown command %q\nRun 'ktls help' for usage.\n", cmd)
		return exitUsage
	}
}

// help prints the help of the command cmd.
func help(cmd string, stdout, stderr io.Writer) int {
	switch cmd {
	case "serve":
		fs, _ := serveFlags(stdout)
		fs.Usage()
		return 0
	case "check":
		return runCheck(context.Background(), []string{"-h"}, stdout, stderr)
	case "proxy":
		fs, _ := proxyFlags(stdout)
		fs.Usage()
		return 0
	case "stat":
		return runStat(context.Background(), []string{"-h"}, stdout, stderr)
	case "get":
		return runGet(context.Background(), []string{"-h"}, stdout, stderr)
	case "bench":
		fs, _ := benchFlags(stdout)
		fs.Usage()
		return 0
	}
	fmt.Fprintf(stderr, "ktls help: unknown command %q\nRun 'ktls help' for usage.\n", cmd)
	return exitUsage
}

// version returns the module version (and VCS revision when the binary was
// built with it), the Go version and the platform.
func version() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("ktls %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// parseInterleaved parses args with fs, allowing flags after the
// positional arguments as GNU tools do ("ktls serve DIR --addr :8443"); an
// argument "--" ends the flags. It returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// Parse stops at the first non-flag argument, or after "--".
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseArgs parses the arguments of "ktls name" with fs (flags may follow
// the positional arguments, see parseInterleaved) and hands the positional
// ones to check. done reports that the command is not to run, with its
// exit status: after --help, which calls help (status 0), or on bad
// arguments, which are reported on stderr (exitUsage).
func parseArgs(name string, fs *flag.FlagSet, args []string, help func(), stderr io.Writer, check func(pos []string) error) (status int, done bool) {
	fs.Usage = func() {} // flag calls it on every error
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		help()
		return 0, true
	}
	if err == nil {
		err = check(pos)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ktls %s: %v\nRun 'ktls help %s' for usage.\n", name, err, name)
		return exitUsage, true
	}
	return 0, false
}

// noArgs is the check of a command without positional arguments.
func noArgs(pos []string) error {
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	return nil
}

// checkAddr validates addr, the HOST:PORT value of the flag name, as
// net.Listen and net.Dial take it: HOST empty, an IP address or a host name;
// PORT a number from 0 to 65535 or a service name.
func checkAddr(name, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("--%s %q: %v; want HOST:PORT, as 127.0.0.1:8443, [::1]:8443 or :8443", name, addr, err)
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 0 || n > 65535 {
			return fmt.Errorf("--%s %q: port %d out of range (0 to 65535)", name, addr, n)
		}
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("--%s %q: unknown port %q", name, addr, port)
	}
	if ip, _, _ := strings.Cut(host, "%"); net.ParseIP(ip) == nil && !validHostName(host) {
		return fmt.Errorf("--%s %q: bad host %q", name, addr, host)
	}
	return nil
}

// validHostName reports whether s is empty or a syntactically valid DNS
// host name (letters, digits, '-', '_' and dots, labels of 1 to 63 bytes
// that neither start nor end with '-').
func validHostName(s string) bool {
	if s == "" {
		return true
	}
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// schemeMissing returns an error saying what to type when s, a URL given on
// the command line, lacks its "scheme://" (as "127.0.0.1:8443/file"), and
// nil otherwise.
func schemeMissing(s, scheme string) error {
	if strings.Contains(s, "://") {
		return nil
	}
	return fmt.Errorf("%q has no scheme: type %s://%s", s, scheme, strings.TrimPrefix(s, "//"))
}

// printFlags prints the flags of fs in GNU style (--name VALUE).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if name != "" {
			line += " " + strings.ToUpper(name)
		}
		fmt.Fprintf(w, "%s\n      %s", line, text)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
