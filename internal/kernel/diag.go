package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// Linux sock_diag constants (include/uapi/linux/netlink.h, sock_diag.h,
// inet_diag.h, tls.h). They are plain numbers so that the message layouts
// can be built and tested on every OS.
const (
	nlmsgHdrLen       = 16
	nlmsgError        = 2
	nlmsgDone         = 3
	nlmFRequest       = 0x1
	sockDiagByFamily  = 20
	inetDiagReqV2Len  = 56
	inetDiagMsgLen    = 72
	inetDiagInfo      = 2  // INET_DIAG_INFO: its bit in idiag_ext asks for the aux (ULP) attributes
	inetDiagULPInfo   = 19 // INET_DIAG_ULP_INFO
	inetULPInfoName   = 1  // INET_ULP_INFO_NAME
	inetULPInfoTLS    = 2  // INET_ULP_INFO_TLS
	tlsInfoVersion    = 1  // TLS_INFO_VERSION
	tlsInfoCipher     = 2  // TLS_INFO_CIPHER
	tlsInfoTXConf     = 3  // TLS_INFO_TXCONF
	tlsInfoRXConf     = 4  // TLS_INFO_RXCONF
	tlsInfoZCROTX     = 5  // TLS_INFO_ZC_RO_TX
	tlsInfoRXNoPad    = 6  // TLS_INFO_RX_NO_PAD
	nlaTypeMask       = 0x3fff
	afInet            = 2
	afInet6           = 10
	ipprotoTCP        = 6
	inetDiagNoCookie  = 0xffffffff
	diagAllTCPStates  = 0xffffffff
	diagSockIDOffset  = 8 // offset of struct inet_diag_sockid in inet_diag_req_v2
	diagMsgIDOffset   = 4 // offset of struct inet_diag_sockid in inet_diag_msg
	diagSockIDAddrLen = 16
)

// diagRequest returns a netlink SOCK_DIAG_BY_FAMILY request (nlmsghdr +
// struct inet_diag_req_v2) for the one TCP socket whose local address is
// local and whose peer is remote, asking for the INET_DIAG_INFO extension
// (which carries INET_DIAG_ULP_INFO). The cookie is INET_DIAG_NOCOOKIE, so
// the kernel looks the socket up by its 4-tuple alone; ifindex is the
// interface of a link-local IPv6 socket (its scope id), else 0.
func diagRequest(local, remote netip.AddrPort, ifindex, seq uint32) ([]byte, error) {
	if local.Addr().Is4() != remote.Addr().Is4() {
		return nil, fmt.Errorf("kernel: sock_diag: mixed address families %v and %v", local, remote)
	}
	b := make([]byte, nlmsgHdrLen+inetDiagReqV2Len)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], sockDiagByFamily)
	ne.PutUint16(b[6:], nlmFRequest)
	ne.PutUint32(b[8:], seq)
	r := b[nlmsgHdrLen:]
	r[0] = afInet6
	if local.Addr().Is4() {
		r[0] = afInet
	}
	r[1] = ipprotoTCP
	r[2] = 1 << (inetDiagInfo - 1)
	ne.PutUint32(r[4:], diagAllTCPStates)
	id := r[diagSockIDOffset:]
	binary.BigEndian.PutUint16(id[0:], local.Port())
	binary.BigEndian.PutUint16(id[2:], remote.Port())
	putDiagAddr(id[4:4+diagSockIDAddrLen], local.Addr())
	putDiagAddr(id[20:20+diagSockIDAddrLen], remote.Addr())
	ne.PutUint32(id[36:], ifindex)
	ne.PutUint32(id[40:], inetDiagNoCookie)
	ne.PutUint32(id[44:], inetDiagNoCookie)
	return b, nil
}

// putDiagAddr stores a in the __be32[4] address field of inet_diag_sockid:
// an IPv4 address in the first 4 bytes, an IPv6 address in all 16.
func putDiagAddr(dst []byte, a netip.Addr) {
	if a.Is4() {
		a4 := a.As4()
		copy(dst, a4[:])
		return
	}
	a16 := a.As16()
	copy(dst, a16[:])
}

// diagResult is what a SOCK_DIAG_BY_FAMILY answer says about one socket.
type diagResult struct {
	ulp     string // INET_ULP_INFO_NAME, "" without a ULP
	tlsInfo bool   // INET_ULP_INFO_TLS was present (needs CAP_NET_ADMIN)
	info    Info
}

// parseDiagResponse parses the kernel's answer to diagRequest: netlink
// messages holding either an error or one struct inet_diag_msg followed by
// its attributes. It checks that the answer is for the socket with the given
// local and remote ports.
func parseDiagResponse(b []byte, seq uint32, localPort, remotePort uint16) (diagResult, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return diagResult{}, errors.New("kernel: sock_diag: short netlink header")
		}
		l := int(ne.Uint32(b[0:]))
		if l < nlmsgHdrLen || l > len(b) {
			return diagResult{}, fmt.Errorf("kernel: sock_diag: bad netlink message length %d", l)
		}
		typ := ne.Uint16(b[4:])
		mseq := ne.Uint32(b[8:])
		msg := b[nlmsgHdrLen:l]
		next := nlAlign(l)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
		if mseq != seq {
			continue // not ours (a stale answer)
		}
		switch typ {
		case nlmsgError:
			if len(msg) < 4 {
				return diagResult{}, errors.New("kernel: sock_diag: short netlink error")
			}
			code := int32(ne.Uint32(msg))
			if code == 0 {
				continue // an acknowledgement
			}
			return diagResult{}, &diagError{syscall.Errno(-code)}
		case nlmsgDone:
			return diagResult{}, &diagError{syscall.ENOENT}
		case sockDiagByFamily:
			if len(msg) < inetDiagMsgLen {
				return diagResult{}, errors.New("kernel: sock_diag: short inet_diag_msg")
			}
			id := msg[diagMsgIDOffset:]
			if sp, dp := binary.BigEndian.Uint16(id[0:]), binary.BigEndian.Uint16(id[2:]); sp != localPort || dp != remotePort {
				return diagResult{}, fmt.Errorf("kernel: sock_diag: answer for ports %d->%d, asked for %d->%d", sp, dp, localPort, remotePort)
			}
			return parseDiagAttrs(msg[inetDiagMsgLen:])
		}
	}
	return diagResult{}, errors.New("kernel: sock_diag: no answer")
}

// diagError is a netlink error answer; it unwraps to the errno.
type diagError struct{ errno syscall.Errno }

func (e *diagError) Error() string { return "kernel: sock_diag: " + e.errno.Error() }
func (e *diagError) Unwrap() error { return e.errno }

// parseDiagAttrs reads the attributes after struct inet_diag_msg, looking
// for INET_DIAG_ULP_INFO.
func parseDiagAttrs(b []byte) (diagResult, error) {
	var r diagResult
	err := walkAttrs(b, func(typ uint16, v []byte) error {
		if typ != inetDiagULPInfo {
			return nil
		}
		return walkAttrs(v, func(typ uint16, v []byte) error {
			switch typ {
			case inetULPInfoName:
				r.ulp = cString(v)
			case inetULPInfoTLS:
				r.tlsInfo = true
				return parseTLSInfo(v, &r.info)
			}
			return nil
		})
	})
	return r, err
}

// parseTLSInfo reads the TLS_INFO_* attributes nested in INET_ULP_INFO_TLS.
func parseTLSInfo(b []byte, info *Info) error {
	return walkAttrs(b, func(typ uint16, v []byte) error {
		u16 := func() (uint16, error) {
			if len(v) < 2 {
				return 0, fmt.Errorf("kernel: sock_diag: TLS attribute %d: short value", typ)
			}
			return binary.NativeEndian.Uint16(v), nil
		}
		var err error
		switch typ {
		case tlsInfoVersion:
			info.Version, err = u16()
		case tlsInfoCipher:
			info.Cipher, err = u16()
		case tlsInfoTXConf:
			var c uint16
			c, err = u16()
			info.TX = Conf(c)
		case tlsInfoRXConf:
			var c uint16
			c, err = u16()
			info.RX = Conf(c)
		case tlsInfoZCROTX:
			info.ZeroCopyTX = true
		case tlsInfoRXNoPad:
			info.RXNoPad = true
		}
		return err
	})
}

// walkAttrs calls f for each netlink attribute (struct nlattr) in b.
func walkAttrs(b []byte, f func(typ uint16, v []byte) error) error {
	ne := binary.NativeEndian
	for len(b) >= 4 {
		l := int(ne.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return fmt.Errorf("kernel: sock_diag: bad attribute length %d", l)
		}
		if err := f(ne.Uint16(b[2:])&nlaTypeMask, b[4:l]); err != nil {
			return err
		}
		next := nlAlign(l)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
	}
	return nil
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
