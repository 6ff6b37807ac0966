package ktls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// noAES is set in the child process that runs the TLS 1.3 ChaCha20-Poly1305
// cases. crypto/tls has no setting for TLS 1.3 suites: a Go server picks
// ChaCha20-Poly1305 only when it or the client lacks AES hardware (see
// isAESGCMPreferred in crypto/tls/cipher_suites.go), and a Go client puts
// ChaCha20-Poly1305 first only without AES hardware. GODEBUG=cpu.aes=off
// makes the whole process look like that, so the matrix re-runs its TLS 1.3
// ChaCha20-Poly1305 cases in a child with it. TLS 1.3 AES-256-GCM cannot be
// negotiated between Go peers at all (the server always prefers AES-128-GCM
// and the client always offers it); the record layer's own tests cover it.
var noAES = os.Getenv("KTLS_TEST_NOAES") == "1"

type suiteCase struct {
	name    string
	version uint16
	suite   uint16
}

var suiteCases = []suiteCase{
	{"tls12-aes128", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	{"tls12-aes256", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
	{"tls12-chacha", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
	{"tls13-aes128", tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256},
	{"tls13-chacha", tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256},
}

// limit restricts cfg to the version (and, for TLS 1.2, the suite) of sc.
func limit(cfg *tls.Config, sc suiteCase) *tls.Config {
	if sc.version == tls.VersionTLS12 {
		cfg.MaxVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{sc.suite}
	} else {
		cfg.MinVersion = tls.VersionTLS13
	}
	return cfg
}

type offloadCase struct {
	name   string
	tx, rx bool // offloaded to the engine under test
}

var offloadCases = []offloadCase{{"txrx", true, true}, {"tx", true, false}, {"rx", false, true}}

// runMatrix runs every version x suite x side x offload case with engine
// (OffloadUser or OffloadKernel) for the offloaded directions and the
// user-space layer for the others.
func runMatrix(t *testing.T, engine Offload) {
	for _, sc := range suiteCases {
		chacha13 := sc.suite == tls.TLS_CHACHA20_POLY1305_SHA256
		if noAES != chacha13 {
			continue // TLS 1.3 ChaCha20-Poly1305 runs only in the child
		}
		for _, side := range []string{"server", "client"} {
			for _, oc := range offloadCases {
				t.Run(sc.name+"/"+side+"/"+oc.name, func(t *testing.T) {
					t.Parallel()
					engine := engineFor(engine, sc.version, sc.suite)
					tx, rx := OffloadUser, OffloadUser
					if oc.tx {
						tx = engine
					}
					if oc.rx {
						rx = engine
					}
					runCase(t, sc, side == "server", tx, rx)
				})
			}
		}
	}
	if !noAES {
		t.Run("tls13-chacha", func(t *testing.T) { runNoAESChild(t) })
	}
}

// runNoAESChild runs the parent test's TLS 1.3 ChaCha20-Poly1305 cases in a
// child process without AES (see noAES).
func runNoAESChild(t *testing.T) {
	parent, _, _ := strings.Cut(t.Name(), "/")
	cmd := exec.Command(os.Args[0], "-test.run=^"+parent+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "KTLS_TEST_NOAES=1", "GODEBUG=cpu.aes=off")
	out, err := cmd.CombinedOutput()
	passed := strings.Count(string(out), "--- PASS: "+parent+"/tls13-chacha/")
	if err != nil || passed != 2*len(offloadCases) {
		t.Fatalf("child with GODEBUG=cpu.aes=off: %v, %d cases passed\n%s", err, passed, out)
	}
	t.Logf("child with GODEBUG=cpu.aes=off: %d TLS 1.3 ChaCha20-Poly1305 cases passed", passed)
}

// TestMatrix runs the matrix with the user-space engine against crypto/tls
// peers.
func TestMatrix(t *testing.T) { runMatrix(t, OffloadUser) }

// TestKernelMatrix runs the matrix with the kernel engine.
func TestKernelMatrix(t *testing.T) {
	ktlstest.RequireKernel(t)
	runMatrix(t, OffloadKernel)
}

// checkSocketInfo checks the kernel's own view of the socket (sock_diag on
// Linux): software kTLS in the offloaded directions, no keys in the others.
func checkSocketInfo(t *testing.T, k *Conn, tx, rx bool) {
	t.Helper()
	info, err := kernel.SocketInfo(k.rc)
	if err != nil {
		t.Errorf("SocketInfo: %v", err)
		return
	}
	conf := func(on bool) kernel.Conf {
		if on {
			return kernel.ConfSW
		}
		return kernel.ConfBase
	}
	if info.TX != conf(tx) || info.RX != conf(rx) {
		t.Errorf("kernel reports TX %v, RX %v; want %v, %v", info.TX, info.RX, conf(tx), conf(rx))
	}
}

// checkTickets checks, for a ktls TLS 1.3 client with a session cache, that
// the server's one ticket was either passed to crypto/tls before the
// hand-off or dropped after it.
func checkTickets(t *testing.T, k *Conn) {
	t.Helper()
	if !k.isClient || k.ConnectionState().Version != tls.VersionTLS13 {
		return
	}
	read, after := k.ticketsRead, k.ticketsAfter.Load()
	t.Logf("server ticket: %d read by crypto/tls before the hand-off, %d after it", read, after)
	if read+int(after) != 1 {
		t.Errorf("tickets: %d read by crypto/tls before the hand-off, %d after; want 1 in all", read, after)
	}
}

// engineFor returns engine, or OffloadAuto where engine is OffloadKernel and
// the kernel lacks the suite (ChaCha20-Poly1305 before Linux 5.11): the test
// then checks that OffloadAuto falls back to the user-space layer for it.
func engineFor(engine Offload, version, suite uint16) Offload {
	if engine == OffloadKernel && ktlstest.KernelSuite(version, suite) != nil {
		return OffloadAuto
	}
	return engine
}

func wantMode(o Offload) Mode {
	if o == OffloadKernel {
		return ModeKernel
	}
	return ModeUser
}

// pair is a ktls Conn and its crypto/tls peer on a loopback TCP connection.
type pair struct {
	k     *Conn
	p     *tls.Conn
	fc    *flushConn // under the peer
	kside net.Conn   // the ktls side's socket
}

// newPair sets up (without handshaking) a ktls conn with kcfg and a
// crypto/tls peer with pcfg; ktlsServer says which side ktls plays.
func newPair(t testing.TB, ktlsServer bool, kcfg *Config, pcfg *tls.Config) *pair {
	cc, ss := tcpPair(t)
	deadline := time.Now().Add(60 * time.Second)
	if inLab {
		deadline = time.Now().Add(180 * time.Second)
	}
	cc.SetDeadline(deadline)
	ss.SetDeadline(deadline)
	pr := &pair{}
	if ktlsServer {
		pr.k, pr.kside = Server(ss, kcfg), ss
		pr.fc = newFlushConn(cc)
		pr.p = tls.Client(pr.fc, pcfg)
	} else {
		pr.k, pr.kside = Client(cc, kcfg), cc
		pr.fc = newFlushConn(ss)
		pr.p = tls.Server(pr.fc, pcfg)
	}
	return pr
}

// handshake runs both handshakes; the peer then writes first (see
// flushConn) so its first data leaves with its last flight.
func (pr *pair) handshake(t testing.TB) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- pr.p.Handshake() }()
	kerr := pr.k.Handshake()
	if kerr != nil {
		pr.kside.Close()
	}
	perr := <-errc
	if kerr != nil || perr != nil {
		t.Fatalf("handshake: ktls: %v; crypto/tls peer: %v", kerr, perr)
	}
}

func runCase(t *testing.T, sc suiteCase, ktlsServer bool, tx, rx Offload) {
	// KernelWithoutRekey: OffloadAuto tries the kernel for TLS 1.3 too.
	kcfg := &Config{TX: tx, RX: rx, KernelWithoutRekey: true}
	var pcfg *tls.Config
	// With a session cache on the client, a TLS 1.3 server sends a ticket
	// (under the application key, before any data).
	cache := tls.NewLRUClientSessionCache(1)
	if ktlsServer {
		kcfg.TLS, pcfg = limit(serverTLS(), sc), limit(clientTLS(), sc)
		pcfg.ClientSessionCache = cache
	} else {
		kcfg.TLS, pcfg = limit(clientTLS(), sc), limit(serverTLS(), sc)
		kcfg.TLS.ClientSessionCache = cache
	}
	pr := newPair(t, ktlsServer, kcfg, pcfg)
	sizes := payloads()
	toPeer, toKTLS := testData(total(sizes), 1), testData(total(sizes), 2)

	perr := make(chan error, 1)
	released := make(chan struct{})
	var once sync.Once
	release := func() error { once.Do(func() { close(released) }); return pr.fc.release() }
	// The peer: handshake, then its data right behind its last flight.
	go func() {
		err := pr.p.Handshake()
		if err == nil {
			err = writeSizes(pr.p, toKTLS, sizes, release)
		}
		if err == nil {
			err = pr.p.CloseWrite()
		}
		release()
		perr <- err
	}()
	if err := pr.k.Handshake(); err != nil {
		pr.kside.Close()
		t.Fatalf("ktls handshake: %v (peer: %v)", err, <-perr)
	}
	cs := pr.k.ConnectionState()
	if cs.Version != sc.version || cs.CipherSuite != sc.suite {
		pr.kside.Close()
		t.Fatalf("negotiated %s %s, want %s %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite),
			tls.VersionName(sc.version), tls.CipherSuiteName(sc.suite))
	}
	if gotTX, gotRX := pr.k.Mode(); gotTX != wantMode(tx) || gotRX != wantMode(rx) {
		t.Errorf("Mode() = %v, %v; want %v, %v", gotTX, gotRX, wantMode(tx), wantMode(rx))
	}
	if tx == OffloadKernel || rx == OffloadKernel {
		checkSocketInfo(t, pr.k, tx == OffloadKernel, rx == OffloadKernel)
	}

	type result struct {
		b   []byte
		err error
	}
	kread, kwrite := make(chan result, 1), make(chan error, 1)
	go func() {
		got, err := readVarying(pr.k)
		kread <- result{got, err}
	}()
	go func() {
		err := writeSizes(pr.k, toPeer, sizes, nil)
		if err == nil {
			err = pr.k.CloseWrite()
		}
		kwrite <- err
	}()
	<-released
	got, err := io.ReadAll(pr.p)
	if err != nil {
		t.Errorf("peer read: %v", err)
	}
	if !bytes.Equal(got, toPeer) {
		t.Errorf("ktls -> peer: %s", firstDiff(got, toPeer))
	}
	if r := <-kread; r.err != nil || !bytes.Equal(r.b, toKTLS) {
		t.Errorf("peer -> ktls: %v; %s", r.err, firstDiff(r.b, toKTLS))
	}
	checkTickets(t, pr.k)
	if err := <-kwrite; err != nil {
		t.Errorf("ktls write: %v", err)
	}
	if err := <-perr; err != nil {
		t.Errorf("peer write: %v", err)
	}
	if err := pr.k.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	pr.p.Close()
}

// TestResumption checks that session tickets work both ways: ktls as server
// issues tickets a crypto/tls client resumes with, and ktls as client stores
// the server's ticket (TLS 1.3: read from the socket before the hand-off).
func TestResumption(t *testing.T) { testResumption(t, OffloadUser) }

// TestKernelResumption is TestResumption with the kernel engine.
func TestKernelResumption(t *testing.T) {
	ktlstest.RequireKernel(t)
	testResumption(t, OffloadKernel)
}

func testResumption(t *testing.T, engine Offload) {
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[3]} {
		for _, side := range []string{"server", "client"} {
			t.Run(sc.name+"/"+side, func(t *testing.T) {
				ktlsServer := side == "server"
				cache := tls.NewLRUClientSessionCache(4)
				kcfg := &Config{TX: engine, RX: engine}
				var pcfg *tls.Config
				if ktlsServer {
					kcfg.TLS, pcfg = limit(serverTLS(), sc), limit(clientTLS(), sc)
					pcfg.ClientSessionCache = cache
				} else {
					kcfg.TLS, pcfg = limit(clientTLS(), sc), limit(serverTLS(), sc)
					kcfg.TLS.ClientSessionCache = cache
				}
				for i := range 2 {
					pr := newPair(t, ktlsServer, kcfg, pcfg)
					pr.fc.release()
					pr.handshake(t)
					if got := pr.k.ConnectionState().DidResume; got != (i == 1) {
						t.Fatalf("connection %d: DidResume = %v", i, got)
					}
					if tx, rx := pr.k.Mode(); tx != wantMode(engine) || rx != wantMode(engine) {
						t.Errorf("connection %d: Mode() = %v, %v", i, tx, rx)
					}
					echo(t, pr)
				}
			})
		}
	}
}

// echo sends a message each way and checks it arrives.
func echo(t testing.TB, pr *pair) {
	t.Helper()
	msg := []byte("hello over ktls")
	go pr.p.Write(msg)
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(pr.k, buf); err != nil || !bytes.Equal(buf, msg) {
		t.Fatalf("peer -> ktls: %q, %v", buf, err)
	}
	go pr.k.Write(msg)
	if _, err := io.ReadFull(pr.p, buf); err != nil || !bytes.Equal(buf, msg) {
		t.Fatalf("ktls -> peer: %q, %v", buf, err)
	}
}

// TestALPNAndClientCert checks that ALPN and client certificates survive
// into ConnectionState on both sides.
func TestALPNAndClientCert(t *testing.T) { testALPNAndClientCert(t, OffloadUser) }

// TestKernelALPNAndClientCert is TestALPNAndClientCert with the kernel
// engine; the TLS 1.3 ktls client there meets the server's ticket after the
// hand-off, as a control record.
func TestKernelALPNAndClientCert(t *testing.T) {
	ktlstest.RequireKernel(t)
	testALPNAndClientCert(t, OffloadKernel)
}

func testALPNAndClientCert(t *testing.T, engine Offload) {
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[3]} {
		for _, side := range []string{"server", "client"} {
			t.Run(sc.name+"/"+side, func(t *testing.T) {
				ktlsServer := side == "server"
				srv, cli := limit(serverTLS(), sc), limit(clientTLS(), sc)
				srv.ClientAuth = tls.RequireAndVerifyClientCert
				srv.NextProtos = []string{"h2", "http/1.1"}
				cli.NextProtos = []string{"http/1.1"}
				cli.Certificates = []tls.Certificate{pki().client}
				// A TLS 1.3 server asking for a client certificate sends its
				// ticket only after reading it: the ktls client usually meets it
				// after the hand-off.
				cli.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				kcfg := &Config{TX: engine, RX: engine, TLS: cli}
				pcfg := srv
				if ktlsServer {
					kcfg.TLS, pcfg = srv, cli
				}
				pr := newPair(t, ktlsServer, kcfg, pcfg)
				pr.fc.release()
				pr.handshake(t)
				for name, cs := range map[string]tls.ConnectionState{"ktls": pr.k.ConnectionState(), "peer": pr.p.ConnectionState()} {
					if cs.NegotiatedProtocol != "http/1.1" {
						t.Errorf("%s: NegotiatedProtocol = %q", name, cs.NegotiatedProtocol)
					}
					isServer := (name == "ktls") == ktlsServer
					want := pki().server.Leaf
					if isServer {
						want = pki().client.Leaf
					}
					if len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(want) {
						t.Errorf("%s: peer certificate missing or wrong", name)
					}
				}
				echo(t, pr)
				checkTickets(t, pr.k)
			})
		}
	}
}

// TestHelloRetryRequest checks the hand-off after a TLS 1.3 handshake with
// a HelloRetryRequest (the server wants another key share), both ways.
func TestHelloRetryRequest(t *testing.T) {
	for _, ktlsServer := range []bool{true, false} {
		srv, cli := serverTLS(), clientTLS()
		srv.CurvePreferences = []tls.CurveID{tls.CurveP256}
		kcfg := &Config{TLS: cli, TX: OffloadUser, RX: OffloadUser}
		pcfg := srv
		if ktlsServer {
			kcfg.TLS, pcfg = srv, cli
		}
		pr := newPair(t, ktlsServer, kcfg, pcfg)
		pr.fc.release()
		pr.handshake(t)
		if cs := pr.k.ConnectionState(); cs.CurveID != tls.CurveP256 || !cs.HelloRetryRequest {
			t.Errorf("curve %v, HelloRetryRequest %v; want P-256 after a retry", cs.CurveID, cs.HelloRetryRequest)
		}
		if tx, rx := pr.k.Mode(); tx != ModeUser || rx != ModeUser {
			t.Errorf("Mode() = %v, %v", tx, rx)
		}
		echo(t, pr)
	}
}

// TestKeyLogChained checks that the user's KeyLogWriter still gets the key
// log, including through GetConfigForClient.
func TestKeyLogChained(t *testing.T) {
	var userLog, hookLog bytes.Buffer
	srv := serverTLS()
	srv.KeyLogWriter = &userLog
	srv.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := serverTLS()
		c.KeyLogWriter = &hookLog
		return c, nil
	}
	pr := newPair(t, true, &Config{TLS: srv, TX: OffloadUser, RX: OffloadUser}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	echo(t, pr)
	if !strings.Contains(hookLog.String(), "SERVER_TRAFFIC_SECRET_0 ") || userLog.Len() != 0 {
		t.Errorf("key log: hook config got %d bytes, base config %d bytes", hookLog.Len(), userLog.Len())
	}
}

// TestOffloadOff checks that OffloadOff (and a CBC suite) keep the whole
// connection on crypto/tls.
func TestOffloadOff(t *testing.T) {
	cbc := suiteCase{"tls12-cbc", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	for name, tc := range map[string]struct {
		sc     suiteCase
		tx, rx Offload
	}{
		"off": {suiteCases[3], OffloadOff, OffloadUser},
		"cbc": {cbc, OffloadAuto, OffloadAuto},
	} {
		t.Run(name, func(t *testing.T) {
			pr := newPair(t, true, &Config{TLS: limit(serverTLS(), tc.sc), TX: tc.tx, RX: tc.rx}, limit(clientTLS(), tc.sc))
			pr.fc.release()
			pr.handshake(t)
			if tx, rx := pr.k.Mode(); tx != ModeNone || rx != ModeNone {
				t.Errorf("Mode() = %v, %v; want none, none", tx, rx)
			}
			echo(t, pr)
			pr.k.Close()
			if _, err := pr.p.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("peer read after Close: %v, want EOF", err)
			}
		})
	}
	t.Run("cbc-kernel-required", func(t *testing.T) {
		pr := newPair(t, true, &Config{TLS: limit(serverTLS(), cbc), TX: OffloadKernel, RX: OffloadKernel}, limit(clientTLS(), cbc))
		pr.fc.release()
		go pr.p.Handshake()
		if err := pr.k.Handshake(); err == nil {
			t.Error("handshake with OffloadKernel and a CBC suite succeeded")
		}
	})
}

// TestCloseUnblocks checks that Close unblocks a Read and a Write blocked
// at the same time.
func TestCloseUnblocks(t *testing.T) { testCloseUnblocks(t, OffloadUser) }

// TestKernelCloseUnblocks is TestCloseUnblocks with the kernel engine.
func TestKernelCloseUnblocks(t *testing.T) {
	ktlstest.RequireKernel(t)
	testCloseUnblocks(t, OffloadKernel)
}

func testCloseUnblocks(t *testing.T, engine Offload) {
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: engine, RX: engine}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	done := make(chan error, 2)
	go func() {
		_, err := pr.k.Read(make([]byte, 10))
		done <- err
	}()
	go func() {
		big := make([]byte, 64<<20) // more than the socket buffers hold: blocks
		_, err := pr.k.Write(big)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	pr.k.Close()
	for range 2 {
		select {
		case err := <-done:
			if err == nil {
				t.Error("blocked call returned no error after Close")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not unblock Read and Write")
		}
	}
}

// TestDeadline checks that a read deadline interrupts Read without
// breaking the connection.
func TestDeadline(t *testing.T) {
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: OffloadUser, RX: OffloadUser}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	pr.k.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := pr.k.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past deadline: %v", err)
	}
	pr.k.SetReadDeadline(time.Time{})
	echo(t, pr)
}

// TestOffloadAuto checks the default policy: the kernel where it has TLS
// (for TLS 1.3, as here, only where it can re-key), user space elsewhere;
// and that OffloadKernel fails the handshake where the kernel has no TLS.
func TestOffloadAuto(t *testing.T) {
	want := ModeUser
	if kernel.Supported() == nil && kernel.Rekey() == nil {
		want = ModeKernel
	}
	pr := newPair(t, false, &Config{TLS: clientTLS()}, serverTLS())
	pr.fc.release()
	pr.handshake(t)
	if tx, rx := pr.k.Mode(); tx != want || rx != want {
		t.Errorf("Mode() = %v, %v; want %v", tx, rx, want)
	}
	echo(t, pr)

	if kernel.Supported() == nil {
		return
	}
	pr = newPair(t, true, &Config{TLS: serverTLS(), RX: OffloadKernel}, clientTLS())
	pr.fc.release()
	go pr.p.Handshake()
	if err := pr.k.Handshake(); err == nil {
		t.Error("OffloadKernel without kernel TLS: handshake succeeded")
	}
}
