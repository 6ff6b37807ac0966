//go:build !linux && !freebsd

package main

// nicOffload reports nothing where NIC TLS offload is not known.
func nicOffload() []nicReport { return nil }

// sysctls returns no settings here.
func sysctls() map[string]string { return nil }

// enableHint says how to get kernel TLS when Supported fails.
const enableHint = "kernel TLS exists on Linux (CONFIG_TLS) and FreeBSD (ktls(4)) only"
