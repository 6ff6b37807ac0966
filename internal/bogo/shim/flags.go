package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// exitUnimplemented is the exit status that tells the runner the shim does
// not implement a flag of the test (the test is then counted as skipped with
// -allow-unimplemented).
const exitUnimplemented = 89

// The flags the runner passes. A flag not defined here makes the shim exit
// with exitUnimplemented, like an unknown flag in BoringSSL's bssl_shim.
var (
	flags = flag.NewFlagSet("shim", flag.ContinueOnError)

	port   = flags.String("port", "", "runner's TCP port")
	server = flags.Bool("server", false, "act as the server")

	keyFile      = flags.String("key-file", "", "")
	certFile     = flags.String("cert-file", "", "")
	ocspResponse = base64Flag("ocsp-response")
	signingPrefs = intsFlag("signing-prefs")
	trustCert    = flags.String("trust-cert", "", "")

	minVersion    = flags.Int("min-version", 0, "")
	maxVersion    = flags.Int("max-version", 0, "")
	expectVersion = flags.Int("expect-version", 0, "")
	noTLS1        = flags.Bool("no-tls1", false, "")
	noTLS11       = flags.Bool("no-tls11", false, "")
	noTLS12       = flags.Bool("no-tls12", false, "")
	noTLS13       = flags.Bool("no-tls13", false, "")

	requireAnyClientCert = flags.Bool("require-any-client-certificate", false, "")
	verifyPeer           = flags.Bool("verify-peer", false, "")
	resumeCount          = flags.Int("resume-count", 0, "")
	expectSessionMiss    = flags.Bool("expect-session-miss", false, "")
	curves               = intsFlag("curves")
	expectCurve          = flags.Int("expect-curve-id", 0, "")
	expectPeerVerifyPref = intsFlag("expect-peer-verify-pref")
	hostName             = flags.String("host-name", "", "")
	expectServerName     = flags.String("expect-server-name", "", "")
	expectHRR            = flags.Bool("expect-hrr", false, "")
	expectNoHRR          = flags.Bool("expect-no-hrr", false, "")

	advertiseALPN        = flags.String("advertise-alpn", "", "")
	expectALPN           = flags.String("expect-alpn", "", "")
	rejectALPN           = flags.Bool("reject-alpn", false, "")
	declineALPN          = flags.Bool("decline-alpn", false, "")
	selectALPN           = flags.String("select-alpn", "", "")
	expectAdvertisedALPN = flags.String("expect-advertised-alpn", "", "")

	echConfigList           = base64Flag("ech-config-list")
	expectECHAccept         = flags.Bool("expect-ech-accept", false, "")
	onInitialExpectECH      = flags.Bool("on-initial-expect-ech-accept", false, "")
	onResumeECHConfigList   = base64Flag("on-resume-ech-config-list")
	onResumeExpectECH       = flags.Bool("on-resume-expect-ech-accept", false, "")
	expectECHRetryConfigs   = base64Flag("expect-ech-retry-configs")
	expectNoECHRetryConfigs = flags.Bool("expect-no-ech-retry-configs", false, "")
	echServerConfig         = stringsFlag("ech-server-config")
	echServerKey            = stringsFlag("ech-server-key")
	echIsRetryConfig        = stringsFlag("ech-is-retry-config")

	// Record-layer flags: what happens after the hand-off, on our engine.
	shimWritesFirst  = flags.Bool("shim-writes-first", false, "write \"hello\" first")
	shimShutsDown    = flags.Bool("shim-shuts-down", false, "send close_notify instead of echoing")
	checkCloseNotify = flags.Bool("check-close-notify", false, "require the peer's close_notify and send ours")
	keyUpdate        = flags.Bool("key-update", false, "send a KeyUpdate before each echo")
	sendAlert        = flags.Bool("send-alert", false, "send a fatal decompression_failure alert")
	readSize         = flags.Int("read-size", 512, "bytes per Read")
	writeDiffSizes   = flags.Bool("write-different-record-sizes", false, "")
	exportKM         = flags.Int("export-keying-material", 0, "")
	exportLabel      = flags.String("export-label", "", "")
	exportContext    = flags.String("export-context", "", "")
	useExportContext = flags.Bool("use-export-context", false, "")
	tlsUnique        = flags.Bool("tls-unique", false, "")
	noOpExtraHS      = flags.Bool("no-op-extra-handshake", false, "")
	implicitHS       = flags.Bool("implicit-handshake", false, "let the first Read or Write run the handshake")
	forbidReneg      = flags.Bool("forbid-renegotiation-after-handshake", false, "renegotiation is always refused")
	expectRenegs     = flags.Int("expect-total-renegotiations", 0, "")

	handshakerSupported = flags.Bool("is-handshaker-supported", false, "")

	// Accepted and ignored, as Go's own shim does.
	_ = flags.Bool("enable-early-data", false, "")
	_ = flags.Bool("on-resume-expect-accept-early-data", false, "")
	_ = flags.Bool("on-resume-expect-reject-early-data", false, "")
	_ = flags.Bool("expect-ticket-supports-early-data", false, "")
	_ = flags.Bool("on-resume-shim-writes-first", false, "")
	_ = flags.Bool("use-custom-verify-callback", false, "")
	_ = flags.Bool("reverify-on-resume", false, "")
	_ = flags.Bool("expect-no-ech-name-override", false, "")
	_ = flags.String("expect-ech-name-override", "", "")
	_ = flags.Bool("on-resume-expect-no-ech-name-override", false, "")
	_ = flags.Bool("ipv6", false, "")
	_ = flags.Uint64("shim-id", 0, "")
)

// parseFlags parses the command line, exiting with exitUnimplemented on a
// flag the shim does not know (or a value it cannot take).
func parseFlags(args []string) {
	flags.SetOutput(os.Stderr)
	flags.Usage = func() {}
	if err := flags.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "unimplemented: %v\n", err)
		os.Exit(exitUnimplemented)
	}
	if *expectRenegs != 0 {
		fmt.Fprintln(os.Stderr, "unimplemented: renegotiation")
		os.Exit(exitUnimplemented)
	}
	_ = *forbidReneg // what ktls always does
}

type ints []int

func intsFlag(name string) *ints {
	v := new(ints)
	flags.Var(v, name, "")
	return v
}

func (v *ints) String() string { return fmt.Sprint([]int(*v)) }

func (v *ints) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	*v = append(*v, n)
	return nil
}

type stringList []string

func stringsFlag(name string) *stringList {
	v := new(stringList)
	flags.Var(v, name, "")
	return v
}

func (v *stringList) String() string     { return strings.Join(*v, ",") }
func (v *stringList) Set(s string) error { *v = append(*v, s); return nil }

type b64 []byte

func base64Flag(name string) *b64 {
	v := new(b64)
	flags.Var(v, name, "")
	return v
}

func (v *b64) String() string { return base64.StdEncoding.EncodeToString(*v) }

func (v *b64) Set(s string) error {
	b, err := base64.StdEncoding.DecodeString(s)
	*v = b
	return err
}
