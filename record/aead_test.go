package record

import (
	"bytes"
	"crypto/tls"
	"errors"
	"math"
	"syscall"
	"testing"
)

// allSuites is every version and suite combination, one per AEAD.
var allSuites = []struct {
	version, suite uint16
}{
	{VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
	{VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
	{VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
	{VersionTLS13, tls.TLS_AES_128_GCM_SHA256},
	{VersionTLS13, tls.TLS_AES_256_GCM_SHA384},
	{VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256},
}

func pair(t testing.TB, version, suite uint16) (*Sealer, *Opener) {
	t.Helper()
	s := testSession(version, suite)
	sl, err := NewSealer(s)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener(s)
	if err != nil {
		t.Fatal(err)
	}
	return sl, o
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, st := range allSuites {
		sl, o := pair(t, st.version, st.suite)
		name := tls.CipherSuiteName(st.suite)
		for _, n := range []int{0, 1, 100, MaxPlaintext - 1, MaxPlaintext} {
			for _, typ := range []ContentType{TypeApplicationData, TypeAlert, TypeHandshake} {
				payload := bytes.Repeat([]byte{byte(n)}, n)
				seq := sl.Seq()
				rec, err := sl.Seal([]byte("prefix"), typ, payload)
				if err != nil {
					t.Fatal(err)
				}
				rec = rec[len("prefix"):]
				if len(rec) != n+sl.Overhead() {
					t.Errorf("%s: record of %d bytes for %d payload, overhead %d", name, len(rec), n, sl.Overhead())
				}
				wantOuter := typ
				if st.version == VersionTLS13 {
					wantOuter = TypeApplicationData
				}
				h, err := ParseHeader(rec, st.version)
				if err != nil || h.Type != wantOuter || h.Version != 0x0303 || h.Length != len(rec)-HeaderLen {
					t.Errorf("%s: header %+v, %v", name, h, err)
				}
				if st.version == VersionTLS12 && len(rec) == n+29 && !bytes.Equal(rec[5:13], seqBytes(seq)) {
					t.Errorf("%s: explicit nonce %x, want seq %d", name, rec[5:13], seq)
				}
				gotTyp, pt, err := o.Open(rec)
				if err != nil || gotTyp != typ || !bytes.Equal(pt, payload) {
					t.Fatalf("%s n=%d %v: got %v %d bytes, %v", name, n, typ, gotTyp, len(pt), err)
				}
				ptStart := len(rec) - tagLen - len(pt)
				if st.version == VersionTLS13 {
					ptStart--
				}
				if len(pt) > 0 && &pt[0] != &rec[ptStart] {
					t.Errorf("%s: plaintext does not alias the record", name)
				}
			}
		}
		if sl.Seq() != o.Seq() || sl.Seq() != testSession(st.version, st.suite).Seq+15 {
			t.Errorf("%s: seq %d / %d", name, sl.Seq(), o.Seq())
		}
	}
}

// TestOpenTLS13Padding opens TLS 1.3 records with zero padding and rejects
// an all-zero inner plaintext and bad inner types.
func TestOpenTLS13Padding(t *testing.T) {
	for _, tc := range []struct {
		inner   []byte
		typ     ContentType
		payload []byte
		alert   Alert
	}{
		{[]byte{'h', 'i', 23, 0, 0, 0}, TypeApplicationData, []byte("hi"), 0},
		{append([]byte{22}, make([]byte, 300)...), TypeHandshake, []byte{}, 0},
		{append([]byte{1, 0, 21}, make([]byte, MaxPlaintext-2)...), TypeAlert, []byte{1, 0}, 0},
		{make([]byte, 10), 0, nil, AlertUnexpectedMessage},          // all zeros
		{nil, 0, nil, AlertUnexpectedMessage},                       // empty inner plaintext
		{[]byte{'x', 99, 0}, 0, nil, AlertUnexpectedMessage},        // unknown inner type
		{[]byte{1, 20}, 0, nil, AlertUnexpectedMessage},             // protected change_cipher_spec
		{make([]byte, MaxPlaintext+2), 0, nil, AlertRecordOverflow}, // inner plaintext over 2^14+1
	} {
		sl, o := pair(t, VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
		rec := sealInner13(sl, tc.inner)
		typ, pt, err := o.Open(rec)
		if tc.alert == 0 {
			if err != nil || typ != tc.typ || !bytes.Equal(pt, tc.payload) {
				t.Errorf("inner %x...: %v %x %v", tc.inner[:min(len(tc.inner), 8)], typ, pt, err)
			}
			continue
		}
		var re *Error
		if !errors.As(err, &re) || re.Alert != tc.alert {
			t.Errorf("inner %x...: err %v, want alert %v", tc.inner[:min(len(tc.inner), 8)], err, tc.alert)
		}
		if o.Seq() != 0x0102030405060708 {
			t.Errorf("seq advanced on a bad record")
		}
	}
}

// sealInner13 protects an arbitrary TLS 1.3 inner plaintext with the
// Sealer's keys, bypassing Seal's checks.
func sealInner13(sl *Sealer, inner []byte) []byte {
	p := &sl.p
	n := len(inner) + tagLen
	rec := []byte{23, 3, 3, byte(n >> 8), byte(n)}
	return p.aead.Seal(rec, p.setNonce(nil), inner, rec[:HeaderLen])
}

// alertOf checks that err is an *Error with the errno and alert.
func checkErr(t *testing.T, what string, err error, errno error, alert Alert) {
	t.Helper()
	var re *Error
	if !errors.As(err, &re) || !errors.Is(err, errno) || re.Alert != alert {
		t.Errorf("%s: got %v, want %v with alert %v", what, err, errno, alert)
	}
}

func TestOpenBadRecords(t *testing.T) {
	for _, st := range allSuites {
		name := tls.CipherSuiteName(st.suite)
		sl, _ := pair(t, st.version, st.suite)
		good, _ := sl.Seal(nil, TypeApplicationData, []byte("payload"))
		max := maxCiphertext(st.version)
		bad := map[string]struct {
			rec   []byte
			errno error
			alert Alert
		}{}
		mut := func(name string, errno error, alert Alert, f func(r []byte) []byte) {
			bad[name] = struct {
				rec   []byte
				errno error
				alert Alert
			}{f(bytes.Clone(good)), errno, alert}
		}
		mut("version 0x0301", syscall.EINVAL, AlertProtocolVersion, func(r []byte) []byte { r[2] = 1; return r })
		mut("version 0x0304", syscall.EINVAL, AlertProtocolVersion, func(r []byte) []byte { r[2] = 4; return r })
		mut("version 0x0203", syscall.EINVAL, AlertProtocolVersion, func(r []byte) []byte { r[1] = 2; return r })
		mut("unknown type", syscall.EINVAL, AlertUnexpectedMessage, func(r []byte) []byte { r[0] = 24; return r })
		mut("type 0", syscall.EINVAL, AlertUnexpectedMessage, func(r []byte) []byte { r[0] = 0; return r })
		mut("length over protocol limit", syscall.EMSGSIZE, AlertRecordOverflow, func(r []byte) []byte {
			return withLength(r, max+1)
		})
		mut("length over AEAD limit", syscall.EMSGSIZE, AlertRecordOverflow, func(r []byte) []byte {
			return withLength(r, sl.Overhead()-HeaderLen+MaxPlaintext+1)
		})
		mut("length too small", syscall.EBADMSG, AlertBadRecordMAC, func(r []byte) []byte {
			return withLength(r, sl.Overhead()-HeaderLen-1)
		})
		mut("length zero", syscall.EBADMSG, AlertBadRecordMAC, func(r []byte) []byte { return withLength(r, 0) })
		mut("length disagrees", syscall.EMSGSIZE, AlertDecodeError, func(r []byte) []byte { return r[:len(r)-1] })
		mut("short header", syscall.EMSGSIZE, AlertDecodeError, func(r []byte) []byte { return r[:4] })
		mut("flipped tag bit", syscall.EBADMSG, AlertBadRecordMAC, func(r []byte) []byte { r[len(r)-1] ^= 1; return r })
		mut("flipped ciphertext bit", syscall.EBADMSG, AlertBadRecordMAC, func(r []byte) []byte { r[len(r)-20] ^= 0x80; return r })
		if st.version == VersionTLS12 {
			// The type is authenticated through the additional data.
			mut("changed type", syscall.EBADMSG, AlertBadRecordMAC, func(r []byte) []byte { r[0] = 22; return r })
		} else {
			mut("outer type handshake", syscall.EINVAL, AlertUnexpectedMessage, func(r []byte) []byte { r[0] = 22; return r })
			mut("outer type change_cipher_spec", syscall.EINVAL, AlertUnexpectedMessage, func(r []byte) []byte { r[0] = 20; return r })
		}
		for what, b := range bad {
			_, o := pair(t, st.version, st.suite)
			_, _, err := o.Open(b.rec)
			checkErr(t, name+": "+what, err, b.errno, b.alert)
			if o.Seq() != 0x0102030405060708 {
				t.Errorf("%s: %s: seq advanced", name, what)
			}
		}
		// Replay: the same record a second time fails authentication.
		_, o := pair(t, st.version, st.suite)
		if _, _, err := o.Open(bytes.Clone(good)); err != nil {
			t.Fatal(err)
		}
		_, _, err := o.Open(bytes.Clone(good))
		checkErr(t, name+": replay", err, syscall.EBADMSG, AlertBadRecordMAC)
	}
}

func withLength(r []byte, n int) []byte {
	r = append(r[:HeaderLen], make([]byte, n)...)
	r[3], r[4] = byte(n>>8), byte(n)
	return r
}

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		hdr     []byte
		version uint16
		errno   error
		alert   Alert
	}{
		{[]byte{23, 3, 3, 0x40, 0x00}, VersionTLS13, nil, 0},
		{[]byte{23, 3, 3, 0x41, 0x00}, VersionTLS13, nil, 0},                                    // 2^14+256
		{[]byte{23, 3, 3, 0x41, 0x01}, VersionTLS13, syscall.EMSGSIZE, AlertRecordOverflow},     // 2^14+257
		{[]byte{23, 3, 3, 0x48, 0x00}, VersionTLS12, nil, 0},                                    // 2^14+2048
		{[]byte{23, 3, 3, 0x48, 0x01}, VersionTLS12, syscall.EMSGSIZE, AlertRecordOverflow},     // 2^14+2049
		{[]byte{21, 3, 3, 0, 16}, VersionTLS12, nil, 0},                                         // tag only
		{[]byte{21, 3, 3, 0, 15}, VersionTLS12, syscall.EBADMSG, AlertBadRecordMAC},             // shorter than a tag
		{[]byte{23, 3, 3, 0, 16}, VersionTLS13, nil, 0},                                         // tag only: Open decides
		{[]byte{23, 3, 3, 0, 15}, VersionTLS13, syscall.EBADMSG, AlertBadRecordMAC},             // shorter than a tag
		{[]byte{21, 3, 3, 0, 16}, VersionTLS13, syscall.EINVAL, AlertUnexpectedMessage},         // plaintext alert in 1.3
		{[]byte{25, 3, 3, 0, 16}, VersionTLS12, syscall.EINVAL, AlertUnexpectedMessage},         // unknown type
		{[]byte{22, 3, 1, 0, 100}, 0, nil, 0},                                                   // ClientHello version
		{[]byte{22, 3, 0, 0, 100}, 0, syscall.EINVAL, AlertProtocolVersion},                     // SSL 3.0
		{[]byte{22, 3, 1, 0, 100}, VersionTLS12, syscall.EINVAL, AlertProtocolVersion},          // 0x0301 after negotiation
		{[]byte{22, 3, 3, 0, 0}, 0, nil, 0},                                                     // plaintext, no minimum
		{[]byte{22, 3, 3, 0, 0}, 0x0302, syscall.EINVAL, AlertInternalError},                    // unsupported version
		{[]byte{'G', 'E', 'T', ' ', '/'}, VersionTLS13, syscall.EINVAL, AlertUnexpectedMessage}, // not TLS at all
	} {
		h, err := ParseHeader(tc.hdr, tc.version)
		if tc.errno == nil {
			if err != nil || h.Length != int(tc.hdr[3])<<8|int(tc.hdr[4]) || h.Type != ContentType(tc.hdr[0]) {
				t.Errorf("%x for %x: %+v, %v", tc.hdr, tc.version, h, err)
			}
			continue
		}
		checkErr(t, "header "+string(rune('0'+len(tc.hdr))), err, tc.errno, tc.alert)
	}
}

func TestSealErrors(t *testing.T) {
	sl, o := pair(t, VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256)
	_, err := sl.Seal(nil, TypeApplicationData, make([]byte, MaxPlaintext+1))
	checkErr(t, "oversized payload", err, syscall.EMSGSIZE, AlertInternalError)
	_, err = sl.Seal(nil, TypeChangeCipherSpec, []byte{1})
	checkErr(t, "TLS 1.3 change_cipher_spec", err, syscall.EINVAL, AlertInternalError)
	_, err = sl.Seal(nil, 99, []byte{1})
	checkErr(t, "unknown type", err, syscall.EINVAL, AlertInternalError)
	if sl.Seq() != o.Seq() {
		t.Errorf("failed Seal advanced the sequence number")
	}
}

// TestSeqOverflow checks that the record with sequence number 2^64-1 is the
// last one in each direction.
func TestSeqOverflow(t *testing.T) {
	for _, st := range allSuites {
		s := testSession(st.version, st.suite)
		s.Seq = math.MaxUint64 - 1
		sl, _ := NewSealer(s)
		o, _ := NewOpener(s)
		var recs [][]byte
		for range 2 {
			rec, err := sl.Seal(nil, TypeApplicationData, []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		_, err := sl.Seal(nil, TypeApplicationData, []byte("x"))
		checkErr(t, "seal after 2^64-1", err, syscall.EBADMSG, AlertInternalError)
		if !errors.Is(err, ErrSeqOverflow) {
			t.Errorf("seal: %v is not ErrSeqOverflow", err)
		}
		for _, rec := range recs {
			if _, _, err := o.Open(rec); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err = o.Open(recs[0])
		if !errors.Is(err, ErrSeqOverflow) {
			t.Errorf("open after 2^64-1: %v", err)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	err := error(&Error{Op: "open", Alert: AlertBadRecordMAC, Err: syscall.EBADMSG})
	if got, want := err.Error(), "record: open: "+syscall.EBADMSG.Error()+" (alert bad_record_mac)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if !errors.Is(&Error{Op: "read", Err: ErrTruncated}, syscall.EMSGSIZE) {
		t.Error("ErrTruncated does not wrap EMSGSIZE")
	}
	if Alert(200).String() != "alert(200)" || ContentType(99).String() != "content_type(99)" || TypeAlert.String() != "alert" {
		t.Error("String of unknown values")
	}
}

func TestSealInPlace(t *testing.T) {
	for _, st := range allSuites {
		sl, o := pair(t, st.version, st.suite)
		sl2, _ := pair(t, st.version, st.suite)
		payload := []byte("sealed in place, without a copy")
		buf := make([]byte, 3, 3+len(payload)+sl.Overhead())
		inPlace := buf[3+sl.PayloadOffset() : 3+sl.PayloadOffset()+len(payload)]
		copy(inPlace, payload)
		rec, err := sl.Seal(buf, TypeApplicationData, inPlace)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := sl2.Seal(nil, TypeApplicationData, payload)
		if !bytes.Equal(rec[3:], want) {
			t.Errorf("%s: in-place record differs", tls.CipherSuiteName(st.suite))
		}
		if _, pt, err := o.Open(rec[3:]); err != nil || !bytes.Equal(pt, payload) {
			t.Errorf("%s: %v", tls.CipherSuiteName(st.suite), err)
		}
	}
}
