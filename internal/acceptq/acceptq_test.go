package acceptq

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeListener returns from Accept what the test sends on next, until it is
// closed.
type fakeListener struct {
	next   chan accepted
	calls  atomic.Int32 // of Accept
	closed chan struct{}
	once   sync.Once
}

type accepted struct {
	c   net.Conn
	err error
}

var errClose = errors.New("closing failed")

func newFake() *fakeListener {
	return &fakeListener{next: make(chan accepted), closed: make(chan struct{})}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.calls.Add(1)
	select {
	case a := <-f.next:
		return a.c, a.err
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

func (f *fakeListener) Close() error {
	f.once.Do(func() { close(f.closed) })
	return errClose
}

func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

func TestListenerErrorsOneAtATime(t *testing.T) {
	f := newFake()
	l := New(f)
	var wg sync.WaitGroup
	l.Start(func(c net.Conn) { t.Errorf("handler called with %v", c) }, &wg)

	err1, err2 := errors.New("one"), errors.New("two")
	f.next <- accepted{err: err1}
	if _, err := l.Accept(); err != err1 {
		t.Fatalf("Accept: %v; want %v", err, err1)
	}
	f.next <- accepted{err: err2}
	// err2 is never taken: the loop must wait with it, not accept again.
	for range 2 {
		if err := l.Close(); err != errClose {
			t.Errorf("Close: %v; want the wrapped listener's %v", err, errClose)
		}
	}
	wg.Wait()
	if n := f.calls.Load(); n != 2 {
		t.Errorf("the wrapped listener's Accept was called %d times; want 2, one an error", n)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v; want net.ErrClosed", err)
	}
}

func TestListenerPass(t *testing.T) {
	f := newFake()
	l := New(f)
	release := make(chan struct{})
	var handlers sync.WaitGroup
	handlers.Add(2)
	l.Start(func(c net.Conn) {
		defer handlers.Done()
		<-release
		l.Pass(c)
	}, nil)

	early, earlyPeer := net.Pipe()
	f.next <- accepted{c: early}
	release <- struct{}{}
	if c, err := l.Accept(); c != early || err != nil {
		t.Fatalf("Accept: %v, %v; want the connection passed on", c, err)
	}
	late, latePeer := net.Pipe()
	f.next <- accepted{c: late}
	l.Close()
	release <- struct{}{} // late is passed on after Close
	handlers.Wait()

	latePeer.SetReadDeadline(time.Now().Add(time.Minute)) // a safety net
	if _, err := latePeer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("reading the peer of a connection passed on after Close: %v; want io.EOF", err)
	}
	earlyPeer.SetReadDeadline(time.Now())
	if _, err := earlyPeer.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("reading the peer of a connection Accept returned: %v; want it still open", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v; want net.ErrClosed", err)
	}
}
