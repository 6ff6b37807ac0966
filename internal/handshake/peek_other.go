//go:build !unix

package handshake

import "net"

// peek reports nothing queued: there is no MSG_PEEK here.
func peek(net.Conn, []byte) int { return 0 }

// peekWait reports nothing queued: the caller reads record by record.
func peekWait(net.Conn, []byte) (int, error) { return 0, nil }
