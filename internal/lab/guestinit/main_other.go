//go:build !linux

// Command guestinit is the PID 1 of the kernel lab's virtual machines; it
// runs only on Linux guests.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "guestinit: Linux only")
	os.Exit(2)
}
