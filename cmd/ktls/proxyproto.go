package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// proxyProtoOptions are the PROXY protocol flags of serve and proxy.
type proxyProtoOptions struct {
	accept bool           // --accept-proxy-protocol
	from   []netip.Prefix // --proxy-protocol-from; nil: any source
	send   byte           // --send-proxy-protocol (proxy only): 1 or 2, 0 for none
}

// addProxyProtoFlags defines --accept-proxy-protocol and
// --proxy-protocol-from on fs, and --send-proxy-protocol if send.
func addProxyProtoFlags(fs *flag.FlagSet, o *proxyProtoOptions, send bool) {
	use := "logged"
	if send {
		use = "logged and passed on with --send-proxy-protocol"
	}
	fs.BoolVar(&o.accept, "accept-proxy-protocol", false, "each connection starts with a PROXY protocol header (v1 or v2, as HAProxy's send-proxy sends), whose client address is "+use+"; connections without one are closed")
	fs.Func("proxy-protocol-from", "with --accept-proxy-protocol: take connections only from the addresses or prefixes `CIDR,...`; others are closed (default: any)", func(s string) error {
		o.from = nil
		for f := range strings.SplitSeq(s, ",") {
			f = strings.TrimSpace(f)
			p, err := netip.ParsePrefix(f)
			if err != nil {
				a, aerr := netip.ParseAddr(f)
				if aerr != nil {
					return fmt.Errorf("%q: want an address or a prefix (CIDR)", f)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			o.from = append(o.from, p.Masked())
		}
		return nil
	})
	if send {
		fs.Func("send-proxy-protocol", "send the client's address to --to in a PROXY protocol header of `VERSION` v1 or v2 first (with --upstream-tls, before the TLS handshake)", func(s string) error {
			switch s {
			case "v1", "v2":
				o.send = s[1] - '0'
				return nil
			}
			return errors.New("want v1 or v2")
		})
	}
}

// check validates the options; acme tells whether --acme is given.
func (o *proxyProtoOptions) check(acme bool) error {
	switch {
	case o.from != nil && !o.accept:
		return errors.New("--proxy-protocol-from goes with --accept-proxy-protocol")
	case acme && o.accept:
		// The ACME listener tells the CA's TLS-ALPN-01 connections apart by
		// peeking at the ClientHello on the raw socket, where a PROXY
		// header comes first.
		return errors.New("--acme does not work with --accept-proxy-protocol yet: the CA's tls-alpn-01 validation would come behind a PROXY header")
	}
	return nil
}

// listener returns ln, whose connections start with a PROXY header when
// --accept-proxy-protocol is given: they are then *proxiedConn, and those
// from addresses outside --proxy-protocol-from are closed at once.
func (o *proxyProtoOptions) listener(ln net.Listener, logger *slog.Logger) net.Listener {
	if !o.accept {
		return ln
	}
	return &proxyListener{Listener: ln, from: o.from, logger: logger}
}

// header returns the PROXY header to send to --to for a client at client
// that connected to local, or nil if none is to be sent.
func (o *proxyProtoOptions) header(client, local net.Addr) *proxyproto.Header {
	if o.send == 0 {
		return nil
	}
	return proxyproto.HeaderProxyFromAddrs(o.send, client, local)
}

// sendHeader writes hdr, if not nil, to the upstream connection c.
func sendHeader(c net.Conn, hdr *proxyproto.Header) error {
	if hdr == nil {
		return nil
	}
	if _, err := hdr.WriteTo(c); err != nil {
		return fmt.Errorf("sending the PROXY header: %w", err)
	}
	return nil
}

// proxyListener is a TCP listener whose connections start with a PROXY
// header (proxyListener.Accept).
type proxyListener struct {
	net.Listener
	from   []netip.Prefix
	logger *slog.Logger
}

// Accept returns the next connection from an address of l.from (any if it
// is empty) as a *proxiedConn, which reads the header first. It does not
// read it itself, so as not to hold up the other connections.
func (l *proxyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok && l.trusted(tc.RemoteAddr()) {
			return &proxiedConn{TCPConn: tc}, nil
		}
		l.logger.Warn("connection from outside --proxy-protocol-from closed", "remote", c.RemoteAddr().String())
		c.Close()
	}
}

func (l *proxyListener) trusted(a net.Addr) bool {
	if len(l.from) == 0 {
		return true
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range l.from {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// proxiedConn is an accepted TCP connection that starts with a PROXY
// header. The header is read, by readHeader, on the first Read (or
// WriteTo) and never further: what follows, such as the TLS ClientHello
// that came in the same segment, is left in the socket, so that ktls can
// hand the socket to the kernel. Its other methods are those of the
// *net.TCPConn (SyscallConn among them), except RemoteAddr and LocalAddr,
// which are the client's and the address it connected to once the header
// gave them (a PROXY command with TCP addresses; not LOCAL, as in health
// checks, or UNKNOWN).
type proxiedConn struct {
	*net.TCPConn
	once  sync.Once
	err   error
	addrs atomic.Pointer[[2]net.Addr] // source, destination
}

// readHeader reads and checks the PROXY header once and returns its error.
func (c *proxiedConn) readHeader() error {
	c.once.Do(func() {
		h, err := readProxyHeader(c.TCPConn)
		if err != nil {
			c.err = fmt.Errorf("PROXY protocol header: %w", err)
			return
		}
		if src, dst, ok := h.TCPAddrs(); ok && h.Command.IsProxy() {
			c.addrs.Store(&[2]net.Addr{src, dst})
		}
	})
	return c.err
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if err := c.readHeader(); err != nil {
		return 0, err
	}
	return c.TCPConn.Read(p)
}

// WriteTo reads the header first, then copies the rest to w.
func (c *proxiedConn) WriteTo(w io.Writer) (int64, error) {
	if err := c.readHeader(); err != nil {
		return 0, err
	}
	return c.TCPConn.WriteTo(w)
}

// RemoteAddr returns the client's address given by the header, or the TCP
// peer's until the header is read or when it gives none.
func (c *proxiedConn) RemoteAddr() net.Addr {
	if a := c.addrs.Load(); a != nil {
		return a[0]
	}
	return c.TCPConn.RemoteAddr()
}

// LocalAddr returns the address the client connected to as the header gives
// it, else the TCP connection's.
func (c *proxiedConn) LocalAddr() net.Addr {
	if a := c.addrs.Load(); a != nil {
		return a[1]
	}
	return c.TCPConn.LocalAddr()
}

// acceptHeader reads the PROXY header of c if it is a *proxiedConn, within
// timeout, and returns the TCP connection under it (c itself otherwise),
// with the client's address and the one it connected to.
func acceptHeader(c net.Conn, timeout time.Duration) (tc net.Conn, client, local net.Addr, err error) {
	pc, ok := c.(*proxiedConn)
	if !ok {
		return c, c.RemoteAddr(), c.LocalAddr(), nil
	}
	pc.SetReadDeadline(time.Now().Add(timeout))
	err = pc.readHeader()
	pc.SetReadDeadline(time.Time{})
	return pc.TCPConn, pc.RemoteAddr(), pc.LocalAddr(), err
}

// v1Max is the longest v1 header, CRLF included.
const v1Max = 107

// readProxyHeader reads a PROXY header (v1 or v2) from r and no byte past
// it: it reads the 15 bytes of the shortest header ("PROXY UNKNOWN\r\n";
// v2's fixed part is 16), then for v2 the rest of the fixed part and the
// length it gives, for v1 up to CRLF in steps that cannot pass it. The
// header is then parsed by go-proxyproto. An error wraps
// proxyproto.ErrNoProxyProtocol when r starts with neither signature.
func readProxyHeader(r io.Reader) (*proxyproto.Header, error) {
	b := make([]byte, 15, v1Max)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	more := func(n int) error {
		b = append(b, make([]byte, n)...)
		_, err := io.ReadFull(r, b[len(b)-n:])
		return err
	}
	switch {
	case bytes.HasPrefix(b, proxyproto.SIGV2):
		if err := more(1); err != nil {
			return nil, err
		}
		if err := more(int(binary.BigEndian.Uint16(b[14:16]))); err != nil {
			return nil, err
		}
	case bytes.HasPrefix(b, []byte("PROXY ")):
		for !bytes.HasSuffix(b, []byte("\r\n")) {
			if len(b) >= v1Max {
				return nil, proxyproto.ErrVersion1HeaderTooLong
			}
			// Unless b ends with CR, the CRLF is two bytes away at least.
			n := 2
			if b[len(b)-1] == '\r' || len(b) == v1Max-1 {
				n = 1
			}
			if err := more(n); err != nil {
				return nil, err
			}
		}
	default:
		return nil, proxyproto.ErrNoProxyProtocol
	}
	return proxyproto.Read(bufio.NewReader(bytes.NewReader(b)))
}

// endProxyHeader ends a proxied connection whose PROXY header (with
// --accept-proxy-protocol) was missing, invalid or late.
const endProxyHeader = "proxy_header_error"
