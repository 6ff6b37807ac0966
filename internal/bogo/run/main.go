// Command run runs BoringSSL's test runner (BoGo) against the ktls shim and
// sums up its results in one line:
//
//	bogo ENGINE: N passed, M failed, K skipped
//
// ENGINE is "host" for the user-space engine, "kernel RELEASE" for the
// kernel engine (the release from uname(2)), "crypto/tls" with -engine off.
// It exits non-zero when a test failed or the runner did not write its
// results. K counts the tests the shim answered as unimplemented (exit
// status 89); the tests the config disables are not run and not counted.
//
// Then it runs the tests the config disables as "ktls defect" (pending a
// fix) that -test selects, and says which of them pass now, so that their entries can go; that
// second run does not change the exit status. The runner is
// ssl/test/runner's test binary (go test -c); see ../README.md and
// scripts/bogo.sh. It runs on the host and, statically built by ktlslab,
// inside the lab.
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

// pendingPrefix starts the reason of a config entry that disables a test
// for a defect of ours awaiting its fix.
const pendingPrefix = "ktls defect"

// A runner runs the runner's test binary.
type runner struct {
	bin, shim, resources, engine string
	workers                      int
}

func main() {
	var r runner
	flag.StringVar(&r.bin, "runner", "", "the runner's test binary (go test -c in ssl/test/runner)")
	flag.StringVar(&r.shim, "shim", "", "the shim binary (internal/bogo/shim)")
	flag.StringVar(&r.resources, "resources", "", "the runner's certificates and keys")
	config := flag.String("config", "", "the shim config (internal/bogo/config.json)")
	flag.StringVar(&r.engine, "engine", "user", "the shim's engine: user, kernel, off (crypto/tls only), or go (crypto/tls's own shim, for the label)")
	filter := flag.String("test", "", "semicolon-separated patterns of tests to run (the runner's -test)")
	flag.IntVar(&r.workers, "workers", 2, "tests run at once")
	out := flag.String("json", "", "keep the runner's JSON results in this file")
	onlyDisabled := flag.Bool("only-disabled", false, "pass on only the config's DisabledTests (for Go's newer config format)")
	flag.Parse()
	if r.bin == "" || r.shim == "" || r.resources == "" || *config == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: run -runner BIN -shim BIN -resources DIR -config FILE [-engine user|kernel|off|go] [-test PATTERNS]")
		os.Exit(2)
	}
	label := "host"
	switch r.engine {
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
	disabled := readDisabled(*config)
	cfg := *config
	if *onlyDisabled {
		cfg = writeConfig(disabled, filepath.Join(dir, "config.json"))
	}
	results := *out
	if results == "" {
		results = filepath.Join(dir, "results.json")
	}

	tests, err := r.run(cfg, *filter, results, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bogo:", err)
		fmt.Printf("bogo %s: 0 passed, 1 failed, 0 skipped\n", label)
		os.Exit(1)
	}
	var passed, skipped int
	var failed []string
	for name, actual := range tests {
		switch actual {
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

	// The pending defects, once more without their entries.
	var pending []string
	rest := map[string]string{}
	for name, why := range disabled {
		if strings.HasPrefix(why, pendingPrefix) {
			if selected(name, *filter) {
				pending = append(pending, name)
			}
		} else {
			rest[name] = why
		}
	}
	if len(pending) > 0 && r.engine != "go" && r.engine != "off" {
		sort.Strings(pending)
		tests, err := r.run(writeConfig(rest, filepath.Join(dir, "pending.json")), strings.Join(pending, ";"), filepath.Join(dir, "pending-results.json"), false)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bogo: pending defects:", err)
		}
		var fixed []string
		for name, actual := range tests {
			if actual == "PASS" {
				fixed = append(fixed, name)
			}
		}
		sort.Strings(fixed)
		for _, name := range fixed {
			fmt.Printf("bogo %s: pending defect now passes (remove it from config.json): %s\n", label, name)
		}
		fmt.Printf("bogo %s: pending ktls defects: %d run, %d of them pass now\n", label, len(pending), len(fixed))
	}

	fmt.Printf("bogo %s: %d passed, %d failed, %d skipped\n", label, passed, len(failed), skipped)
	if len(failed) > 0 || passed == 0 {
		os.Exit(1)
	}
}

// run runs the runner with the config and filter, and returns each test's
// result (PASS, FAIL or SKIP). With show, it prints each failure's text.
func (r *runner) run(config, filter, results string, show bool) (map[string]string, error) {
	args := []string{
		"-test.run=^TestAll$",
		"-shim-path=" + r.shim,
		"-resource-dir=" + r.resources,
		"-shim-config=" + config,
		"-json-output=" + results,
		"-allow-unimplemented",
		"-loose-errors",
		"-pipe",
		fmt.Sprintf("-num-workers=%d", r.workers),
	}
	if filter != "" {
		args = append(args, "-test="+filter)
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), "KTLS_BOGO_ENGINE="+r.engine)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// With -pipe the runner prints PASSED (name), UNIMPLEMENTED (name) and
	// FAILED (name) followed by the failure's text.
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
			if show {
				fmt.Println(line)
			}
		case inFailure && show:
			fmt.Println("    " + line)
		}
	}
	runErr := cmd.Wait()
	b, err := os.ReadFile(results)
	if err != nil {
		return nil, fmt.Errorf("runner: %v; no results: %v", runErr, err)
	}
	var res struct {
		Tests map[string]struct {
			Actual string `json:"actual"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %v", results, err)
	}
	tests := make(map[string]string, len(res.Tests))
	for name, t := range res.Tests {
		tests[name] = t.Actual
	}
	return tests, nil
}

// selected reports whether the runner's -test filter (semicolon-separated
// glob patterns; empty: all) selects the test.
func selected(name, filter string) bool {
	if filter == "" {
		return true
	}
	for _, p := range strings.Split(filter, ";") {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// readDisabled returns the DisabledTests of a shim config.
func readDisabled(config string) map[string]string {
	b, err := os.ReadFile(config)
	if err != nil {
		fatal(err)
	}
	var c struct{ DisabledTests map[string]string }
	if err := json.Unmarshal(b, &c); err != nil {
		fatal(fmt.Errorf("%s: %v", config, err))
	}
	return c.DisabledTests
}

// writeConfig writes a shim config disabling the given tests to name and
// returns name.
func writeConfig(disabled map[string]string, name string) string {
	b, err := json.Marshal(struct{ DisabledTests map[string]string }{disabled})
	if err != nil {
		fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		fatal(err)
	}
	return name
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bogo:", err)
	os.Exit(1)
}
