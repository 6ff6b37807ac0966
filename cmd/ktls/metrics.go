package main

import (
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ktls-go/ktls/ktlsprom"
)

// metricsHandler serves, at /metrics, the ktlsprom collector (ktls.Stats()
// and the kernel's TLS counters) with the Go runtime's and the process's
// collectors, by promhttp (the Prometheus text format, or what the scraper
// asks for), and expvar (with ktls.Stats() under "ktls") at /debug/vars.
func metricsHandler(logger *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(ktlsprom.NewCollector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}))
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
		Handler:           metricsHandler(logger),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelInfo),
	}
	logger.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics", "expvar", "http://"+ln.Addr().String()+"/debug/vars")
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}
