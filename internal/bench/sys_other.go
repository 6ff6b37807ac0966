//go:build !linux

package bench

// countSyscalls returns -1: only Linux counts system calls per process
// (/proc/self/io).
func countSyscalls(sendfile bool) int64 { return -1 }

// residentSetSize returns -1: the resident set size is read on Linux only.
func residentSetSize() int64 { return -1 }
