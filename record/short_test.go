package record

import (
	"bytes"
	"crypto/tls"
	"syscall"
	"testing"
)

// TestShortRecords plays the bytes of a peer that sends a protected record
// whose body is shorter than the AEAD needs (the TLS 1.2 explicit nonce and
// the tag): a header and n zero bytes. crypto/tls answers every one of them
// with bad_record_mac (halfConn.decrypt: a body shorter than the explicit
// nonce, or an AEAD Open that fails on fewer bytes than a tag), for every
// suite and both versions, and so does Linux (tls_rx_msg_size: EBADMSG when
// the length is below the cipher overhead). ParseHeader, Open and a Reader
// must agree.
func TestShortRecords(t *testing.T) {
	for _, st := range allSuites {
		name := tls.CipherSuiteName(st.suite)
		sl, _ := pair(t, st.version, st.suite)
		minBody := tagLen
		if sl.PayloadOffset() > HeaderLen {
			minBody += explicitNonceLen
		}
		types := []ContentType{TypeApplicationData}
		if st.version == VersionTLS12 {
			types = append(types, TypeAlert, TypeHandshake)
		}
		for _, typ := range types {
			for n := range minBody {
				rec := append([]byte{byte(typ), 3, 3, 0, byte(n)}, make([]byte, n)...)
				if n < tagLen {
					_, err := ParseHeader(rec, st.version)
					checkErr(t, name+" ParseHeader", err, syscall.EBADMSG, AlertBadRecordMAC)
				}
				_, o := pair(t, st.version, st.suite)
				_, _, err := o.Open(rec)
				checkErr(t, name+" Open", err, syscall.EBADMSG, AlertBadRecordMAC)
				_, o = pair(t, st.version, st.suite)
				_, _, err = NewReader(bytes.NewReader(rec), o).ReadRecord()
				checkErr(t, name+" ReadRecord", err, syscall.EBADMSG, AlertBadRecordMAC)
			}
		}
	}
}

// TestTLS13TagOnly opens a TLS 1.3 record whose body is only a tag: the
// inner plaintext is empty, so it has no content type. If the tag is right,
// RFC 8446 section 5.4 asks for unexpected_message (crypto/tls accepts it as
// empty application data; Linux answers EBADMSG from
// tls_padding_length); if not, bad_record_mac.
func TestTLS13TagOnly(t *testing.T) {
	for _, st := range allSuites {
		if st.version != VersionTLS13 {
			continue
		}
		sl, o := pair(t, st.version, st.suite)
		rec := sealInner13(sl, nil)
		if len(rec) != HeaderLen+tagLen {
			t.Fatalf("record of %d bytes", len(rec))
		}
		_, _, err := o.Open(rec)
		checkErr(t, tls.CipherSuiteName(st.suite)+" authentic", err, syscall.EBADMSG, AlertUnexpectedMessage)
		_, o = pair(t, st.version, st.suite)
		_, _, err = o.Open(append([]byte{23, 3, 3, 0, tagLen}, make([]byte, tagLen)...))
		checkErr(t, tls.CipherSuiteName(st.suite)+" forged", err, syscall.EBADMSG, AlertBadRecordMAC)
	}
}
