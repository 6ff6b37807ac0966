// Package ktlsprom exports the counters of package ktls (ktls.Stats) and the
// kernel's own TLS counters (Linux's /proc/net/tls_stat, FreeBSD's
// kern.ipc.tls.stats) as Prometheus metrics, with
// github.com/prometheus/client_golang. It is a package of its own so that
// package ktls does not depend on the Prometheus libraries.
//
// Register a Collector in the program's registry:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(ktlsprom.NewCollector())
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every metric's name starts with "ktls_". The values are read on each
// scrape; the Collector holds no state of its own.
package ktlsprom

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/kernel"
)

// Collector is a prometheus.Collector for ktls.Stats() and the kernel's TLS
// counters. The zero value is not usable: call NewCollector.
type Collector struct {
	enabled, cbcEnabled                 *prometheus.Desc
	handshakes, handshakeErrors         *prometheus.Desc
	connections, connectionsTotal       *prometheus.Desc
	records, bytes                      *prometheus.Desc
	fallbacks, badRecords               *prometheus.Desc
	rekeys, rekeyErrors, controlRecords *prometheus.Desc
	keyLimitExceeded, eofNoCloseNotify  *prometheus.Desc
	kernelOptionsRefused                *prometheus.Desc
	kernel                              *prometheus.Desc
	kernelStats                         func() (map[string]uint64, error)
}

// NewCollector returns a Collector. Its metrics:
//
//	ktls_enabled, ktls_cbc_enabled              gauges, 0 or 1: ktls.KernelEnabled, ktls.CBCEnabled
//	ktls_handshakes_total                       handshakes handed off
//	ktls_handshake_errors_total                 handshakes or hand-offs that failed
//	ktls_connections{direction,mode}            open connections by each direction's ktls.Mode
//	ktls_connections_total{direction,mode}      connections handed off, by mode
//	ktls_records_total{direction}               records moved after the hand-off
//	ktls_bytes_total{direction}                 plaintext bytes moved after the hand-off
//	ktls_fallbacks_total{reason}                directions not offloaded as asked, by ktls.Fallbacks field
//	ktls_bad_records_total{class}               received records refused, by ktls.BadRecords field
//	ktls_rekeys_total{direction}                TLS 1.3 key updates
//	ktls_rekey_errors_total                     KeyUpdates that could not be followed
//	ktls_key_limit_exceeded_total               connections whose AES-GCM sending key passed 2^24 records
//	ktls_eof_without_close_notify_total         peers that ended the stream between records without close_notify
//	ktls_kernel_options_refused_total           kernel options asked for by ktls.Config that the kernel refused
//	ktls_control_records_total{kind}            non-data records received, by ktls.ControlRecords field
//	ktls_kernel{counter}                        the kernel's counters by name (TlsTxSw, TlsDecryptError...), untyped
//
// direction is "tx" or "rx"; mode is a ktls.Mode's String ("none", "user",
// "kernel-sw", "kernel-ifnet", "kernel-toe"). ktls_kernel is absent where
// the kernel has no TLS counters.
func NewCollector() *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("ktls_"+name, help, labels, nil)
	}
	return &Collector{
		enabled:              d("enabled", "Whether new connections may use kernel TLS (kern.ipc.tls.enable)."),
		cbcEnabled:           d("cbc_enabled", "Whether CBC cipher suites may be offloaded (kern.ipc.tls.cbc_enable)."),
		handshakes:           d("handshakes_total", "Handshakes handed off."),
		handshakeErrors:      d("handshake_errors_total", "Handshakes or hand-offs that failed."),
		connections:          d("connections", "Open connections by mode of each direction.", "direction", "mode"),
		connectionsTotal:     d("connections_total", "Connections handed off by mode of each direction.", "direction", "mode"),
		records:              d("records_total", "Records moved after the hand-off.", "direction"),
		bytes:                d("bytes_total", "Plaintext bytes moved after the hand-off.", "direction"),
		fallbacks:            d("fallbacks_total", "Directions not offloaded as their policy asked, by reason.", "reason"),
		badRecords:           d("bad_records_total", "Received records refused, by class.", "class"),
		rekeys:               d("rekeys_total", "TLS 1.3 key updates by direction.", "direction"),
		rekeyErrors:          d("rekey_errors_total", "KeyUpdates that could not be followed."),
		keyLimitExceeded:     d("key_limit_exceeded_total", "Connections whose AES-GCM sending key passed 2^24 records without a KeyUpdate (TLS 1.2, or a kernel that cannot re-key)."),
		eofNoCloseNotify:     d("eof_without_close_notify_total", "Connections whose peer ended the stream between records without close_notify."),
		kernelOptionsRefused: d("kernel_options_refused_total", "Kernel options asked for (Config.ZerocopySendfile, Config.ExpectNoPad) that the kernel refused."),
		controlRecords:       d("control_records_total", "Non-data records received after the hand-off, by kind.", "kind"),
		kernel:               d("kernel", "The kernel's TLS counters (/proc/net/tls_stat, kern.ipc.tls.stats).", "counter"),
		kernelStats:          kernel.Stats,
	}
}

// Describe sends the descriptors of the Collector's metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.enabled, c.cbcEnabled, c.handshakes, c.handshakeErrors, c.connections, c.connectionsTotal,
		c.records, c.bytes, c.fallbacks, c.badRecords, c.rekeys, c.rekeyErrors, c.keyLimitExceeded, c.eofNoCloseNotify, c.kernelOptionsRefused, c.controlRecords, c.kernel,
	} {
		ch <- d
	}
}

// Collect reads ktls.Stats() and the kernel's counters and sends them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := ktls.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge(c.enabled, b2f(s.KernelEnabled))
	gauge(c.cbcEnabled, b2f(s.CBCEnabled))
	counter(c.handshakes, s.Handshakes)
	counter(c.handshakeErrors, s.HandshakeErrors)
	modes := func(m ktls.ModeCounts, f func(mode ktls.Mode, v uint64)) {
		f(ktls.ModeNone, m.None)
		f(ktls.ModeUser, m.User)
		f(ktls.ModeKernel, m.Kernel)
		f(ktls.ModeKernelDevice, m.KernelDevice)
		f(ktls.ModeKernelTOE, m.KernelTOE)
	}
	for _, e := range []struct {
		dir            string
		current, total ktls.ModeCounts
	}{{"tx", s.CurrentTX, s.TotalTX}, {"rx", s.CurrentRX, s.TotalRX}} {
		modes(e.current, func(m ktls.Mode, v uint64) { gauge(c.connections, float64(v), e.dir, m.String()) })
		modes(e.total, func(m ktls.Mode, v uint64) { counter(c.connectionsTotal, v, e.dir, m.String()) })
	}
	counter(c.records, s.RecordsTX, "tx")
	counter(c.records, s.RecordsRX, "rx")
	counter(c.bytes, s.BytesTX, "tx")
	counter(c.bytes, s.BytesRX, "rx")
	f := s.Fallbacks
	for reason, v := range map[string]uint64{
		"off": f.Off, "disabled": f.Disabled, "cipher": f.Cipher, "cbc": f.CBC,
		"secrets": f.Secrets, "unsupported": f.Unsupported, "rekey": f.Rekey,
	} {
		counter(c.fallbacks, v, reason)
	}
	b := s.BadRecords
	for class, v := range map[string]uint64{
		"bad_mac": b.MAC, "overflow": b.Overflow, "invalid": b.Invalid, "truncated": b.Truncated,
	} {
		counter(c.badRecords, v, class)
	}
	counter(c.rekeys, s.RekeysTX, "tx")
	counter(c.rekeys, s.RekeysRX, "rx")
	counter(c.rekeyErrors, s.RekeyErrors)
	counter(c.keyLimitExceeded, s.KeyLimitExceeded)
	counter(c.eofNoCloseNotify, s.EOFWithoutCloseNotify)
	counter(c.kernelOptionsRefused, s.KernelOptionsRefused)
	cr := s.Control
	for kind, v := range map[string]uint64{
		"close_notify": cr.CloseNotify, "alert": cr.Alerts, "ticket_stored": cr.TicketsStored,
		"ticket_dropped": cr.TicketsDropped, "key_update": cr.KeyUpdates, "unexpected": cr.Unexpected,
		"too_many_ignored": cr.TooManyIgnored,
	} {
		counter(c.controlRecords, v, kind)
	}
	if m, err := c.kernelStats(); err == nil {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ch <- prometheus.MustNewConstMetric(c.kernel, prometheus.UntypedValue, float64(m[k]), k)
		}
	}
}
