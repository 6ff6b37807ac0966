package kernel

import (
	"strconv"
	"strings"
)

// spliceRXSafeMajor.spliceRXSafeMinor is the first Linux release whose
// tls_sw_splice_read is safe for a copy loop. 5.13 stopped it from taking
// SPLICE_F_NONBLOCK (which equals MSG_PEEK) for a peek that leaves the
// record unconsumed, so that a non-blocking splice returned the same record
// again and again ("tls splice: remove inappropriate flags checking for
// MSG_PEEK"); 5.16 made it read first the records recvmsg had already
// decrypted into rx_list ("tls: splice_read: fix accessing pre-processed
// records") and refuse control records reliably ("tls: splice_read: fix
// record type check"). Stable trees took some of these, but the release
// number cannot tell which, so every older release is taken for unsafe.
const spliceRXSafeMajor, spliceRXSafeMinor = 5, 16

// spliceRXSafeRelease reports whether a Linux kernel of the given release
// (uname -r, such as "6.1.0-28-amd64" or "5.10.0-33-cloud-amd64") splices
// out of a TLS receiving direction correctly. A release it cannot parse is
// unsafe.
func spliceRXSafeRelease(release string) bool {
	major, minor, ok := parseRelease(release)
	if !ok {
		return false
	}
	if major != spliceRXSafeMajor {
		return major > spliceRXSafeMajor
	}
	return minor >= spliceRXSafeMinor
}

// parseRelease returns the major and minor numbers of a Linux release
// string: the leading "major.minor", whatever follows.
func parseRelease(release string) (major, minor int, ok bool) {
	maj, rest, found := strings.Cut(release, ".")
	if !found {
		return 0, 0, false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	var err1, err2 error
	major, err1 = strconv.Atoi(maj)
	minor, err2 = strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil || major < 0 {
		return 0, 0, false
	}
	return major, minor, true
}
