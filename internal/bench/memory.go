package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The memory scenario: MemConns keep-alive HTTP/1.1 connections to the
// file server, each moved through memStates; in each state the server
// reports its memory, and the growth over its memory before the first
// connection, divided by the number of connections, is the memory a
// connection holds.
const (
	memSmallFile = "1k.bin"   // the small GET of the memory scenario
	memLargeFile = "300k.bin" // the large one
	memSmallSize = 1 << 10
	memLargeSize = 300 << 10
	// memDialers is the number of connections the client opens, and
	// moves to the next state, at a time.
	memDialers = 8
)

// memStates are the states of the memory scenario's connections.
var memStates = []string{"idle after handshake", "after a 1 KiB GET", "after a 300 KiB GET"}

// MemState is the memory of the server per connection in one state of
// the memory scenario, in bytes, and its ratio to that of net/http +
// crypto/tls in the same state (the medians over the rounds).
type MemState struct {
	State     string  `json:"state"`
	RSS       float64 `json:"rss_bytes_per_conn"`
	Heap      float64 `json:"heap_bytes_per_conn"`
	RSSRatio  float64 `json:"rss_ratio_vs_crypto_tls"`
	HeapRatio float64 `json:"heap_ratio_vs_crypto_tls"`
}

// memSample is the memory of the server per connection in one state of
// one round.
type memSample struct{ rss, heap float64 }

// memUsage returns the resident set size of this process (-1 if unknown)
// and its Go heap and stacks in use, after two garbage collections (which
// empty the sync.Pools) and a return of the free memory to the system, so
// that only what is reachable counts.
func memUsage() (rss, heap int64) {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return residentSetSize(), int64(ms.HeapAlloc + ms.StackInuse)
}

// measureMemory runs one round of the memory scenario of job j.
func (r *runner) measureMemory(ctx context.Context, j *job) (sample, error) {
	n := r.o.MemConns
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(n)*200*time.Millisecond)
	defer cancel()
	srv := childSpec{Role: roleHTTPServer, Engine: j.engine, Method: j.method, Dir: r.dir}
	server, err := r.start(ctx, srv, nil)
	if err != nil {
		return sample{}, err
	}
	defer server.kill()
	line, err := server.line()
	addr, ok := strings.CutPrefix(line, "ready ")
	if err != nil || !ok {
		return sample{}, fmt.Errorf("server child: unexpected %q, %v", line, err)
	}
	mem := func() (rss, heap int64, err error) {
		if _, err := io.WriteString(server.stdin, "mem\n"); err != nil {
			return 0, 0, err
		}
		line, err := server.line()
		if err != nil {
			return 0, 0, err
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "mem" {
			return 0, 0, fmt.Errorf("server child: unexpected %q", line)
		}
		rss, _ = strconv.ParseInt(f[1], 10, 64)
		heap, _ = strconv.ParseInt(f[2], 10, 64)
		return rss, heap, nil
	}
	rss0, heap0, err := mem()
	if err != nil {
		return sample{}, err
	}
	client, err := r.start(ctx, childSpec{Role: roleMemClient, Addr: addr, Concurrency: n}, nil)
	if err != nil {
		return sample{}, err
	}
	defer client.kill()
	var s sample
	for _, state := range memStates {
		if line, err := client.line(); err != nil {
			return sample{}, err
		} else if line != "state "+state {
			return sample{}, fmt.Errorf("client child: unexpected %q", line)
		}
		rss, heap, err := mem()
		if err != nil {
			return sample{}, err
		}
		ms := memSample{rss: -1, heap: float64(heap-heap0) / float64(n)}
		if rss >= 0 && rss0 >= 0 {
			ms.rss = float64(rss-rss0) / float64(n)
		}
		s.mem = append(s.mem, ms)
		if _, err := io.WriteString(client.stdin, "next\n"); err != nil {
			return sample{}, err
		}
	}
	if _, err := client.result(); err != nil {
		return sample{}, err
	}
	server.stdin.Close()
	sres, err := server.result()
	if err != nil {
		return sample{}, err
	}
	if sres.TX != "" {
		s.mode = "tx=" + sres.TX + " rx=" + sres.RX
	}
	return s, nil
}

// summarizeMemory fills in r.Memory from the rounds: per state, the
// medians of the values and of the per-round ratios to the baseline.
func (j *job) summarizeMemory() {
	med := func(v []float64) float64 {
		slices.Sort(v)
		return v[len(v)/2]
	}
	j.res.Memory = nil
	for i, state := range memStates {
		var rss, heap, rssRatio, heapRatio []float64
		for k, s := range j.rounds {
			m := s.mem[i]
			rss, heap = append(rss, m.rss), append(heap, m.heap)
			b := m
			if j.baseline != nil {
				b = j.baseline.rounds[k].mem[i]
			}
			rr, hr := -1.0, -1.0 // unknown
			if m.rss >= 0 && b.rss > 0 {
				rr = m.rss / b.rss
			}
			if b.heap > 0 {
				hr = m.heap / b.heap
			}
			rssRatio, heapRatio = append(rssRatio, rr), append(heapRatio, hr)
		}
		j.res.Memory = append(j.res.Memory, MemState{State: state, RSS: med(rss), Heap: med(heap),
			RSSRatio: med(rssRatio), HeapRatio: med(heapRatio)})
	}
}

// memClient opens Concurrency HTTP/1.1 connections over crypto/tls and
// moves them through memStates: after the handshake; after a GET of the
// 1 KiB file on each; after a GET of the 300 KiB file on each. In each
// state it says "state NAME" and waits for a line on stdin, with the
// connections open and idle.
func (s *childSpec) memClient(stdin io.Reader, stdout io.Writer) (*childResult, error) {
	cfg, _ := s.tlsConfig(false)
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	type conn struct {
		c *tls.Conn
		r *bufio.Reader
	}
	conns := make([]conn, s.Concurrency)
	defer func() {
		for _, c := range conns {
			if c.c != nil {
				c.c.Close()
			}
		}
	}()
	// each runs f on every connection, memDialers at a time.
	each := func(f func(c *conn) error) error {
		var (
			wg   sync.WaitGroup
			next = make(chan int)
			errc = make(chan error, memDialers)
		)
		for range memDialers {
			wg.Go(func() {
				for i := range next {
					if err := f(&conns[i]); err != nil {
						errc <- err
						return
					}
				}
			})
		}
	feed:
		for i := range conns {
			select {
			case next <- i:
			case err := <-errc:
				errc <- err
				break feed
			}
		}
		close(next)
		wg.Wait()
		select {
		case err := <-errc:
			return err
		default:
			return nil
		}
	}
	get := func(c *conn, path string, size int64) error {
		if _, err := fmt.Fprintf(c.c, "GET /%s HTTP/1.1\r\nHost: bench\r\n\r\n", path); err != nil {
			return err
		}
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || n != size) {
			err = fmt.Errorf("GET /%s: %s, %d bytes", path, resp.Status, n)
		}
		return err
	}
	steps := []func(c *conn) error{
		func(c *conn) error {
			tc, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", s.Addr, cfg)
			if err != nil {
				return err
			}
			c.c, c.r = tc, bufio.NewReader(tc)
			return nil
		},
		func(c *conn) error { return get(c, memSmallFile, memSmallSize) },
		func(c *conn) error { return get(c, memLargeFile, memLargeSize) },
	}
	in := bufio.NewReader(stdin)
	for i, step := range steps {
		if err := each(step); err != nil {
			return nil, fmt.Errorf("%s: %w", memStates[i], err)
		}
		fmt.Fprintf(stdout, "state %s\n", memStates[i])
		if _, err := readLine(in); err != nil {
			return nil, errors.New("stdin ended")
		}
	}
	return &childResult{Ops: int64(len(conns))}, nil
}
