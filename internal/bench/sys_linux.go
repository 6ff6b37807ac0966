package bench

import (
	"bytes"
	"os"
	"strconv"
)

// countSyscalls returns the number of read- and write-type system calls
// this process has made (syscr + syscw of /proc/self/io: read, readv,
// pread, write, writev, pwrite, sendfile...), or -1 if the kernel does not
// keep the count. sendfile(2) counts in both syscr and syscw; with
// sendfile set only syscw is taken, so that each call counts once. The
// kernel does not count splice(2), sendmsg(2), recvmsg(2) or the runtime's
// epoll and futex calls.
func countSyscalls(sendfile bool) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	var r, w int64 = -1, -1
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(": "))
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			continue
		}
		switch string(k) {
		case "syscr":
			r = n
		case "syscw":
			w = n
		}
	}
	switch {
	case r < 0 || w < 0:
		return -1
	case sendfile:
		return w
	}
	return r + w
}

// residentSetSize returns this process's resident set size (VmRSS of
// /proc/self/status) in bytes, or -1.
func residentSetSize() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) != 2 || string(f[1]) != "kB" {
				return -1
			}
			if n, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
				return n << 10
			}
		}
	}
	return -1
}
