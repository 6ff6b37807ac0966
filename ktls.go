// Package ktls runs the TLS handshake with the standard crypto/tls and then
// hands each direction's record layer over to the kernel (Linux's TLS ULP,
// FreeBSD's ktls(4)) or, where the kernel cannot take it, to a user-space
// record layer (package record). With the kernel framing and protecting the
// records, sendfile(2) and splice(2) work on TLS connections: Conn.ReadFrom
// and Conn.WriteTo use them.
//
// crypto/tls is used untouched: the keys come from a per-connection key log,
// and what the handshake sent and received (randoms, record counts) is
// learned from the bytes on the wire. During the handshake crypto/tls reads
// whole records, and only records of the handshake, so that everything after
// it is still queued on the socket when the new owner takes over.
//
// After the hand-off both engines handle what a peer may send besides
// application data the same way (see Conn.Read): close_notify, alerts,
// TLS 1.3 NewSessionTicket (stored in the client's session cache) and
// KeyUpdate (followed in user space always, in the Linux kernel from 6.14;
// OffloadAuto keeps TLS 1.3 in user space where the kernel cannot re-key).
// Conn.WriteRecord and Conn.ReadRecord send and receive records of any type,
// like ktls(4)'s TLS_SET_RECORD_TYPE and TLS_GET_RECORD. SetKernelEnabled
// and SetCBCEnabled mirror the sysctls kern.ipc.tls.enable and
// kern.ipc.tls.cbc_enable, and Stats reports counters modelled on
// kern.ipc.tls.stats and /proc/net/tls_stat, also published with expvar
// (as "ktls"; package ktlsprom has a collector for Prometheus's client
// library). Programs that run their own handshake can
// give one direction of any TCP connection to the kernel with Install and a
// Session, as ktls(4)'s TCP_TXTLS_ENABLE / TCP_RXTLS_ENABLE do.
package ktls

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/ktls-go/ktls/internal/handshake"
)

// Mode says who carries one direction's records after the handshake, like
// ktls(4)'s TCP_TXTLS_MODE / TCP_RXTLS_MODE and Linux's TLS_INFO_TXCONF /
// TLS_INFO_RXCONF.
type Mode int

const (
	// ModeNone: the whole connection stays on crypto/tls (TCP_TLS_MODE_NONE).
	ModeNone Mode = iota
	// ModeUser: the user-space record layer of this package.
	ModeUser
	// ModeKernel: the kernel, in software (TCP_TLS_MODE_SW, TLS_CONF_SW).
	ModeKernel
	// ModeKernelDevice: the kernel frames records, the NIC does the
	// cryptography (TCP_TLS_MODE_IFNET, TLS_CONF_HW).
	ModeKernelDevice
	// ModeKernelTOE: the NIC or TCP offload engine handles whole records
	// (TCP_TLS_MODE_TOE, TLS_CONF_HW_RECORD).
	ModeKernelTOE
)

// String returns "none", "user", "kernel-sw", "kernel-ifnet" or
// "kernel-toe".
func (m Mode) String() string {
	switch m {
	case ModeNone:
		return "none"
	case ModeUser:
		return "user"
	case ModeKernel:
		return "kernel-sw"
	case ModeKernelDevice:
		return "kernel-ifnet"
	case ModeKernelTOE:
		return "kernel-toe"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// IsKernel reports whether the kernel carries the direction.
func (m Mode) IsKernel() bool { return m >= ModeKernel }

// Offload is the policy for one direction's record layer after the
// handshake.
type Offload int

const (
	// OffloadAuto puts the direction in the kernel when the kernel has TLS
	// and takes the session, and in the user-space record layer otherwise.
	// Linux attaches TLS only to an established connection: one whose peer
	// has already closed its side (its FIN arrived before the hand-off) goes
	// on in user space.
	OffloadAuto Offload = iota
	// OffloadKernel requires the kernel: the handshake fails when the
	// kernel cannot take the direction, with an error wrapping the kernel's
	// errno (ENOTCONN on Linux when the peer had already closed its side).
	OffloadKernel
	// OffloadUser puts the direction in the user-space record layer.
	OffloadUser
	// OffloadOff keeps the whole connection on crypto/tls (both directions:
	// one tls.Conn cannot be split).
	OffloadOff
)

// String returns "auto", "kernel", "user" or "off".
func (o Offload) String() string {
	switch o {
	case OffloadAuto:
		return "auto"
	case OffloadKernel:
		return "kernel"
	case OffloadUser:
		return "user"
	case OffloadOff:
		return "off"
	}
	return "Offload(" + strconv.Itoa(int(o)) + ")"
}

// Config configures a ktls connection: the crypto/tls configuration of the
// handshake and where each direction goes afterwards. A Config may be shared
// by many connections and must not be modified after its first use.
type Config struct {
	// TLS configures the handshake. Its KeyLogWriter, if any, still
	// receives every key log line; GetConfigForClient may return another
	// configuration. Session ticket keys are used as crypto/tls uses them
	// (SetSessionTicketKeys rotates them on a running server). nil is an
	// empty configuration.
	TLS *tls.Config

	// TX and RX choose where the sending and the receiving direction's
	// record layer runs after the handshake.
	TX, RX Offload

	// KernelWithoutRekey lets OffloadAuto put TLS 1.3 directions in a
	// kernel that cannot re-key them (Linux before 6.14, FreeBSD). By
	// default OffloadAuto keeps TLS 1.3 connections in the user-space record
	// layer on such kernels, because a KeyUpdate from the peer could not be
	// followed there; with KernelWithoutRekey (or OffloadKernel) a KeyUpdate
	// ends the connection with an error that says so.
	KernelWithoutRekey bool

	// ZerocopySendfile lets a sending direction in the Linux kernel send
	// sendfile(2) data without the kernel's copy of the file's pages
	// (TLS_TX_ZEROCOPY_RO, Linux 5.19). Only NIC offload (kernel-ifnet)
	// gains from it; software kernel TLS ignores it. The hazard: the pages
	// are encrypted by the NIC as they are sent, so a file changed while
	// ReadFrom sends it (or until TCP has it acknowledged: a retransmission
	// reads the pages again) puts records on the wire whose MAC no longer
	// matches, and the peer ends the connection with bad_record_mac. Turn
	// it on only for files that are not modified in place while served
	// (replace files by rename instead). A kernel without the option
	// (ENOPROTOOPT: Linux before 5.19, FreeBSD) leaves the connection
	// without it, counted in Statistics.KernelOptionsRefused.
	ZerocopySendfile bool

	// ExpectNoPad lets a TLS 1.3 receiving direction in the Linux kernel
	// decrypt each record straight into the reader's buffer
	// (TLS_RX_EXPECT_NO_PAD, Linux 6.0), saving a copy. The kernel bets that
	// the peer does not pad its records (crypto/tls, OpenSSL and BoringSSL
	// do not by default); a padded record, or a record of another type, is
	// decrypted again into a kernel buffer, so the stream stays correct, but
	// a peer that pads every record doubles the server's decryption work.
	// The kernel's documentation calls it safe only with trusted peers: it
	// is off by default. A kernel without it (ENOPROTOOPT: Linux before
	// 6.0, FreeBSD) leaves the connection without it, counted in
	// Statistics.KernelOptionsRefused; TLS 1.2 directions never ask for it.
	ExpectNoPad bool
}

// Clone returns a copy of c, for modification before first use: a Config
// must not be modified once used. The TLS configuration is cloned too
// (tls.Config.Clone). Clone of nil is nil.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	d := *c
	d.TLS = c.TLS.Clone()
	return &d
}

// kernelWithoutRekey reports c.KernelWithoutRekey; false for nil.
func (c *Config) kernelWithoutRekey() bool { return c != nil && c.KernelWithoutRekey }

// tlsConfig returns c.TLS, never nil.
func (c *Config) tlsConfig() *tls.Config {
	if c == nil || c.TLS == nil {
		return &tls.Config{}
	}
	return c.TLS
}

// policy returns the offload policies of both directions. A client whose
// tls.Config allows renegotiation (tls.Config.Renegotiation) stays on
// crypto/tls, which can renegotiate a TLS 1.2 connection: ktls refuses a
// HelloRequest with a warning no_renegotiation.
func (c *Config) policy() (tx, rx Offload) {
	if c == nil {
		return OffloadAuto, OffloadAuto
	}
	if c.TLS != nil && c.TLS.Renegotiation != tls.RenegotiateNever {
		return OffloadOff, OffloadOff
	}
	return c.TX, c.RX
}

// serverConfig returns the tls.Config of one server connection over hc: a
// clone of c.TLS with the connection's key log, whose GetConfigForClient (if
// c.TLS has one) clones what the user's returns in the same way. crypto/tls
// then takes the session ticket keys as it does on c.TLS itself: those of
// the configuration GetConfigForClient returns if they were set there, else
// c.TLS's current ones (explicit, so that SetSessionTicketKeys works on a
// running server, or crypto/tls's automatic ones, shared by every
// connection).
func (c *Config) serverConfig(hc *handshake.Conn) *tls.Config {
	user := c.tlsConfig()
	// Clone copies the automatic ticket keys as they are: bring them up to
	// date in user (made on first use, rotated as crypto/tls does when it
	// uses a Config), so that each connection has the current ones.
	user.DecryptTicket(nil, tls.ConnectionState{})
	cfg := user.Clone()
	cfg.KeyLogWriter = hc.KeyLogWriter(cfg.KeyLogWriter)
	noteResumed(cfg, hc, cfg.DecryptTicket)
	if hook := user.GetConfigForClient; hook != nil {
		cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			got, err := hook(chi)
			if err != nil || got == nil {
				return nil, err // crypto/tls goes on with cfg
			}
			own := got.Clone()
			own.GetConfigForClient = nil
			own.KeyLogWriter = hc.KeyLogWriter(own.KeyLogWriter)
			noteResumed(own, hc, decryptFor(own, cfg))
			return own, nil
		}
	}
	return cfg
}

// noteResumed makes cfg's UnwrapSession (the user's, else decrypt) pass the
// session a client resumes to hc: a resumed TLS 1.2 session gets no key log
// line, its master secret comes from there.
func noteResumed(cfg *tls.Config, hc *handshake.Conn, decrypt func([]byte, tls.ConnectionState) (*tls.SessionState, error)) {
	unwrap := cfg.UnwrapSession
	if unwrap == nil {
		unwrap = decrypt
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := unwrap(identity, cs)
		if err == nil && ss != nil {
			hc.SetResumedSession(ss)
		}
		return ss, err
	}
}

// decryptFor returns the ticket decryption of a connection whose
// GetConfigForClient returned own and whose original configuration is
// orig, with the keys crypto/tls seals that connection's tickets with:
// own's if they were set (SetSessionTicketKeys, SessionTicketKey), else
// orig's.
func decryptFor(own, orig *tls.Config) func([]byte, tls.ConnectionState) (*tls.SessionState, error) {
	return func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		byOwn, _ := own.DecryptTicket(identity, cs)
		byOrig, _ := orig.DecryptTicket(identity, cs)
		if byOwn == nil && byOrig == nil {
			return nil, nil
		}
		if explicitKeys(own, cs, cmp.Or(byOwn, byOrig)) {
			return byOwn, nil
		}
		return byOrig, nil
	}
}

// explicitKeys reports whether cfg's session ticket keys were set rather
// than made by crypto/tls, which has no API to tell: a clone of cfg living
// past the lifetime of automatic keys (crypto/tls replaces them with a new
// one then) still seals tickets that cfg opens only if they were set. ss is
// a session to seal.
func explicitKeys(cfg *tls.Config, cs tls.ConnectionState, ss *tls.SessionState) bool {
	later := cfg.Clone()
	at := time.Now().Add(366 * 24 * time.Hour)
	later.Time = func() time.Time { return at }
	ticket, err := later.EncryptTicket(cs, ss)
	if err != nil {
		return false
	}
	opened, _ := cfg.DecryptTicket(ticket, cs)
	return opened != nil
}

// Server returns a new server-side ktls connection over conn, as
// tls.Server does. The handshake runs on the first Read or Write, or by
// Handshake. For the kernel to take over, conn must be a *net.TCPConn (or
// another connected TCP socket implementing syscall.Conn).
func Server(conn net.Conn, config *Config) *Conn {
	if config == nil {
		config = &Config{}
	}
	hc := handshake.NewConn(conn, false)
	return &Conn{conn: conn, hc: hc, config: config, tls: tls.Server(hc, config.serverConfig(hc))}
}

// Client returns a new client-side ktls connection over conn, as tls.Client
// does. config.TLS should set ServerName or InsecureSkipVerify.
func Client(conn net.Conn, config *Config) *Conn {
	return newClient(conn, config, "")
}

func newClient(conn net.Conn, config *Config, serverName string) *Conn {
	hc := handshake.NewConn(conn, true)
	cfg := config.tlsConfig().Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	cfg.KeyLogWriter = hc.KeyLogWriter(cfg.KeyLogWriter)
	if cfg.ClientSessionCache != nil {
		cfg.ClientSessionCache = &sessionCache{ClientSessionCache: cfg.ClientSessionCache, hc: hc}
	}
	return &Conn{conn: conn, hc: hc, config: config, isClient: true, tls: tls.Client(hc, cfg), clientConfig: cfg}
}

// sessionCache passes the session a client offers for resumption to the
// handshake conn: a resumed TLS 1.2 session gets no key log line.
type sessionCache struct {
	tls.ClientSessionCache
	hc *handshake.Conn
}

// Get returns the cached session for sessionKey and notes its secret.
func (s *sessionCache) Get(sessionKey string) (*tls.ClientSessionState, bool) {
	cs, ok := s.ClientSessionCache.Get(sessionKey)
	if ok && cs != nil {
		if _, ss, err := cs.ResumptionState(); err == nil && ss != nil {
			s.hc.SetResumedSession(ss)
		}
	}
	return cs, ok
}

// Dial connects to addr on the named network and runs the handshake, as
// tls.Dial does.
func Dial(network, addr string, config *Config) (*Conn, error) {
	return DialContext(context.Background(), network, addr, config)
}

// DialContext is Dial with a context, which bounds the connection and the
// handshake; once the handshake is done it has no effect. A Dialer sets
// the net.Dialer too.
func DialContext(ctx context.Context, network, addr string, config *Config) (*Conn, error) {
	return (&Dialer{Config: config}).dial(ctx, network, addr)
}

// Listen creates a TLS listener accepting connections on laddr, as
// tls.Listen does. config.TLS must provide a certificate (Certificates,
// GetCertificate or GetConfigForClient).
func Listen(network, laddr string, config *Config) (net.Listener, error) {
	if t := config.tlsConfig(); len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil {
		return nil, errors.New("ktls: neither Certificates, GetCertificate, nor GetConfigForClient set in Config.TLS")
	}
	l, err := net.Listen(network, laddr)
	if err != nil {
		return nil, err
	}
	return NewListener(l, config), nil
}

// NewListener returns a listener whose Accept wraps each connection of
// inner with Server. The returned net.Conn values are *Conn.
func NewListener(inner net.Listener, config *Config) net.Listener {
	return &listener{Listener: inner, config: config}
}

type listener struct {
	net.Listener
	config *Config
}

// Accept waits for the next connection and returns it as a *Conn whose
// handshake has not run yet.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(c, l.config), nil
}
