package ktlsprom_test

import (
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ktls-go/ktls/ktlsprom"
)

// The ktls metrics in a program's own registry, with the Go runtime's and
// the process's, served at /metrics.
func ExampleNewCollector() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(ktlsprom.NewCollector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Fatal(http.ListenAndServe("127.0.0.1:9090", nil))
}
