//go:build !linux

package main

import "net"

// peerClosed reports false: the attach-after-FIN rule is Linux's.
func peerClosed(*net.TCPConn) bool { return false }
