package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// passedSockets returns how many sockets systemd passed to this process
// (socket activation: LISTEN_FDS, for the process LISTEN_PID names), 0 if
// none.
func passedSockets() int {
	if pid, err := strconv.Atoi(os.Getenv("LISTEN_PID")); err != nil || pid != os.Getpid() {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// systemdListeners returns a listener for each socket systemd passed
// (socket activation), in order, or nil if it passed none. Each must be a
// listening TCP socket. It takes the sockets once: the LISTEN_*
// variables are removed from the environment.
func systemdListeners(logger *slog.Logger) ([]net.Listener, error) {
	files := activation.Files(true)
	var lns []net.Listener
	var err error
	for i, f := range files {
		fd := listenFDsStart + i
		var ln net.Listener
		if err == nil {
			ln, err = fileListener(f, fd)
		}
		f.Close()
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		logger.Info("listening on a socket from systemd", "fd", fd, "name", f.Name(), "addr", ln.Addr().String())
	}
	if err != nil {
		closeListeners(lns)
		return nil, err
	}
	return lns, nil
}

// listenFDsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// errNotTCPListener is the error for a passed socket (or file) that is not
// a listening TCP socket.
var errNotTCPListener = errors.New("not a listening TCP socket")

// fileListener returns a listener on a dup of the socket f (descriptor
// fd), which must be a listening TCP socket: its connections are then
// *net.TCPConn, which kernel TLS needs. (f.Fd is not called: it would make
// the socket, shared with the dup, blocking.)
func fileListener(f *os.File, fd int) (net.Listener, error) {
	fail := func(err error) (net.Listener, error) {
		return nil, fmt.Errorf("socket from systemd, fd %d (%s): %w: %w", fd, f.Name(), errNotTCPListener, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fail(err)
	}
	var domain, typ, proto, listening int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		get := func(opt int) (v int) {
			if serr == nil {
				v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt)
			}
			return v
		}
		domain, typ, proto, listening = get(unix.SO_DOMAIN), get(unix.SO_TYPE), get(unix.SO_PROTOCOL), get(unix.SO_ACCEPTCONN)
	}); err != nil {
		return fail(err)
	}
	switch {
	case serr != nil:
		return fail(fmt.Errorf("getsockopt: %w", serr)) // ENOTSOCK: not a socket
	case domain != unix.AF_INET && domain != unix.AF_INET6:
		return fail(fmt.Errorf("address family %d, not IPv4 or IPv6", domain))
	case typ != unix.SOCK_STREAM || proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_MPTCP:
		// MPTCP, as Go's own listeners since Go 1.24: a connection from
		// a client without MPTCP is plain TCP.
		return fail(errors.New("not TCP (in the .socket unit: ListenStream=)"))
	case listening == 0:
		return fail(errors.New("not listening"))
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return fail(err)
	}
	if _, ok := ln.(*net.TCPListener); !ok {
		ln.Close()
		return fail(fmt.Errorf("%T", ln))
	}
	return ln, nil
}

// sdNotify sends state to the service manager (sd_notify: the datagram
// socket NOTIFY_SOCKET names); without NOTIFY_SOCKET it does nothing.
func sdNotify(logger *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		logger.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// sdReady tells the service manager that the service is up: after its
// start, when it listens, and after a reload.
func sdReady(logger *slog.Logger) { sdNotify(logger, daemon.SdNotifyReady) }

// sdStopping tells the service manager that the service is stopping.
func sdStopping(logger *slog.Logger) { sdNotify(logger, daemon.SdNotifyStopping) }

// sdReload runs reload between RELOADING=1 (with MONOTONIC_USEC, as
// Type=notify-reload wants) and READY=1.
func sdReload(logger *slog.Logger, reload func()) {
	sdNotify(logger, daemon.SdNotifyReloading+"\n"+daemon.SdNotifyMonotonicUsec())
	reload()
	sdReady(logger)
}

// sdWatchdog sends WATCHDOG=1 every half of the watchdog interval when
// systemd set one for this process (WatchdogSec=: WATCHDOG_USEC), until
// ctx ends.
func sdWatchdog(ctx context.Context, logger *slog.Logger) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		logger.Warn("systemd watchdog", "err", err)
	}
	if d <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(d / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sdNotify(logger, daemon.SdNotifyWatchdog)
			}
		}
	}()
}
