package kernel

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

func TestParseTLSStat(t *testing.T) {
	// As printed by Linux 6.12 (snmp_seq_show_tls_mib: name, tab, value).
	in := "TlsCurrTxSw                     \t1\n" +
		"TlsCurrRxSw                     \t1\n" +
		"TlsCurrTxDevice                 \t0\n" +
		"TlsTxSw                         \t12\n" +
		"TlsDecryptError                 \t18446744073709551615\n" +
		"\n"
	m, err := parseTLSStat(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"TlsCurrTxSw": 1, "TlsCurrRxSw": 1, "TlsCurrTxDevice": 0, "TlsTxSw": 12, "TlsDecryptError": 1<<64 - 1}
	if len(m) != len(want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %d, want %d", k, m[k], v)
		}
	}
	for _, bad := range []string{"TlsTxSw\n", "TlsTxSw 1 2\n", "TlsTxSw -1\n", "TlsTxSw x\n"} {
		if _, err := parseTLSStat(strings.NewReader(bad)); err == nil {
			t.Errorf("parseTLSStat(%q): no error", bad)
		}
	}
}

func TestParseTLSGetRecord(t *testing.T) {
	r, err := parseTLSGetRecord([]byte{21, 3, 3, 0, 0x01, 0x02})
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != 21 || r.Version != 0x0303 || r.Length != 0x0102 {
		t.Errorf("got %+v", r)
	}
	if _, err := parseTLSGetRecord([]byte{21, 3, 3, 0, 1}); err == nil {
		t.Error("short tls_get_record: no error")
	}
}

func TestFreeBSDModeConf(t *testing.T) {
	for mode, want := range map[int]Conf{0: ConfBase, 1: ConfSW, 2: ConfHW, 3: ConfHWRecord, 9: 0} {
		if got := freebsdModeConf(mode); got != want {
			t.Errorf("mode %d: %v, want %v", mode, got, want)
		}
	}
}

func TestSysctlValue(t *testing.T) {
	ne := binary.NativeEndian
	for _, tc := range []struct {
		b    []byte
		want uint64
		ok   bool
	}{
		{[]byte{1}, 1, true},
		{ne.AppendUint16(nil, 513), 513, true},
		{ne.AppendUint32(nil, 16384), 16384, true},
		{ne.AppendUint64(nil, 1<<40), 1 << 40, true},
		{[]byte{1, 2, 3}, 0, false},
	} {
		got, ok := sysctlValue(tc.b)
		if got != tc.want || ok != tc.ok {
			t.Errorf("sysctlValue(%x) = %d, %v; want %d, %v", tc.b, got, ok, tc.want, tc.ok)
		}
	}
}

func TestConfString(t *testing.T) {
	for c, want := range map[Conf]string{0: "none", ConfBase: "base", ConfSW: "sw", ConfHW: "hw", ConfHWRecord: "hw-record", 7: "Conf(7)"} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", uint16(c), got, want)
		}
	}
	if TX.String() != "tx" || RX.String() != "rx" {
		t.Error("Direction.String")
	}
}

func TestDiagRequestLayout(t *testing.T) {
	local := netip.MustParseAddrPort("127.0.0.1:4660")
	remote := netip.MustParseAddrPort("127.0.0.2:80")
	b, err := diagRequest(local, remote, 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	if len(b) != 72 || ne.Uint32(b) != 72 {
		t.Fatalf("length %d, nlmsg_len %d; want 72", len(b), ne.Uint32(b))
	}
	if ne.Uint16(b[4:]) != 20 || ne.Uint16(b[6:]) != 1 || ne.Uint32(b[8:]) != 7 || ne.Uint32(b[12:]) != 0 {
		t.Errorf("nlmsghdr %x", b[:16])
	}
	r := b[16:]
	if r[0] != 2 || r[1] != 6 || r[2] != 2 || r[3] != 0 || ne.Uint32(r[4:]) != 0xffffffff {
		t.Errorf("inet_diag_req_v2 head %x", r[:8])
	}
	id := r[8:]
	want := []byte{0x12, 0x34, 0, 80, 127, 0, 0, 1}
	if string(id[:8]) != string(want) {
		t.Errorf("sport/dport/src %x, want %x", id[:8], want)
	}
	if string(id[20:24]) != "\x7f\x00\x00\x02" {
		t.Errorf("dst %x", id[20:36])
	}
	for _, z := range id[8:20] {
		if z != 0 {
			t.Errorf("src tail not zero: %x", id[4:20])
			break
		}
	}
	if ne.Uint32(id[36:]) != 0 || ne.Uint32(id[40:]) != 0xffffffff || ne.Uint32(id[44:]) != 0xffffffff {
		t.Errorf("if/cookie %x", id[36:48])
	}

	b6, err := diagRequest(netip.MustParseAddrPort("[fe80::1]:1"), netip.MustParseAddrPort("[fe80::2]:2"), 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	r6 := b6[16:]
	if r6[0] != 10 || r6[8+4] != 0xfe || r6[8+19] != 1 || r6[8+35] != 2 || ne.Uint32(r6[8+36:]) != 3 {
		t.Errorf("IPv6 request %x", r6)
	}
	if _, err := diagRequest(local, netip.MustParseAddrPort("[::1]:1"), 0, 1); err == nil {
		t.Error("mixed families: no error")
	}
}

// nlattr builds one netlink attribute, padded to 4 bytes.
func nlattr(typ uint16, v []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u16(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }

// diagAnswer builds a SOCK_DIAG_BY_FAMILY answer for ports sport->dport with
// the given attributes after struct inet_diag_msg.
func diagAnswer(seq uint32, sport, dport uint16, attrs ...[]byte) []byte {
	msg := make([]byte, 72)
	msg[0], msg[1] = 2, 1 // AF_INET, TCP_ESTABLISHED
	binary.BigEndian.PutUint16(msg[4:], sport)
	binary.BigEndian.PutUint16(msg[6:], dport)
	for _, a := range attrs {
		msg = append(msg, a...)
	}
	h := binary.NativeEndian.AppendUint32(nil, uint32(16+len(msg)))
	h = binary.NativeEndian.AppendUint16(h, 20)
	h = binary.NativeEndian.AppendUint16(h, 0)
	h = binary.NativeEndian.AppendUint32(h, seq)
	h = binary.NativeEndian.AppendUint32(h, 0)
	return append(h, msg...)
}

func TestParseDiagResponse(t *testing.T) {
	tlsInfo := nlattr(2|0x8000, concat(
		nlattr(1, u16(0x0304)),
		nlattr(2, u16(CipherAESGCM256)),
		nlattr(3, u16(2)),
		nlattr(4, u16(3)),
		nlattr(5, nil),
		nlattr(6, nil),
		nlattr(9, u16(16384)), // an attribute from a newer kernel
	))
	ulp := nlattr(19, concat(nlattr(1, []byte("tls\x00")), tlsInfo))
	cong := nlattr(4, []byte("cubic\x00"))
	r, err := parseDiagResponse(diagAnswer(5, 1000, 2000, cong, ulp), 5, 1000, 2000)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Version: 0x0304, Cipher: CipherAESGCM256, TX: ConfSW, RX: ConfHW, ZeroCopyTX: true, RXNoPad: true}
	if r.ulp != "tls" || !r.tlsInfo || r.info != want {
		t.Errorf("got %+v, want ulp tls, info %+v", r, want)
	}

	// No ULP at all.
	r, err = parseDiagResponse(diagAnswer(5, 1000, 2000, cong), 5, 1000, 2000)
	if err != nil || r.ulp != "" || r.tlsInfo {
		t.Errorf("plain socket: %+v, %v", r, err)
	}
	// The ULP name without TLS details (no CAP_NET_ADMIN on newer kernels).
	r, err = parseDiagResponse(diagAnswer(5, 1000, 2000, nlattr(19, nlattr(1, []byte("tls\x00")))), 5, 1000, 2000)
	if err != nil || r.ulp != "tls" || r.tlsInfo {
		t.Errorf("unprivileged: %+v, %v", r, err)
	}
	// Wrong socket.
	if _, err := parseDiagResponse(diagAnswer(5, 1000, 2001), 5, 1000, 2000); err == nil {
		t.Error("wrong ports: no error")
	}
	// A stale answer with another sequence number, then ours.
	resp := append(diagAnswer(4, 1, 2), diagAnswer(5, 1000, 2000, ulp)...)
	if r, err := parseDiagResponse(resp, 5, 1000, 2000); err != nil || r.info != want {
		t.Errorf("stale answer first: %+v, %v", r, err)
	}
	// A netlink error: ENOENT (no such socket).
	e := binary.NativeEndian.AppendUint32(nil, 36)
	e = binary.NativeEndian.AppendUint16(e, 2)
	e = binary.NativeEndian.AppendUint16(e, 0)
	e = binary.NativeEndian.AppendUint32(e, 5)
	e = binary.NativeEndian.AppendUint32(e, 0)
	e = binary.NativeEndian.AppendUint32(e, uint32(0xffffffff-uint32(syscall.ENOENT)+1))
	e = append(e, make([]byte, 16)...)
	if _, err := parseDiagResponse(e, 5, 1000, 2000); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("netlink error: %v, want ENOENT", err)
	}
	// Malformed input never panics.
	full := diagAnswer(5, 1000, 2000, cong, ulp)
	for i := range full {
		parseDiagResponse(full[:i], 5, 1000, 2000)
	}
	bad := append([]byte(nil), full...)
	binary.NativeEndian.PutUint16(bad[16+72:], 200) // attribute longer than the message
	if _, err := parseDiagResponse(bad, 5, 1000, 2000); err == nil {
		t.Error("bad attribute length: no error")
	}
}

func FuzzParseDiagResponse(f *testing.F) {
	f.Add(diagAnswer(1, 1, 2, nlattr(19, nlattr(2, nlattr(3, u16(2))))))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseDiagResponse(b, 1, 1, 2)
	})
}

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}
