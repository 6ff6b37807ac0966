package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
)

const checkUsage = `Usage: ktls check [--json]

Report what kernel TLS this machine offers: whether the TLS upper layer
protocol can be attached (Linux) or ktls(4) is enabled (FreeBSD) and, if so,
which cipher suites the kernel takes for each direction, found by installing
a dummy all-zero key on a loopback TCP connection. Exits with status 0 when
kernel TLS is available and 1 when it is not, with a hint on how to enable
it.

It also lists the TLS offload features of each network interface: on Linux
the ethtool features tls-hw-tx-offload, tls-hw-rx-offload and tls-hw-record
("ethtool -k"), on FreeBSD the capabilities TXTLS4, TXTLS6 and TXTLS_RTLMT
("ifconfig -m"); "none" when an interface has none of them. On FreeBSD the
kern.ipc.tls settings and kern.ipc.mb_use_ext_pgs are shown too.

Flags:
`

// checkSuites are the suites probed: every suite the kernel engine can
// carry, TLS 1.3 first.
var checkSuites = []struct {
	version uint16
	suite   uint16
}{
	{tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256},
	{tls.VersionTLS13, tls.TLS_AES_256_GCM_SHA384},
	{tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256},
	{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
	{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
}

// checkReport is what ktls check found; its JSON form is the --json output.
type checkReport struct {
	System    string        `json:"system"`
	KernelTLS bool          `json:"kernel_tls"`
	Reason    string        `json:"reason,omitempty"`
	ULPs      string        `json:"tcp_available_ulp,omitempty"`
	Suites    []suiteReport `json:"suites,omitempty"`
	// Rekey is the answer to installing TLS 1.3 transmit keys a second
	// time, which kernels with KeyUpdate support (Linux 6.14+) accept.
	Rekey    string `json:"tls13_tx_rekey,omitempty"`
	Counters int    `json:"counters"`
	// Hint says how to enable kernel TLS when it is unavailable.
	Hint string `json:"hint,omitempty"`
	// Sysctls are settings that matter to kernel TLS (FreeBSD).
	Sysctls map[string]string `json:"sysctls,omitempty"`
	NICs    []nicReport       `json:"nic_offload"`
}

// nicReport is the TLS offload of one network interface.
type nicReport struct {
	Interface string `json:"interface,omitempty"`
	// Features are the TLS offload features the interface has.
	Features []nicFeature `json:"features"`
	Error    string       `json:"error,omitempty"`
}

// nicFeature is one TLS offload feature: whether it is on, and whether it
// is fixed (cannot be changed; ethtool's "[fixed]").
type nicFeature struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	Fixed  bool   `json:"fixed,omitempty"`
}

// String returns the feature as ethtool -k prints it ("tls-hw-tx-offload:
// off [fixed]").
func (f nicFeature) String() string {
	s := f.Name + ": off"
	if f.Active {
		s = f.Name + ": on"
	}
	if f.Fixed {
		s += " [fixed]"
	}
	return s
}

// suiteReport is the kernel's answer for one suite and direction: "yes",
// or the error.
type suiteReport struct {
	Version string `json:"version"`
	Cipher  string `json:"cipher"`
	Suite   string `json:"suite"`
	TX      string `json:"tx"`
	RX      string `json:"rx"`
}

// runCheck runs "ktls check args".
func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	help := func() {
		fmt.Fprint(stdout, checkUsage)
		printFlags(stdout, fs)
	}
	if status, done := parseArgs("check", fs, args, help, stderr, noArgs); done {
		return status
	}
	r := check()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		r.print(stdout)
	}
	if !r.KernelTLS {
		return 1
	}
	return 0
}

// check probes the kernel.
func check() *checkReport {
	r := &checkReport{System: system()}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_available_ulp"); err == nil {
		r.ULPs = strings.TrimSpace(string(b))
	}
	if stats, err := kernel.Stats(); err == nil {
		r.Counters = len(stats)
	}
	r.Sysctls = sysctls()
	r.NICs = nicOffload()
	if err := kernel.Supported(); err != nil {
		r.Reason = err.Error()
		r.Hint = enableHint
		return r
	}
	r.KernelTLS = true
	for _, s := range checkSuites {
		c, _ := record.CipherOf(s.suite)
		sr := suiteReport{Version: tls.VersionName(s.version), Cipher: c.String(), Suite: tls.CipherSuiteName(s.suite)}
		p := probeSuite(s.version, s.suite)
		sr.TX, sr.RX = answer(p.tx), answer(p.rx)
		if r.Rekey == "" && p.rekeyed {
			r.Rekey = answer(p.rekey)
		}
		r.Suites = append(r.Suites, sr)
	}
	return r
}

// probe is the kernel's answers for one suite.
type probe struct {
	tx, rx error
	rekey  error
	// rekeyed says whether rekey was tried (TLS 1.3 with TX in the kernel).
	rekeyed bool
}

// probeSuite installs a dummy session of the suite in each direction of a
// loopback connection, and for TLS 1.3 installs the transmit keys again.
func probeSuite(version, suite uint16) probe {
	c, peer, err := loopback()
	if err != nil {
		return probe{tx: err, rx: err}
	}
	defer c.Close()
	defer peer.Close()
	rc, err := c.SyscallConn()
	if err == nil {
		err = kernel.Attach(rc)
	}
	if err != nil {
		return probe{tx: err, rx: err}
	}
	cipher, _ := record.CipherOf(suite)
	ivLen := 4 // TLS 1.2 AES-GCM: the implicit nonce
	if version == tls.VersionTLS13 || cipher == record.CipherChaCha20Poly1305 {
		ivLen = 12
	}
	s := &record.Session{Version: version, CipherSuite: suite, Key: make([]byte, cipher.KeyLen()), IV: make([]byte, ivLen)}
	if err := s.Validate(); err != nil {
		return probe{tx: err, rx: err}
	}
	p := probe{tx: kernel.Enable(rc, kernel.TX, s), rx: kernel.Enable(rc, kernel.RX, s)}
	if p.tx == nil && version == tls.VersionTLS13 {
		p.rekey, p.rekeyed = kernel.Enable(rc, kernel.TX, s), true
	}
	return p
}

// loopback returns both ends of a fresh loopback TCP connection.
func loopback() (c *net.TCPConn, peer net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if ln, err = net.Listen("tcp", "[::1]:0"); err != nil {
			return nil, nil, err
		}
	}
	defer ln.Close()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	peer, err = ln.Accept()
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return d.(*net.TCPConn), peer, nil
}

// answer is "yes" for nil, else the error with its errno name.
func answer(err error) string {
	if err == nil {
		return "yes"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Sprintf("no (%s: %v)", errnoName(errno), err)
	}
	return "no (" + err.Error() + ")"
}

// errnoName names the errnos the kernel answers with.
func errnoName(e syscall.Errno) string {
	for _, n := range []struct {
		errno syscall.Errno
		name  string
	}{
		{syscall.EBUSY, "EBUSY"}, {syscall.EINVAL, "EINVAL"}, {syscall.ENOENT, "ENOENT"},
		{syscall.ENOPROTOOPT, "ENOPROTOOPT"}, {syscall.EOPNOTSUPP, "EOPNOTSUPP"},
		{syscall.EALREADY, "EALREADY"}, {syscall.ENXIO, "ENXIO"}, {syscall.EEXIST, "EEXIST"},
		{syscall.ENOTCONN, "ENOTCONN"},
	} {
		if e == n.errno {
			return n.name
		}
	}
	return fmt.Sprintf("errno %d", int(e))
}

func (r *checkReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "system\t%s\n", r.System)
	if r.KernelTLS {
		fmt.Fprintf(tw, "kernel TLS\tavailable\n")
	} else {
		fmt.Fprintf(tw, "kernel TLS\tunavailable: %s\n", r.Reason)
	}
	if r.ULPs != "" {
		fmt.Fprintf(tw, "TCP ULPs\t%s\n", r.ULPs)
	}
	fmt.Fprintf(tw, "counters\t%d\n", r.Counters)
	if r.Rekey != "" {
		fmt.Fprintf(tw, "TLS 1.3 rekey\t%s\n", r.Rekey)
	}
	if r.Hint != "" {
		fmt.Fprintf(tw, "to enable\t%s\n", r.Hint)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Sysctls)) {
		fmt.Fprintf(tw, "%s\t%s\n", k, r.Sysctls[k])
	}
	label := "NIC offload"
	for _, n := range r.NICs {
		desc := "none"
		if len(n.Features) > 0 {
			var fs []string
			for _, f := range n.Features {
				fs = append(fs, f.String())
			}
			desc = strings.Join(fs, ", ")
		}
		if n.Error != "" {
			desc += " (" + n.Error + ")"
		}
		if n.Interface != "" {
			desc = n.Interface + ": " + desc
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, desc)
		label = ""
	}
	tw.Flush()
	if len(r.Suites) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "version\tcipher\tTX\tRX\n")
	for _, s := range r.Suites {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Version, s.Cipher, s.TX, s.RX)
	}
	tw.Flush()
}
