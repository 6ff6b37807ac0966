//go:build unix

package handshake

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peeker looks at what is queued in a socket's receive buffer (recv with
// MSG_PEEK|MSG_DONTWAIT) without allocating: the socket's RawConn and the
// callback it runs are made on first use and kept for the connection.
type peeker struct {
	rc      syscall.RawConn    // the socket's; nil before the first peek
	notSock bool               // the conn is not a socket
	fn      func(uintptr) bool // pk.recv, made once
	p       []byte             // the current peek's buffer
	n       int
	err     error
	wait    bool // wait until readable (retry on EAGAIN)
}

// rawConn returns the socket's RawConn, or nil when c is not a socket.
func (pk *peeker) rawConn(c net.Conn) syscall.RawConn {
	if pk.rc == nil && !pk.notSock {
		sc, ok := c.(syscall.Conn)
		if ok {
			pk.rc, _ = sc.SyscallConn()
		}
		if pk.rc == nil {
			pk.notSock = true
			return nil
		}
		pk.fn = pk.recv
	}
	return pk.rc
}

// recv is the RawConn.Read callback of a peek.
func (pk *peeker) recv(fd uintptr) bool {
	pk.n, pk.err = recvPeek(int(fd), pk.p)
	return !pk.wait || pk.err != unix.EAGAIN
}

// do runs one peek into p.
func (pk *peeker) do(c net.Conn, p []byte, wait bool) (n int, rerr, err error) {
	rc := pk.rawConn(c)
	if rc == nil || len(p) == 0 {
		return 0, nil, nil
	}
	pk.p, pk.wait = p, wait
	err = rc.Read(pk.fn)
	n, rerr = pk.n, pk.err
	pk.p, pk.n, pk.err = nil, 0, nil
	return n, rerr, err
}

// peek copies what is queued in c's receive buffer into p without taking it
// off the queue and without waiting (recv with MSG_PEEK|MSG_DONTWAIT). It
// returns 0 when nothing is queued or c is not a socket.
func (pk *peeker) peek(c net.Conn, p []byte) int {
	n, rerr, err := pk.do(c, p, false)
	if err != nil || rerr != nil || n < 0 {
		return 0
	}
	return n
}

// peekWait waits until c is readable (or its read deadline passes) and then
// copies what is queued into p without taking it off the queue. It returns
// 0 and no error when c is not a socket or the peek fails; the caller then
// reads normally and meets any error there.
func (pk *peeker) peekWait(c net.Conn, p []byte) (int, error) {
	n, rerr, err := pk.do(c, p, true)
	if err != nil {
		return 0, err
	}
	if rerr != nil || n < 0 {
		return 0, nil
	}
	return n, nil
}
