// Command run runs BoringSSL's test runner (BoGo) against the ktls shim and
// sums up its results in one line:
//
//	bogo ENGINE: N passed, M failed, K skipped
//
// ENGINE is "host" for the user-space engine, "kernel RELEASE" for the
// kernel engine (the release from uname(2)), "crypto/tls" with -engine off. It exits non-zero when a test
// failed or the runner did not write its results. K counts the tests the
// shim answered as unimplemented (exit status 89); the tests the config
// disables are not run and not counted. The runner is ssl/test/runner's test
// binary (go test -c); see ../README.md and scripts/bogo.sh.
//
// It runs on the host and, statically built by ktlslab, inside the lab.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	runner := flag.String("runner", "", "the runner's test binary (go test -c in ssl/test/runner)")
	shim := flag.String("shim", "", "the shim binary (internal/bogo/shim)")
	resources := flag.String("resources", "", "the runner's directory (its certificates and keys)")
	config := flag.String("config", "", "the shim config (internal/bogo/config.json)")
	engine := flag.String("engine", "user", "the shim's engine: user, kernel, off (crypto/tls only), or go (crypto/tls's own shim, for the label)")
	filter := flag.String("test", "", "semicolon-separated patterns of tests to run (the runner's -test)")
	workers := flag.Int("workers", 2, "tests run at once")
	out := flag.String("json", "", "keep the runner's JSON results in this file")
	onlyDisabled := flag.Bool("only-disabled", false, "pass on only the config's DisabledTests (for Go's newer config format)")
	flag.Parse()
	if *runner == "" || *shim == "" || *resources == "" || *config == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: run -runner BIN -shim BIN -resources DIR -config FILE [-engine user|kernel|off] [-test PATTERNS]")
		os.Exit(2)
	}
	label := "host"
	switch *engine {
	case "off":
		label = "crypto/tls"
	case "go":
		label = "crypto/tls-shim"
	case "kernel":
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			fatal(err)
		}
		label = "kernel " + unix.ByteSliceToString(u.Release[:])
	}

	dir, err := os.MkdirTemp("", "bogo")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	results := *out
	if results == "" {
		results = filepath.Join(dir, "results.json")
	}
	if *onlyDisabled {
		*config = disabledOnly(*config, dir)
	}
	args := []string{
		"-test.run=^TestAll$",
		"-shim-path=" + *shim,
		"-resource-dir=" + *resources,
		"-shim-config=" + *config,
		"-json-output=" + results,
		"-allow-unimplemented",
		"-loose-errors",
		"-pipe",
		fmt.Sprintf("-num-workers=%d", *workers),
	}
	if *filter != "" {
		args = append(args, "-test="+*filter)
	}
	cmd := exec.Command(*runner, args...)
	cmd.Env = append(os.Environ(), "KTLS_BOGO_ENGINE="+*engine)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fatal(err)
	}
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	// With -pipe the runner prints PASSED (name), UNIMPLEMENTED (name) and
	// FAILED (name) followed by the failure's text; show the failures.
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	inFailure := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "PASSED ("), strings.HasPrefix(line, "UNIMPLEMENTED ("):
			inFailure = false
		case strings.HasPrefix(line, "FAILED ("):
			inFailure = true
			fmt.Println(line)
		case inFailure:
			fmt.Println("    " + line)
		}
	}
	runErr := cmd.Wait()

	b, err := os.ReadFile(results)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner: %v; no results: %v\n", runErr, err)
		fmt.Printf("bogo %s: 0 passed, 1 failed, 0 skipped\n", label)
		os.Exit(1)
	}
	var r struct {
		Tests map[string]struct {
			Actual string `json:"actual"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		fatal(fmt.Errorf("%s: %v", results, err))
	}
	var passed, skipped int
	var failed []string
	for name, t := range r.Tests {
		switch t.Actual {
		case "PASS":
			passed++
		case "SKIP":
			skipped++
		default:
			failed = append(failed, name)
		}
	}
	sort.Strings(failed)
	for _, name := range failed {
		fmt.Printf("bogo %s: FAIL %s\n", label, name)
	}
	fmt.Printf("bogo %s: %d passed, %d failed, %d skipped\n", label, passed, len(failed), skipped)
	if len(failed) > 0 || passed == 0 {
		os.Exit(1)
	}
}

// disabledOnly writes the DisabledTests of config to a file in dir and
// returns its name.
func disabledOnly(config, dir string) string {
	b, err := os.ReadFile(config)
	if err != nil {
		fatal(err)
	}
	var c struct{ DisabledTests map[string]string }
	if err := json.Unmarshal(b, &c); err != nil {
		fatal(fmt.Errorf("%s: %v", config, err))
	}
	if b, err = json.Marshal(c); err != nil {
		fatal(err)
	}
	name := filepath.Join(dir, "config.json")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		fatal(err)
	}
	return name
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bogo:", err)
	os.Exit(1)
}
