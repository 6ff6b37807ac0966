//go:build !unix

package main

import (
	"errors"
	"net"
)

// peekRecord is unsupported here: --acme connections all go to ktls, and
// TLS-ALPN-01 challenges are not answered.
func peekRecord(net.Conn) ([]byte, error) { return nil, errors.ErrUnsupported }
