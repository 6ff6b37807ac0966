//go:build !unix

package handshake

import "net"

// peek reports nothing queued: there is no MSG_PEEK here.
func peek(net.Conn, []byte) int { return 0 }
