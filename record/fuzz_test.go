package record

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"
)

// FuzzParseHeader checks that ParseHeader never panics, that what it accepts
// is within the limits of the version, and that what it refuses comes as an
// *Error wrapping an errno.
func FuzzParseHeader(f *testing.F) {
	for _, v := range []uint16{0, VersionTLS12, VersionTLS13} {
		f.Add([]byte{23, 3, 3, 0x40, 0x11}, v)
		f.Add([]byte{22, 3, 1, 0x00, 0x80}, v)
		f.Add([]byte{21, 3, 3, 0x00, 0x02}, v)
	}
	f.Fuzz(func(t *testing.T, b []byte, version uint16) {
		if len(b) < HeaderLen {
			return
		}
		h, err := ParseHeader(b, version)
		if err != nil {
			var re *Error
			if !errors.As(err, &re) || re.Err == nil {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if h.Length > maxCiphertext(version) || h.Length < minCiphertext(version) || !h.Type.valid() ||
			version != 0 && h.Version != VersionTLS12 || version == VersionTLS13 && h.Type != TypeApplicationData {
			t.Fatalf("accepted %+v for version %x", h, version)
		}
	})
}

// fuzzOpener returns an Opener of one of the six version/AEAD combinations
// with the keys of testSession, so that records sealed by them (the seed
// corpus in testdata/fuzz/FuzzOpen) authenticate.
func fuzzOpener(t *testing.T, which uint8) *Opener {
	st := allSuites[int(which)%len(allSuites)]
	o, err := NewOpener(testSession(st.version, st.suite))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// FuzzOpen checks that Open never panics or accepts more than a record may
// carry, advances the sequence number exactly on success, and types its
// errors.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, which uint8, rec []byte) {
		o := fuzzOpener(t, which)
		seq := o.Seq()
		typ, pt, err := o.Open(rec)
		if err != nil {
			var re *Error
			if !errors.As(err, &re) || o.Seq() != seq {
				t.Fatalf("error %v, seq %d -> %d", err, seq, o.Seq())
			}
			return
		}
		if o.Seq() != seq+1 || len(pt) > MaxPlaintext || !typ.valid() {
			t.Fatalf("opened %v with %d bytes, seq %d -> %d", typ, len(pt), seq, o.Seq())
		}
	})
}

// FuzzReader feeds arbitrary streams to a Reader; it must end with io.EOF or
// a typed error and never panic or loop.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, which uint8, stream []byte) {
		r := NewReader(iotest.HalfReader(bytes.NewReader(stream)), fuzzOpener(t, which))
		// Records open into dst (ReadRecordTo) when they fit: no room, some
		// room, or room for any record, by which.
		dst := make([]byte, int(which)*131)
		for range len(stream) + 1 {
			_, pt, err := r.ReadRecordTo(dst)
			if err != nil {
				return
			}
			if len(pt) > MaxPlaintext {
				t.Fatalf("plaintext of %d bytes", len(pt))
			}
		}
		t.Fatalf("more records than bytes")
	})
}
