package kernel

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseTLSStat parses Linux's /proc/net/tls_stat: one counter per line, a
// name and a decimal value separated by white space.
func parseTLSStat(r io.Reader) (map[string]uint64, error) {
	m := make(map[string]uint64)
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("kernel: tls_stat line %d: want name and value, got %q", line, sc.Text())
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("kernel: tls_stat line %d: %w", line, err)
		}
		m[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel: tls_stat: %w", err)
	}
	return m, nil
}

// freebsdTLSGetRecordLen is sizeof(struct tls_get_record) (sys/sys/ktls.h):
// uint8_t tls_type, tls_vmajor, tls_vminor; (1 byte padding) uint16_t
// tls_length, in network byte order.
const freebsdTLSGetRecordLen = 6

// getRecord is FreeBSD's struct tls_get_record, the TLS_GET_RECORD
// control message of recvmsg on a socket with receive offload.
type getRecord struct {
	Type    uint8
	Version uint16 // tls_vmajor<<8 | tls_vminor
	Length  uint16 // plaintext length of the record
}

// parseTLSGetRecord decodes struct tls_get_record.
func parseTLSGetRecord(b []byte) (getRecord, error) {
	if len(b) < freebsdTLSGetRecordLen {
		return getRecord{}, fmt.Errorf("kernel: tls_get_record: %d bytes, want %d", len(b), freebsdTLSGetRecordLen)
	}
	return getRecord{
		Type:    b[0],
		Version: uint16(b[1])<<8 | uint16(b[2]),
		Length:  binary.BigEndian.Uint16(b[4:]),
	}, nil
}

// freebsdModeConf maps FreeBSD's TCP_TLS_MODE_{NONE,SW,IFNET,TOE} onto Conf.
func freebsdModeConf(mode int) Conf {
	switch mode {
	case 0:
		return ConfBase
	case 1:
		return ConfSW
	case 2:
		return ConfHW
	case 3:
		return ConfHWRecord
	}
	return Conf(0)
}

// sysctlValue decodes a FreeBSD sysctl integer of 1, 2, 4 or 8 bytes (bool,
// int, u_int, counter_u64) in host byte order.
func sysctlValue(b []byte) (uint64, bool) {
	ne := binary.NativeEndian
	switch len(b) {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(ne.Uint16(b)), true
	case 4:
		return uint64(ne.Uint32(b)), true
	case 8:
		return ne.Uint64(b), true
	}
	return 0, false
}
