package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
)

// Socket activation and readiness (systemd, on Linux: systemd_linux.go).
// When systemd passes listening sockets (LISTEN_FDS), serve and proxy
// accept on all of them and bind nothing themselves; the flag of their
// own address (--addr, --listen) must then not be given. With
// NOTIFY_SOCKET they report READY=1 once they listen, RELOADING=1 and
// READY=1 around each SIGHUP reload and STOPPING=1 when a signal stops
// them, and with WatchdogSec= they send WATCHDOG=1.

// listen returns the listening sockets systemd passed, if any, else a new
// TCP listener on addr.
func listen(addr string, logger *slog.Logger) ([]net.Listener, error) {
	if lns, err := systemdListeners(logger); err != nil || lns != nil {
		return lns, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return []net.Listener{ln}, nil
}

// closeListeners closes each of lns.
func closeListeners(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// withSockets returns check followed by the check that the flag name
// (the address to listen on) is not given when systemd passed sockets.
func withSockets(fs *flag.FlagSet, name string, check func(pos []string) error) func(pos []string) error {
	return func(pos []string) error {
		if err := check(pos); err != nil {
			return err
		}
		n := passedSockets()
		if n == 0 {
			return nil
		}
		var err error
		fs.Visit(func(f *flag.Flag) {
			if f.Name == name {
				err = fmt.Errorf("--%s: systemd passed listening sockets to use instead (LISTEN_FDS=%d): drop --%s", name, n, name)
			}
		})
		return err
	}
}
