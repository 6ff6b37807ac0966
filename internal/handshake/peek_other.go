//go:build !unix

package handshake

import "net"

// peeker has nothing to peek with: there is no MSG_PEEK here.
type peeker struct{}

// peek reports nothing queued.
func (*peeker) peek(net.Conn, []byte) int { return 0 }

// peekWait reports nothing queued: the caller reads record by record.
func (*peeker) peekWait(net.Conn, []byte) (int, error) { return 0, nil }
