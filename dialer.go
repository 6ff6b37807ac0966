package ktls

import (
	"context"
	"net"
)

// Dialer dials ktls connections given a configuration and a net.Dialer for
// the underlying TCP connection, as tls.Dialer does for crypto/tls. Its
// DialContext fits http.Transport.DialTLSContext and other places that take
// a dial function.
type Dialer struct {
	// NetDialer is the optional dialer of the underlying TCP connections.
	// Its Timeout and Deadline bound the connection and the handshake
	// together, as for tls.Dialer. nil is the net.Dialer zero value.
	NetDialer *net.Dialer

	// Config is the configuration of new connections: the handshake's
	// tls.Config and the offload policy of each direction. nil is the zero
	// Config. If Config.TLS.ServerName is empty, the host of the dialed
	// address is used.
	Config *Config
}

// Dial connects to addr on the named network and runs the handshake. The
// returned net.Conn, if any, is always a *Conn, whose Mode tells where each
// direction's records went.
//
// Dial uses context.Background internally; to specify the context, use
// DialContext.
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialContext connects to addr on the named network and runs the handshake.
// ctx must be non-nil; if it expires before the handshake is complete, an
// error is returned. Once the handshake is done, ctx has no effect on the
// connection. The returned net.Conn, if any, is always a *Conn.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.dial(ctx, network, addr)
	if err != nil {
		// Not a typed nil in an interface.
		return nil, err
	}
	return c, nil
}

// dial is DialContext returning the *Conn.
func (d *Dialer) dial(ctx context.Context, network, addr string) (*Conn, error) {
	nd := d.NetDialer
	if nd == nil {
		nd = new(net.Dialer)
	}
	if nd.Timeout != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, nd.Timeout)
		defer cancel()
	}
	if !nd.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, nd.Deadline)
		defer cancel()
	}
	raw, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	c := newClient(raw, d.Config, host)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}
