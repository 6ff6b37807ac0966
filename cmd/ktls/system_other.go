//go:build !(linux || freebsd || darwin)

package main

import "runtime"

// system returns the operating system and architecture.
func system() string { return runtime.GOOS + " " + runtime.GOARCH }
