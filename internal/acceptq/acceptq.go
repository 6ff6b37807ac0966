// Package acceptq provides a net.Listener that prepares each connection of
// the listener it wraps in a goroutine of its own (a TLS handshake, a look at
// the ClientHello) before Accept returns it, so that a slow or silent peer
// holds up no other.
package acceptq

import (
	"net"
	"sync"
)

// Listener wraps a net.Listener. A goroutine accepts the wrapped listener's
// connections and gives each to a handler in a goroutine of its own; the
// handler passes on to Accept, with Pass, the connections it does not keep.
type Listener struct {
	net.Listener

	conns chan net.Conn // passed on by the handlers
	errc  chan error    // errors of the wrapped listener's Accept
	done  chan struct{} // closed by Close
	once  sync.Once
	err   error // of closing the wrapped listener
}

// New returns a Listener wrapping ln. Start starts accepting.
func New(ln net.Listener) *Listener {
	return &Listener{Listener: ln,
		conns: make(chan net.Conn), errc: make(chan error), done: make(chan struct{})}
}

// Start starts a goroutine that accepts connections from the wrapped listener
// until l is closed and calls handle with each in a new goroutine. Errors go
// to Accept one at a time, so that the caller's back-off on temporary errors
// paces the loop. If wg is not nil, the accepting goroutine and each handler
// are counted in it from before they start until they return.
func (l *Listener) Start(handle func(net.Conn), wg *sync.WaitGroup) {
	if wg == nil {
		wg = new(sync.WaitGroup) // that no one waits for
	}
	wg.Go(func() {
		for {
			c, err := l.Listener.Accept()
			if err != nil {
				select {
				case l.errc <- err:
					continue
				case <-l.done:
					return
				}
			}
			wg.Go(func() { handle(c) })
		}
	})
}

// Pass hands c on to Accept, or closes it if l is closed first.
func (l *Listener) Pass(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// Done returns a channel that is closed when l is closed.
func (l *Listener) Done() <-chan struct{} {
	return l.done
}

// Accept returns the next connection passed on, or the next error of the
// wrapped listener's Accept; net.ErrClosed once l is closed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the wrapped listener; the connections passed on from then on
// are closed. Only the first call does anything; each returns its error.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.err = l.Listener.Close()
	})
	return l.err
}
