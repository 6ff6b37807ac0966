// Command shim is a BoringSSL test runner ("BoGo") shim over ktls.Conn.
//
// The runner starts it once per test with the test's flags; the shim dials
// the runner's port, runs the handshake with ktls.Server or ktls.Client
// (crypto/tls underneath), checks what the flags expect of the handshake,
// and then does the test's record-layer part on ktls's own engine: echoing
// application data XORed with 0xff, KeyUpdate (-key-update), a fatal alert
// (-send-alert), close_notify in both directions (-check-close-notify,
// -shim-shuts-down), keying material export and tls-unique. A flag it does
// not implement makes it exit with status 89, which the runner counts as
// unimplemented.
//
// The environment chooses the engine (see ../README.md):
//
//	KTLS_BOGO_ENGINE=user     user-space record layer (default; needs no kernel TLS)
//	KTLS_BOGO_ENGINE=kernel   the kernel where it can carry the suite (OffloadAuto)
//	KTLS_BOGO_ENGINE=off      crypto/tls carries everything (OffloadOff): tells
//	                          crypto/tls's own behaviour from our record layer's
//	KTLS_BOGO_CORRUPT=1       flip a bit in every record sent after the handshake
//	                          (user engine), to see the suite turn red
//
// After the handshake the shim checks that the engine carries both
// directions whenever it can, so a run cannot silently fall back to
// crypto/tls.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

func main() {
	parseFlags(os.Args[1:])
	if *handshakerSupported {
		fmt.Println("No")
		return
	}
	engine := os.Getenv("KTLS_BOGO_ENGINE")
	switch engine {
	case "":
		engine = "user"
	case "user", "kernel", "off":
	default:
		fatalf("KTLS_BOGO_ENGINE=%q: want user, kernel or off", engine)
	}
	cfg, err := tlsConfig()
	if err != nil {
		fatalf("%v", err)
	}
	// One ktls.Config for all connections: its server side keeps the
	// session ticket keys, so the resumptions can resume.
	kcfg := &ktls.Config{TLS: cfg, TX: ktls.OffloadUser, RX: ktls.OffloadUser}
	switch engine {
	case "kernel":
		kcfg.TX, kcfg.RX = ktls.OffloadAuto, ktls.OffloadAuto
	case "off":
		kcfg.TX, kcfg.RX = ktls.OffloadOff, ktls.OffloadOff
	}
	for i := 0; i <= *resumeCount; i++ {
		if i > 0 && *onResumeECHConfigList != nil {
			cfg.EncryptedClientHelloConfigList = *onResumeECHConfigList
		}
		if err := connect(i, kcfg, engine); err != nil {
			fatalf("%v", err)
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// tlsConfig builds the crypto/tls configuration from the flags, as Go's
// own shim (crypto/tls/bogo_shim_test.go) does.
func tlsConfig() (*tls.Config, error) {
	var suites []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		suites = append(suites, s.ID)
	}
	cfg := &tls.Config{
		ServerName:         "test",
		MinVersion:         tls.VersionTLS10,
		MaxVersion:         tls.VersionTLS13,
		CipherSuites:       suites,
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
	}
	if *minVersion != 0 {
		cfg.MinVersion = uint16(*minVersion)
	}
	if *maxVersion != 0 {
		cfg.MaxVersion = uint16(*maxVersion)
	}
	// The -no-tls* flags cut the enabled range from below or from above.
	off := map[uint16]bool{tls.VersionTLS10: *noTLS1, tls.VersionTLS11: *noTLS11, tls.VersionTLS12: *noTLS12, tls.VersionTLS13: *noTLS13}
	for cfg.MinVersion <= cfg.MaxVersion && off[cfg.MinVersion] {
		cfg.MinVersion++
	}
	for cfg.MaxVersion >= cfg.MinVersion && off[cfg.MaxVersion] {
		cfg.MaxVersion--
	}
	if cfg.MinVersion > cfg.MaxVersion {
		return nil, errors.New("no supported versions enabled")
	}

	for a := *advertiseALPN; len(a) > 0; {
		n := int(a[0])
		if 1+n > len(a) {
			return nil, errors.New("bad -advertise-alpn")
		}
		cfg.NextProtos = append(cfg.NextProtos, a[1:1+n])
		a = a[1+n:]
	}
	switch {
	case *rejectALPN:
		cfg.NextProtos = []string{"unnegotiableprotocol"}
	case *declineALPN:
		cfg.NextProtos = []string{}
	case *selectALPN != "":
		cfg.NextProtos = []string{*selectALPN}
	}
	if *expectAdvertisedALPN != "" {
		var want []string
		for a := *expectAdvertisedALPN; len(a) > 0; {
			n := int(a[0])
			if 1+n > len(a) {
				return nil, errors.New("bad -expect-advertised-alpn")
			}
			want = append(want, a[1:1+n])
			a = a[1+n:]
		}
		cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			if !slices.Equal(chi.SupportedProtos, want) {
				return nil, fmt.Errorf("unexpected ALPN: got %q, want %q", chi.SupportedProtos, want)
			}
			return nil, nil
		}
	}
	if *hostName != "" {
		cfg.ServerName = *hostName
	}

	if *keyFile != "" || *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return nil, err
		}
		for _, id := range *signingPrefs {
			pair.SupportedSignatureAlgorithms = append(pair.SupportedSignatureAlgorithms, tls.SignatureScheme(id))
		}
		pair.OCSPStaple = *ocspResponse
		checkSchemes := func(got []tls.SignatureScheme) error {
			if *expectPeerVerifyPref == nil {
				return nil
			}
			if !slices.EqualFunc(got, *expectPeerVerifyPref, func(s tls.SignatureScheme, id int) bool { return int(s) == id }) {
				return fmt.Errorf("unexpected signature algorithms: got %v, want %v", got, *expectPeerVerifyPref)
			}
			return nil
		}
		// Get[Client]Certificate forces the certificate, as BoGo expects
		// (a handshake failure when it fits none of the peer's algorithms).
		cfg.GetCertificate = func(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &pair, checkSchemes(chi.SignatureSchemes)
		}
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &pair, checkSchemes(cri.SignatureSchemes)
		}
	}
	if *trustCert != "" {
		b, err := os.ReadFile(*trustCert)
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, errors.New("-trust-cert: no PEM block")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AddCert(cert)
	}
	// Like bssl_shim, check the peer's certificate only against -trust-cert:
	// the runner's certificates of this revision have expired, and its
	// tests of verification pass -trust-cert or -verify-fail.
	cfg.InsecureSkipVerify = *trustCert == ""
	if *verifyPeer {
		cfg.ClientAuth = tls.RequestClientCert // SSL_VERIFY_PEER, any certificate accepted
	}
	if *requireAnyClientCert {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	if *echConfigList != nil {
		cfg.EncryptedClientHelloConfigList = *echConfigList
		cfg.MinVersion = tls.VersionTLS13
	}
	for _, id := range *curves {
		cfg.CurvePreferences = append(cfg.CurvePreferences, tls.CurveID(id))
	}
	if len(*echServerConfig) != len(*echServerKey) || len(*echServerConfig) != len(*echIsRetryConfig) {
		return nil, errors.New("-ech-server-config, -ech-server-key and -ech-is-retry-config mismatch")
	}
	for i := range *echServerConfig {
		c, err := base64.StdEncoding.DecodeString((*echServerConfig)[i])
		if err != nil {
			return nil, err
		}
		k, err := base64.StdEncoding.DecodeString((*echServerKey)[i])
		if err != nil {
			return nil, err
		}
		cfg.EncryptedClientHelloKeys = append(cfg.EncryptedClientHelloKeys, tls.EncryptedClientHelloKey{
			Config: c, PrivateKey: k, SendAsRetry: (*echIsRetryConfig)[i] == "1",
		})
	}
	return cfg, nil
}

// dial connects to the runner, which listens on ::1 or else 127.0.0.1.
func dial() (*net.TCPConn, error) {
	c, err := net.Dial("tcp", net.JoinHostPort("::1", *port))
	if err != nil {
		c, err = net.Dial("tcp", net.JoinHostPort("127.0.0.1", *port))
	}
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// connect runs connection number i (0, then one per resumption).
func connect(i int, kcfg *ktls.Config, engine string) error {
	tcp, err := dial()
	if err != nil {
		return err
	}
	defer tcp.Close()
	var nc net.Conn = tcp
	var corrupt *corruptConn
	if os.Getenv("KTLS_BOGO_CORRUPT") == "1" {
		corrupt = &corruptConn{Conn: tcp}
		nc = corrupt
	}
	var c *ktls.Conn
	if *server {
		c = ktls.Server(nc, kcfg)
	} else {
		c = ktls.Client(nc, kcfg)
	}
	checks := func() error {
		if err := checkState(i, c.ConnectionState()); err != nil {
			return err
		}
		return checkEngine(c, tcp, engine)
	}
	if !*implicitHS {
		if err := c.Handshake(); err != nil {
			orderlyShutdown(tcp)
			return handshakeError(err)
		}
		if *noOpExtraHS {
			if err := c.Handshake(); err != nil {
				return err
			}
		}
		if err := checks(); err != nil {
			return err
		}
		if corrupt != nil {
			corrupt.armed.Store(true)
		}
	}
	if err := exchange(c); err != nil {
		orderlyShutdown(tcp)
		return err
	}
	if *implicitHS {
		// The first Read or Write ran the handshake; check it now.
		return checks()
	}
	return nil
}

// handshakeError checks a failed handshake against the ECH flags.
func handshakeError(err error) error {
	var ech *tls.ECHRejectionError
	if errors.As(err, &ech) {
		if *expectNoECHRetryConfigs && len(ech.RetryConfigList) > 0 {
			return errors.New("expected no ECH retry configs, got some")
		}
		if *expectECHRetryConfigs != nil && !slices.Equal(ech.RetryConfigList, *expectECHRetryConfigs) {
			return fmt.Errorf("unexpected retry list returned: got %x, want %x", ech.RetryConfigList, []byte(*expectECHRetryConfigs))
		}
	}
	return fmt.Errorf("handshake: %w", err)
}

// checkState checks the handshake's outcome against the -expect-* flags.
func checkState(i int, cs tls.ConnectionState) error {
	switch {
	case *expectALPN != "" && cs.NegotiatedProtocol != *expectALPN:
		return fmt.Errorf("unexpected protocol negotiated: want %q, got %q", *expectALPN, cs.NegotiatedProtocol)
	case *selectALPN != "" && cs.NegotiatedProtocol != *selectALPN:
		return fmt.Errorf("unexpected protocol negotiated: want %q, got %q", *selectALPN, cs.NegotiatedProtocol)
	case *declineALPN && cs.NegotiatedProtocol != "":
		return errors.New("unexpected ALPN protocol")
	case *expectVersion != 0 && cs.Version != uint16(*expectVersion):
		return fmt.Errorf("expected version %#x, got %#x", *expectVersion, cs.Version)
	case *expectECHAccept && !cs.ECHAccepted,
		i == 0 && *onInitialExpectECH && !cs.ECHAccepted,
		i > 0 && *onResumeExpectECH && !cs.ECHAccepted:
		return errors.New("expected ECH to be accepted, but it was not")
	case i == 0 && !*expectECHAccept && !*onInitialExpectECH && cs.ECHAccepted:
		return errors.New("did not expect ECH, but it was accepted")
	case *expectHRR && !cs.HelloRetryRequest:
		return errors.New("expected HRR but did not do it")
	case *expectNoHRR && cs.HelloRetryRequest:
		return errors.New("expected no HRR but did do it")
	case *expectSessionMiss && cs.DidResume:
		return errors.New("unexpected session resumption")
	case *expectServerName != "" && cs.ServerName != *expectServerName:
		return fmt.Errorf("unexpected server name: got %q, want %q", cs.ServerName, *expectServerName)
	case *expectCurve != 0 && cs.CurveID != tls.CurveID(*expectCurve):
		return fmt.Errorf("unexpected curve id: want %d, got %d", *expectCurve, cs.CurveID)
	}
	return nil
}

// checkEngine makes sure the engine under test carries both directions
// wherever it can: the user-space record layer for every suite package
// record carries; the kernel for those suites and versions the kernel takes
// under OffloadAuto (TLS 1.3 only where it follows a KeyUpdate).
func checkEngine(c *ktls.Conn, tcp *net.TCPConn, engine string) error {
	cs := c.ConnectionState()
	tx, rx := c.Mode()
	if _, ok := record.CipherOf(cs.CipherSuite); !ok || engine == "off" {
		if tx != ktls.ModeNone || rx != ktls.ModeNone {
			return fmt.Errorf("engine: %s offloaded as tx %v rx %v", tls.CipherSuiteName(cs.CipherSuite), tx, rx)
		}
		return nil
	}
	want := "user"
	if engine == "kernel" && (cs.Version < tls.VersionTLS13 || kernel.Rekey() == nil) &&
		ktlstest.KernelSuite(cs.Version, cs.CipherSuite) == nil {
		// Where the kernel lacks the suite (ChaCha20-Poly1305 before
		// Linux 5.11), OffloadAuto carries it in user space.
		want = "kernel"
	}
	okMode := func(m ktls.Mode) bool {
		if want == "kernel" {
			return m.IsKernel()
		}
		return m == ktls.ModeUser
	}
	if want == "kernel" && tx == ktls.ModeUser && rx == ktls.ModeUser && peerClosed(tcp) {
		// Linux attaches TLS only to an established connection: when the
		// peer's FIN arrived before the hand-off, OffloadAuto goes on in
		// user space (documented at ktls.OffloadAuto).
		return nil
	}
	if !okMode(tx) || !okMode(rx) {
		return fmt.Errorf("engine: want %s for %s, got tx %v rx %v (fallbacks %+v)", want, tls.CipherSuiteName(cs.CipherSuite), tx, rx, ktls.Stats().Fallbacks)
	}
	return nil
}

// exchange does the part of the test after the handshake, in the order of
// BoringSSL's bssl_shim: keying material, tls-unique, alert, first write,
// the echo loop, and the shutdown.
func exchange(c *ktls.Conn) error {
	cs := c.ConnectionState()
	if *exportKM > 0 {
		var ctx []byte
		if *useExportContext {
			ctx = []byte(*exportContext)
		}
		km, err := cs.ExportKeyingMaterial(*exportLabel, ctx, *exportKM)
		if err != nil {
			return err
		}
		if _, err := c.Write(km); err != nil {
			return err
		}
	}
	if *tlsUnique {
		if len(cs.TLSUnique) != 12 {
			return fmt.Errorf("tls-unique is %d bytes, want 12", len(cs.TLSUnique))
		}
		if _, err := c.Write(cs.TLSUnique); err != nil {
			return err
		}
	}
	if *sendAlert {
		// A fatal decompression_failure, through the engine.
		return c.WriteRecord(record.TypeAlert, []byte{2, 30})
	}
	cleanEOF := false
	if *writeDiffSizes {
		buf := make([]byte, 32769)
		for i := range buf {
			buf[i] = 0x42
		}
		for _, n := range []int{0, 1, 255, 256, 257, 16383, 16384, 16385, 32767, 32768, 32769} {
			if _, err := c.Write(buf[:n]); err != nil {
				return err
			}
		}
	} else {
		if *shimWritesFirst {
			if _, err := c.Write([]byte("hello")); err != nil {
				return err
			}
		}
		if !*shimShutsDown {
			var err error
			if cleanEOF, err = echo(c); err != nil {
				return err
			}
		}
	}
	return shutdown(c, cleanEOF)
}

// echo reads application data and writes it back XORed with 0xff until the
// peer closes; cleanEOF reports a close_notify (else the stream just ended).
func echo(c *ktls.Conn) (cleanEOF bool, err error) {
	buf := make([]byte, *readSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if *keyUpdate {
				if err := c.KeyUpdate(false); err != nil {
					return false, fmt.Errorf("KeyUpdate: %w", err)
				}
			}
			for i := range buf[:n] {
				buf[i] ^= 0xff
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return false, err
			}
		}
		switch {
		case err == io.EOF:
			return true, nil
		case errors.Is(err, ktls.ErrTruncated):
			return false, nil
		case err != nil:
			return false, err
		}
	}
}

// shutdown ends the connection as SSL_shutdown does in bssl_shim: quietly
// (no close_notify) unless -check-close-notify; with it, the peer's
// close_notify must arrive (before ours, or after it with -shim-shuts-down,
// with no application data in between).
func shutdown(c *ktls.Conn, cleanEOF bool) error {
	if !*checkCloseNotify {
		return nil
	}
	if !*shimShutsDown {
		if !cleanEOF {
			return errors.New("unexpected SSL_shutdown result: 0 != 1 (no close_notify from the peer)")
		}
		return c.CloseWrite()
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	switch {
	case n > 0:
		return errors.New("APPLICATION_DATA_ON_SHUTDOWN: application data after our close_notify")
	case err == io.EOF:
		return nil
	case err == nil:
		return errors.New("read returned nothing and no error")
	default:
		return fmt.Errorf("unexpected SSL_shutdown result: -1 != 1: %w", err)
	}
}

// orderlyShutdown lets the runner read the alert we may have sent before
// the connection goes: it closes our sending side and drains the peer's
// (BoGo expects this, as Go's own shim does it).
func orderlyShutdown(tcp *net.TCPConn) {
	tcp.CloseWrite()
	tcp.SetReadDeadline(time.Now().Add(20 * time.Second)) // a guard against hangs
	io.Copy(io.Discard, tcp)
}

// corruptConn flips the last bit of every write once armed (after the
// handshake): with the user-space engine every record then fails its
// authentication at the runner. It exists to check that a broken record
// layer turns the run red (KTLS_BOGO_CORRUPT=1).
type corruptConn struct {
	net.Conn
	armed atomic.Bool
}

func (c *corruptConn) Write(p []byte) (int, error) {
	if !c.armed.Load() || len(p) == 0 {
		return c.Conn.Write(p)
	}
	q := slices.Clone(p)
	q[len(q)-1] ^= 1
	return c.Conn.Write(q)
}
