//go:build !linux

package main

import (
	"context"
	"log/slog"
	"net"
)

// passedSockets returns 0: socket activation is for Linux (systemd) only.
func passedSockets() int { return 0 }

// systemdListeners returns nil: socket activation is for Linux only.
func systemdListeners(*slog.Logger) ([]net.Listener, error) { return nil, nil }

// sdReady does nothing: sd_notify is for Linux only.
func sdReady(*slog.Logger) {}

// sdStopping does nothing.
func sdStopping(*slog.Logger) {}

// sdReload runs reload.
func sdReload(_ *slog.Logger, reload func()) { reload() }

// sdWatchdog does nothing.
func sdWatchdog(context.Context, *slog.Logger) {}
