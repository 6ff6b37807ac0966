package kernel

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseTLSStat parses Linux's /proc/net/tls_stat: one counter per line, a
// name and a decimal value separated by white space.
func parseTLSStat(r io.Reader) (map[string]uint64, error) {
	m := make(map[string]uint64)
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("kernel: tls_stat line %d: want name and value, got %q", line, sc.Text())
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("kernel: tls_stat line %d: %w", line, err)
		}
		m[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel: tls_stat: %w", err)
	}
	return m, nil
}
