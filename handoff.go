package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
)

// handOff moves the connection off crypto/tls: it derives the sessions of
// both directions and installs each one in the kernel or in the user-space
// record layer, per policy. After it, nothing touches the tls.Conn's record
// layer again.
func (c *Conn) handOff() error {
	st := c.tls.ConnectionState()
	txPol, rxPol := c.config.policy()
	if _, ok := record.CipherOf(st.CipherSuite); !ok || txPol == OffloadOff || rxPol == OffloadOff {
		if !ok && (txPol == OffloadKernel || rxPol == OffloadKernel) {
			c.hc.Detach()
			return fmt.Errorf("ktls: cipher suite %s cannot be offloaded", tls.CipherSuiteName(st.CipherSuite))
		}
		switch {
		case ok:
			counters.fbOff.Add(1)
		case strings.Contains(tls.CipherSuiteName(st.CipherSuite), "_CBC_") && !CBCEnabled():
			counters.fbCBC.Add(1)
		default:
			counters.fbCipher.Add(1)
		}
		c.hc.Passthrough()
		return nil
	}
	if c.isClient && st.Version == tls.VersionTLS13 && c.clientConfig.ClientSessionCache != nil && !c.clientConfig.SessionTicketsDisabled {
		n, err := c.hc.ReadTickets(c.tls, st.CipherSuite)
		c.ticketsRead = n
		if err != nil {
			c.hc.Detach()
			return err
		}
	}
	c.hc.Detach()
	c.state = c.tls.ConnectionState()
	c.txSecret, c.rxSecret = c.hc.TrafficSecrets()
	tx, rx, err := c.hc.Sessions(st.Version, st.CipherSuite)
	if err != nil {
		if txPol == OffloadKernel || rxPol == OffloadKernel {
			return err
		}
		// Nothing was read or written since the handshake: crypto/tls
		// can carry on.
		counters.fbSecrets.Add(1)
		c.wipeSecrets()
		c.hc.Passthrough()
		return nil
	}
	defer tx.Wipe()
	defer rx.Wipe()
	if c.isClient && st.Version == tls.VersionTLS13 && c.clientConfig.ClientSessionCache != nil && !c.clientConfig.SessionTicketsDisabled {
		if c.tickets, err = record.NewSealer(rx); err != nil {
			return err
		}
	}

	txKernel, err := c.wantKernel(txPol, st.Version)
	if err != nil {
		return err
	}
	rxKernel, err := c.wantKernel(rxPol, st.Version)
	if err != nil {
		return err
	}
	attached := false
	if txKernel || rxKernel {
		err := c.attach()
		if err != nil && (txPol == OffloadKernel || rxPol == OffloadKernel) {
			return err
		}
		if err != nil {
			counters.fbUnsupported.Add(1) // not a socket, or the kernel refused
		}
		attached = err == nil
	}
	if c.txMode, err = c.install(kernel.TX, tx, txPol, attached && txKernel); err != nil {
		return err
	}
	c.rxMode, err = c.install(kernel.RX, rx, rxPol, attached && rxKernel)
	return err
}

// wipeOnClose clears the kept traffic secrets of the directions not in use
// (a Read or Write blocked on the socket returns soon after Close anyway;
// its secret is then left to the garbage collector).
func (c *Conn) wipeOnClose() {
	if c.in.TryLock() {
		clear(c.rxSecret)
		c.rxSecret = nil
		c.in.Unlock()
	}
	if c.out.TryLock() {
		clear(c.txSecret)
		c.txSecret = nil
		c.out.Unlock()
	}
}

// wipeSecrets clears the kept traffic secrets.
func (c *Conn) wipeSecrets() {
	clear(c.txSecret)
	clear(c.rxSecret)
	c.txSecret, c.rxSecret = nil, nil
}

// install puts one direction's session in the kernel (when useKernel: the
// socket is attached and the policy asks for it) or in the user-space record
// layer, and returns the direction's mode. With policy OffloadAuto a kernel
// that refuses the session (old kernel, suite not built in) is not an error.
func (c *Conn) install(d kernel.Direction, s *record.Session, p Offload, useKernel bool) (Mode, error) {
	if useKernel {
		err := kernel.Enable(c.rc, d, s)
		if err == nil {
			c.setKernelOptions(d, s.Version)
			return ModeKernel, nil
		}
		if p == OffloadKernel {
			return ModeNone, err
		}
		counters.fbUnsupported.Add(1)
	}
	if d == kernel.TX {
		sealer, err := record.NewSealer(s)
		if err != nil {
			return ModeNone, err
		}
		c.out.w = record.NewWriter(c.conn, sealer)
	} else {
		opener, err := record.NewOpener(s)
		if err != nil {
			return ModeNone, err
		}
		c.in.r = record.NewReader(c.conn, opener)
	}
	return ModeUser, nil
}

// wantKernel reports whether a direction with policy p should try the
// kernel, counting why OffloadAuto does not. OffloadKernel fails while the
// kernel is switched off (SetKernelEnabled).
func (c *Conn) wantKernel(p Offload, version uint16) (bool, error) {
	switch p {
	case OffloadKernel:
		if !KernelEnabled() {
			return false, errors.New("ktls: kernel TLS is switched off (SetKernelEnabled(false), KTLS_ENABLE=0)")
		}
		return true, nil
	case OffloadAuto:
		switch {
		case !KernelEnabled():
			counters.fbDisabled.Add(1)
		case kernel.Supported() != nil:
			counters.fbUnsupported.Add(1)
		case version == tls.VersionTLS13 && !c.config.kernelWithoutRekey() && kernel.Rekey() != nil:
			counters.fbRekey.Add(1)
		default:
			return true, nil
		}
	}
	return false, nil
}

// attach attaches the kernel's TLS to the socket (Linux TCP_ULP "tls").
func (c *Conn) attach() error {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("ktls: %T is not a socket: %w", c.conn, errors.ErrUnsupported)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	if err := kernel.Attach(rc); err != nil {
		return err
	}
	c.rc = rc
	return nil
}
