package main

import (
	"bufio"
	"expvar"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/kernel"
)

// metricsHandler serves ktls.Stats() and the kernel's TLS counters in the
// Prometheus text format at /metrics, and expvar (with ktls.Stats() under
// "ktls") at /debug/vars.
func metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		bw := bufio.NewWriter(w)
		ktls.Stats().WritePrometheus(bw)
		if m, err := kernel.Stats(); err == nil {
			fmt.Fprintf(bw, "# HELP ktls_kernel The kernel's TLS counters (/proc/net/tls_stat, kern.ipc.tls.*).\n# TYPE ktls_kernel untyped\n")
			for _, k := range slices.Sorted(maps.Keys(m)) {
				fmt.Fprintf(bw, "ktls_kernel{counter=%s} %d\n", strconv.Quote(k), m[k])
			}
		}
		bw.Flush()
	})
	mux.Handle("GET /debug/vars", expvar.Handler())
	return mux
}

// serveMetrics serves metricsHandler on addr until the returned function
// is called.
func serveMetrics(addr string, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	srv := &http.Server{
		Handler:           metricsHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelInfo),
	}
	logger.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics", "expvar", "http://"+ln.Addr().String()+"/debug/vars")
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}
