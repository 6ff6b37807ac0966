package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ktls-go/ktls/internal/kernel"
)

const statUsage = `Usage: ktls stat [--url URL]

Print the kernel's TLS counters, one "name: value" line each as sysctl(8)
prints them: Linux's /proc/net/tls_stat (TlsCurrTxSw, TlsTxSw,
TlsDecryptError...), FreeBSD's kern.ipc.tls.* sysctls.

With --url, print instead the counters of a running ktls serve from its
--metrics endpoint (URL http://HOST:PORT, or the full URL of the Prometheus
text; /metrics is added to a URL without a path): the ktls_ metrics, not
the Go runtime's and the process's. Metric names lose their "ktls_" prefix and each label value becomes a further dotted component:
ktls_connections{direction="tx",mode="kernel-sw"} 3 is printed as
connections.tx.kernel-sw: 3.

Flags:
`

// runStat runs "ktls stat args".
func runStat(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stat", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rawURL := fs.String("url", "", "read the counters of the ktls serve whose --metrics endpoint is `URL`")
	help := func() {
		fmt.Fprint(stdout, statUsage)
		printFlags(stdout, fs)
	}
	var u *url.URL
	status, done := parseArgs("stat", fs, args, help, stderr, func(pos []string) (err error) {
		if err = noArgs(pos); err == nil && *rawURL != "" {
			u, err = metricsURL(*rawURL)
		}
		return err
	})
	if done {
		return status
	}
	var (
		lines []string
		err   error
	)
	if u != nil {
		lines, err = remoteStats(ctx, u)
	} else {
		lines, err = kernelStats()
	}
	if err != nil {
		fmt.Fprintf(stderr, "ktls stat: %v\n", err)
		return 1
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	return 0
}

// kernelStats returns the kernel's counters as "name: value" lines, sorted
// by name.
func kernelStats() ([]string, error) {
	m, err := kernel.Stats()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w\n(the counters appear once the tls module is loaded: modprobe tls, or a kernel with CONFIG_TLS)", err)
	}
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		lines = append(lines, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return lines, nil
}

// metricsURL checks an http(s) URL and adds /metrics to one without a path.
func metricsURL(s string) (*url.URL, error) {
	if err := schemeMissing(s, "http"); err != nil {
		return nil, fmt.Errorf("--url %w", err)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http://HOST:PORT[/PATH]", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	return u, nil
}

// remoteStats reads Prometheus text from u and returns its samples as
// "name: value" lines, in the order the server wrote them.
func remoteStats(ctx context.Context, u *url.URL) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "ktls_") {
			continue // comments, go_*, process_*
		}
		name, value, err := promSample(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		lines = append(lines, name+": "+value)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no metrics", u)
	}
	return lines, nil
}

// promSample parses one sample line of the Prometheus text format,
// `name{label="value",...} value [timestamp]`, into a dotted name (without
// the prefix "ktls_", label values as components) and the value.
func promSample(line string) (name, value string, err error) {
	bad := fmt.Errorf("bad metrics line %q", line)
	head, rest := line, ""
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return "", "", bad
		}
		head, rest = line[:i], line[j+1:]
		parts := []string{strings.TrimPrefix(head, "ktls_")}
		for _, l := range splitLabels(line[i+1 : j]) {
			_, v, ok := strings.Cut(l, "=")
			if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
				return "", "", bad
			}
			parts = append(parts, strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\n`, " ").Replace(v[1:len(v)-1]))
		}
		name = strings.Join(parts, ".")
	} else {
		var ok bool
		head, rest, ok = strings.Cut(line, " ")
		if !ok {
			return "", "", bad
		}
		name = strings.TrimPrefix(head, "ktls_")
	}
	fields := strings.Fields(rest)
	if name == "" || len(fields) == 0 || len(fields) > 2 {
		return "", "", bad
	}
	return name, fields[0], nil
}

// splitLabels splits `a="x",b="y,z"` at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case escaped:
			escaped = false
		case s[i] == '\\':
			escaped = true
		case s[i] == '"':
			quoted = !quoted
		case s[i] == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		out = append(out, s[start:])
	}
	return out
}
