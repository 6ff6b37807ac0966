//go:build linux || freebsd || darwin

package main

import "golang.org/x/sys/unix"

// system returns the kernel's name, release and machine, as uname -srm.
func system() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown: " + err.Error()
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
}
