package record

import (
	"bytes"
	"crypto/tls"
	"io"
	"strings"
	"testing"
)

// TestWriterReadFromAfter: the bytes given to ReadFromAfter share the first
// record with the reader's first bytes, also when the reader is empty, and
// bytes longer than a record go first on their own.
func TestWriterReadFromAfter(t *testing.T) {
	for _, c := range []struct {
		name          string
		prefix, body  int
		records, size int // records on the wire; the first one's payload
	}{
		{"header and small body", 200, 4096, 1, 4296},
		{"header and empty body", 200, 0, 1, 200},
		{"no header", 0, 4096, 1, 4096},
		{"header and large body", 200, 2 * MaxPlaintext, 3, MaxPlaintext},
		{"header larger than a record", MaxPlaintext + 1, 10, 3, MaxPlaintext},
	} {
		sl, o := pair(t, VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
		prefix, body := strings.Repeat("h", c.prefix), strings.Repeat("b", c.body)
		var cw callWriter
		n, err := NewWriter(&cw, sl).ReadFromAfter([]byte(prefix), io.LimitReader(strings.NewReader(body), int64(c.body)))
		if err != nil || n != int64(c.body) {
			t.Fatalf("%s: ReadFromAfter = %d, %v", c.name, n, err)
		}
		r := NewReader(&cw.Buffer, o)
		var got []byte
		var sizes []int
		for {
			_, pt, err := r.ReadRecord()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(pt))
			got = append(got, pt...)
		}
		if len(sizes) != c.records || sizes[0] != c.size {
			t.Errorf("%s: records of %v bytes, want %d records, the first of %d", c.name, sizes, c.records, c.size)
		}
		if !bytes.Equal(got, []byte(prefix+body)) {
			t.Errorf("%s: data differs", c.name)
		}
	}
}
