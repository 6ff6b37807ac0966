package record

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// callWriter records the size of each Write call.
type callWriter struct {
	bytes.Buffer
	calls []int
}

func (w *callWriter) Write(p []byte) (int, error) {
	w.calls = append(w.calls, len(p))
	return w.Buffer.Write(p)
}

func TestWriterBatches(t *testing.T) {
	for _, st := range allSuites {
		sl, o := pair(t, st.version, st.suite)
		var cw callWriter
		w := NewWriter(&cw, sl)
		p := bytes.Repeat([]byte("0123456789abcdef"), (40*MaxPlaintext+100)/16)
		n, err := w.Write(p)
		if err != nil || n != len(p) {
			t.Fatal(n, err)
		}
		// 41 records: two full batches of 16 and one of 9, each in one call.
		full := MaxPlaintext + sl.Overhead()
		if len(cw.calls) != 3 || cw.calls[0] != 16*full || cw.calls[1] != 16*full || cw.calls[2] != 8*full+len(p)-40*MaxPlaintext+sl.Overhead() {
			t.Errorf("%s: write calls %v", tls.CipherSuiteName(st.suite), cw.calls)
		}
		r := NewReader(&cw.Buffer, o)
		var got []byte
		for i := 0; ; i++ {
			typ, pt, err := r.ReadRecord()
			if err == io.EOF {
				break
			}
			if err != nil || typ != TypeApplicationData || (i < 40 && len(pt) != MaxPlaintext) {
				t.Fatalf("record %d: %v %d %v", i, typ, len(pt), err)
			}
			got = append(got, pt...)
		}
		if !bytes.Equal(got, p) || sl.Seq() != o.Seq() {
			t.Errorf("round trip failed")
		}
	}
}

// errWriter fails after accepting limit bytes.
type errWriter struct{ limit int }

func (w *errWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, syscall.EPIPE
	}
	w.limit -= len(p)
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	sl, _ := pair(t, VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	w := NewWriter(&errWriter{limit: 16 * (MaxPlaintext + sl.Overhead())}, sl)
	n, err := w.Write(make([]byte, 20*MaxPlaintext))
	if n != 16*MaxPlaintext || !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Write = %d, %v; want the first batch and EPIPE", n, err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("error did not stick: %v", err)
	}
	if err := w.WriteRecord(TypeAlert, []byte{1, 0}); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("WriteRecord after failure: %v", err)
	}

	sl, _ = pair(t, VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
	var buf bytes.Buffer
	w = NewWriter(&buf, sl)
	err = w.WriteRecord(TypeApplicationData, make([]byte, MaxPlaintext+1))
	checkErr(t, "oversized WriteRecord", err, syscall.EMSGSIZE, AlertInternalError)
	if err := w.WriteRecord(TypeAlert, []byte{1, 0}); err != nil || sl.Seq() != 0x0102030405060709 {
		t.Errorf("Writer unusable after a refused record: %v", err)
	}
}

// records seals n records of increasing size.
func records(t testing.TB, sl *Sealer, n int) ([]byte, [][]byte) {
	var stream []byte
	var payloads [][]byte
	for i := range n {
		p := bytes.Repeat([]byte{byte(i)}, i*997%MaxPlaintext)
		var err error
		if stream, err = sl.Seal(stream, TypeApplicationData, p); err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	return stream, payloads
}

func TestReaderChunks(t *testing.T) {
	for _, st := range allSuites {
		sl, _ := pair(t, st.version, st.suite)
		stream, payloads := records(t, sl, 40)
		for name, rd := range map[string]func([]byte) io.Reader{
			"whole":     func(b []byte) io.Reader { return bytes.NewReader(b) },
			"one byte":  func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
			"half":      func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
			"data+EOF":  func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
			"timeout":   func(b []byte) io.Reader { return iotest.TimeoutReader(bytes.NewReader(b)) },
			"EOF first": func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(nil), bytes.NewReader(b)) },
		} {
			_, o := pair(t, st.version, st.suite)
			r := NewReader(rd(stream), o)
			for i, want := range payloads {
				typ, pt, err := r.ReadRecord()
				if errors.Is(err, iotest.ErrTimeout) {
					typ, pt, err = r.ReadRecord() // a read error does not stick
				}
				if err != nil || typ != TypeApplicationData || !bytes.Equal(pt, want) {
					t.Fatalf("%s: record %d: %v %d bytes %v", name, i, typ, len(pt), err)
				}
			}
			if _, _, err := r.ReadRecord(); err != io.EOF {
				t.Errorf("%s: at the end: %v, want io.EOF", name, err)
			}
			if r.Buffered() != 0 {
				t.Errorf("%s: Buffered() = %d at EOF", name, r.Buffered())
			}
		}
	}
}

// TestReaderReadRecordTo opens records into the caller's buffer when their
// decrypted body fits (TLS 1.3: payload, inner type and padding), and in
// place otherwise, for every suite; a bad record fails the same way as with
// ReadRecord.
func TestReaderReadRecordTo(t *testing.T) {
	for _, st := range allSuites {
		name := tls.CipherSuiteName(st.suite)
		sl, o := pair(t, st.version, st.suite)
		sizes := []int{0, 1, 100, MaxPlaintext - 1, MaxPlaintext}
		var stream []byte
		for i, n := range sizes {
			var err error
			if stream, err = sl.Seal(stream, TypeApplicationData, testPayload(n, i)); err != nil {
				t.Fatal(err)
			}
		}
		padded := st.version == VersionTLS13
		if padded { // "hi", type, 100 bytes of padding
			stream = append(stream, sealInner13(sl, append([]byte{'h', 'i', 23}, make([]byte, 100)...))...)
		}
		r := NewReader(bytes.NewReader(stream), o)
		dst := make([]byte, 100)
		for i, n := range sizes {
			typ, pt, err := r.ReadRecordTo(dst)
			if err != nil || typ != TypeApplicationData || !bytes.Equal(pt, testPayload(n, i)) {
				t.Fatalf("%s: record of %d bytes: %v %d bytes, %v", name, n, typ, len(pt), err)
			}
			room := n
			if st.version == VersionTLS13 {
				room++ // the inner content type
			}
			if inDst := n > 0 && &pt[0] == &dst[0]; n > 0 && inDst != (room <= len(dst)) {
				t.Errorf("%s: record of %d bytes opened into dst: %v", name, n, inDst)
			}
		}
		if padded {
			typ, pt, err := r.ReadRecordTo(dst)
			if err != nil || typ != TypeApplicationData || string(pt) != "hi" || &pt[0] == &dst[0] {
				t.Errorf("%s: padded record of 103 bytes into 100: %v %q, %v", name, typ, pt, err)
			}
		}
		if _, _, err := r.ReadRecordTo(dst); err != io.EOF {
			t.Errorf("%s: at the end: %v", name, err)
		}

		// A flipped tag fails whether the record would fit or not.
		for _, size := range []int{10, 1000} {
			sl, o := pair(t, st.version, st.suite)
			rec, err := sl.Seal(nil, TypeApplicationData, testPayload(size, 0))
			if err != nil {
				t.Fatal(err)
			}
			rec[len(rec)-1] ^= 1
			_, _, err = NewReader(bytes.NewReader(rec), o).ReadRecordTo(make([]byte, 100))
			checkErr(t, name+" bad tag", err, syscall.EBADMSG, AlertBadRecordMAC)
		}
	}
}

// testPayload returns n bytes that differ with seed.
func testPayload(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

// TestReaderBufferGrows checks that a Reader's buffer stays small while
// the records are small and the stream comes in small pieces, grows to hold
// a large record, and reaches its full size once reads fill it.
func TestReaderBufferGrows(t *testing.T) {
	sl, o := pair(t, VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	var stream []byte
	var err error
	const pings = 30 // 780 bytes: they fit in readBufStart
	for range pings {
		if stream, err = sl.Seal(stream, TypeApplicationData, []byte("ping")); err != nil {
			t.Fatal(err)
		}
	}
	small := len(stream)
	big := bytes.Repeat([]byte{7}, MaxPlaintext)
	for range 20 {
		if stream, err = sl.Seal(stream, TypeApplicationData, big); err != nil {
			t.Fatal(err)
		}
	}
	src := bytes.NewReader(stream)
	// The small records come in one read that does not fill the buffer.
	r := NewReader(io.LimitReader(src, int64(small)), o)
	for range pings {
		if _, pt, err := r.ReadRecord(); err != nil || string(pt) != "ping" {
			t.Fatalf("small record: %q, %v", pt, err)
		}
		if len(r.buf) != readBufStart {
			t.Fatalf("buffer of %d bytes for small records, want %d", len(r.buf), readBufStart)
		}
	}
	r.r = src
	for i := range 20 {
		if _, pt, err := r.ReadRecord(); err != nil || !bytes.Equal(pt, big) {
			t.Fatalf("large record %d: %d bytes, %v", i, len(pt), err)
		}
		if len(r.buf) < len(big)+sl.Overhead() {
			t.Fatalf("buffer of %d bytes holds no large record", len(r.buf))
		}
	}
	if len(r.buf) != readBufSize {
		t.Errorf("buffer of %d bytes after a bulk stream, want %d", len(r.buf), readBufSize)
	}
}

func TestReaderTruncated(t *testing.T) {
	sl, _ := pair(t, VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256)
	stream, payloads := records(t, sl, 3)
	first := HeaderLen + len(payloads[0]) + sl.Overhead() - HeaderLen
	for _, cut := range []int{first + 1, first + 4, first + 5, first + 100, len(stream) - 1} {
		_, o := pair(t, VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256)
		r := NewReader(bytes.NewReader(stream[:cut]), o)
		if _, _, err := r.ReadRecord(); err != nil {
			t.Fatal(err)
		}
		var err error
		for err == nil {
			_, _, err = r.ReadRecord()
		}
		checkErr(t, "truncated stream", err, syscall.EMSGSIZE, AlertDecodeError)
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: %v is not ErrTruncated", cut, err)
		}
		if r.Buffered() == 0 {
			t.Errorf("cut at %d: Buffered() = 0 with a partial record", cut)
		}
	}
	// io.ErrUnexpectedEOF from the reader is passed through.
	_, o := pair(t, VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256)
	r := NewReader(iotest.ErrReader(io.ErrUnexpectedEOF), o)
	if _, _, err := r.ReadRecord(); err != io.ErrUnexpectedEOF {
		t.Errorf("got %v", err)
	}
}

// TestReaderBadRecord checks that a bad record in a stream gives its typed
// error after the good records before it, and that the error sticks.
func TestReaderBadRecord(t *testing.T) {
	sl, _ := pair(t, VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
	stream, _ := records(t, sl, 3)
	stream[len(stream)-1] ^= 1
	bad := append(bytes.Clone(stream), 23, 3, 3, 0xff, 0xff)
	for name, tc := range map[string]struct {
		stream []byte
		errno  error
		alert  Alert
		good   int
	}{
		"auth":     {stream, syscall.EBADMSG, AlertBadRecordMAC, 2},
		"version":  {[]byte{23, 3, 1, 0, 40}, syscall.EINVAL, AlertProtocolVersion, 0},
		"overflow": {bad[len(bad)-5:], syscall.EMSGSIZE, AlertRecordOverflow, 0},
		"type":     {[]byte{0x80, 3, 3, 0, 40}, syscall.EINVAL, AlertUnexpectedMessage, 0},
	} {
		_, o := pair(t, VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
		r := NewReader(bytes.NewReader(tc.stream), o)
		for i := range tc.good {
			if _, _, err := r.ReadRecord(); err != nil {
				t.Fatalf("%s: good record %d: %v", name, i, err)
			}
		}
		_, _, err := r.ReadRecord()
		checkErr(t, name, err, tc.errno, tc.alert)
		_, _, err2 := r.ReadRecord()
		if err2 != err {
			t.Errorf("%s: error did not stick: %v", name, err2)
		}
	}
}

// TestReaderSetOpener switches keys between records already buffered, as
// after a TLS 1.3 KeyUpdate.
func TestReaderSetOpener(t *testing.T) {
	s0 := testSession(VersionTLS13, tls.TLS_AES_256_GCM_SHA384)
	secret := bytes.Repeat([]byte{7}, 48)
	next, err := TLS13NextSecret(tls.TLS_AES_256_GCM_SHA384, secret)
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := TLS13Session(tls.TLS_AES_256_GCM_SHA384, next)
	sl0, _ := NewSealer(s0)
	sl1, _ := NewSealer(s1)
	var buf bytes.Buffer
	w := NewWriter(&buf, sl0)
	w.WriteRecord(TypeHandshake, []byte{24, 0, 0, 1, 0}) // KeyUpdate
	w.SetSealer(sl1)
	w.Write([]byte("after"))

	o0, _ := NewOpener(s0)
	o1, _ := NewOpener(s1)
	r := NewReader(&buf, o0)
	if typ, _, err := r.ReadRecord(); err != nil || typ != TypeHandshake {
		t.Fatal(typ, err)
	}
	if r.Buffered() == 0 {
		t.Fatal("next record not buffered")
	}
	r.SetOpener(o1)
	if _, pt, err := r.ReadRecord(); err != nil || string(pt) != "after" {
		t.Fatal(string(pt), err)
	}
}

// TestZeroAllocs checks that sealing, opening and streaming records do not
// allocate in steady state.
func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for _, st := range allSuites {
		name := tls.CipherSuiteName(st.suite)
		sl, o := pair(t, st.version, st.suite)
		payload := make([]byte, MaxPlaintext)
		buf := make([]byte, 0, MaxPlaintext+sl.Overhead())
		if n := testing.AllocsPerRun(100, func() {
			rec, err := sl.Seal(buf, TypeApplicationData, payload)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := o.Open(rec); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: Seal+Open: %v allocs", name, n)
		}

		if raceEnabled() {
			continue // the race detector's sync.Pool drops a quarter of what it is given
		}
		var sink bytes.Buffer
		sink.Grow(4 << 20)
		w := NewWriter(&sink, sl)
		r := NewReader(&sink, o)
		big := make([]byte, 1<<20)
		if n := testing.AllocsPerRun(20, func() {
			sink.Reset()
			if _, err := w.Write(big); err != nil {
				t.Fatal(err)
			}
			for range 64 {
				if _, _, err := r.ReadRecord(); err != nil {
					t.Fatal(err)
				}
			}
		}); n != 0 {
			t.Errorf("%s: Writer+Reader: %v allocs per MiB", name, n)
		}
	}
}

// TestWriterSeqOverflow checks that records sealed before the sequence
// number ran out are still written and counted.
func TestWriterSeqOverflow(t *testing.T) {
	s := testSession(VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	s.Seq = 1<<64 - 2
	sl, _ := NewSealer(s)
	o, _ := NewOpener(s)
	var buf bytes.Buffer
	n, err := NewWriter(&buf, sl).Write(make([]byte, 3*MaxPlaintext))
	if n != 2*MaxPlaintext || !errors.Is(err, ErrSeqOverflow) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	r := NewReader(&buf, o)
	for range 2 {
		if _, pt, err := r.ReadRecord(); err != nil || len(pt) != MaxPlaintext {
			t.Fatal(len(pt), err)
		}
	}
	if _, _, err := r.ReadRecord(); err != io.EOF {
		t.Fatal(err)
	}
}

func TestWriterReadFrom(t *testing.T) {
	data := make([]byte, 40*MaxPlaintext+100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, st := range allSuites {
		name := tls.CipherSuiteName(st.suite)
		for rname, rd := range map[string]func([]byte) io.Reader{
			"file":     func(b []byte) io.Reader { return bytes.NewReader(b) },
			"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
			"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b[:1000])) },
			"data+EOF": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		} {
			sl, o := pair(t, st.version, st.suite)
			var cw callWriter
			n, err := NewWriter(&cw, sl).ReadFrom(rd(data))
			want := data
			if rname == "one byte" {
				want = data[:1000]
			}
			if err != nil || n != int64(len(want)) {
				t.Fatalf("%s %s: ReadFrom = %d, %v", name, rname, n, err)
			}
			if rname == "file" {
				full := MaxPlaintext + sl.Overhead()
				if len(cw.calls) != 3 || cw.calls[0] != 16*full || cw.calls[1] != 16*full {
					t.Errorf("%s: write calls %v", name, cw.calls)
				}
			}
			r := NewReader(&cw.Buffer, o)
			var got []byte
			for {
				_, pt, err := r.ReadRecord()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, pt...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s %s: data differs", name, rname)
			}
		}
	}

	sl, _ := pair(t, VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	var buf bytes.Buffer
	n, err := NewWriter(&buf, sl).ReadFrom(io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(syscall.ECONNRESET)))
	if n != 3 || !errors.Is(err, syscall.ECONNRESET) || sl.Seq() != 0x0102030405060709 {
		t.Errorf("ReadFrom with a failing reader = %d, %v, seq %x", n, err, sl.Seq())
	}

	// Steady state allocates nothing (unless the race detector's sync.Pool
	// drops the buffer).
	if raceEnabled() {
		return
	}
	sl, _ = pair(t, VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	w := NewWriter(io.Discard, sl)
	src := bytes.NewReader(data)
	if allocs := testing.AllocsPerRun(10, func() {
		src.Reset(data)
		if _, err := w.ReadFrom(src); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("ReadFrom: %v allocs", allocs)
	}
}

// notifyWriter signals each Write on a channel.
type notifyWriter struct {
	bytes.Buffer
	wrote chan int
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	w.wrote <- n
	return n, err
}

// A stream source (here a pipe) that sends exactly one record's worth and
// then waits must see that record go out before ReadFrom reads again.
func TestWriterReadFromStream(t *testing.T) {
	sl, _ := pair(t, VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	pr, pw := io.Pipe()
	nw := &notifyWriter{wrote: make(chan int, 4)}
	done := make(chan error, 1)
	go func() {
		_, err := NewWriter(nw, sl).ReadFrom(pr)
		done <- err
	}()
	for i := 0; i < 3; i++ {
		if _, err := pw.Write(make([]byte, MaxPlaintext)); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-nw.wrote:
			if n != MaxPlaintext+sl.Overhead() {
				t.Fatalf("wrote %d bytes, want one full record", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the record read from a stream was held back waiting for more input")
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestWriterHoldsNoBuffer: after Write, ReadFrom and WriteRecord return, a
// Writer keeps no buffer: a connection that once sent a large response
// does not keep 16 records' worth of memory for its life.
func TestWriterHoldsNoBuffer(t *testing.T) {
	sl, _ := pair(t, VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	w := NewWriter(io.Discard, sl)
	check := func(what string) {
		t.Helper()
		if w.buf != nil || w.bp != nil {
			t.Errorf("after %s the Writer holds a buffer of %d bytes", what, cap(w.buf))
		}
	}
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	check("Write")
	if _, err := w.ReadFrom(bytes.NewReader(make([]byte, 1<<20))); err != nil {
		t.Fatal(err)
	}
	check("ReadFrom")
	if err := w.WriteRecord(TypeAlert, []byte{1, 0}); err != nil {
		t.Fatal(err)
	}
	check("WriteRecord")
}

// TestReadFromBatch: ReadFrom's buffer holds one record for a source that
// may block, no more records than an io.LimitedReader has left, and 16 for
// a file.
func TestReadFromBatch(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for _, c := range []struct {
		what string
		r    io.Reader
		want int
	}{
		{"file", f, maxBatch},
		{"1 KiB of a file", io.LimitReader(f, 1024), 1},
		{"3 records of a file", io.LimitReader(f, 2*MaxPlaintext+1), 3},
		{"1 GiB of a file", io.LimitReader(f, 1<<30), maxBatch},
		{"empty limit", io.LimitReader(f, 0), 1},
		{"pipe", pr, 1},
		{"1 GiB of a pipe", io.LimitReader(pr, 1<<30), 1},
		{"strings.Reader", strings.NewReader("x"), maxBatch},
	} {
		if got := readFromBatch(c.r); got != c.want {
			t.Errorf("%s: %d records, want %d", c.what, got, c.want)
		}
	}
}

// TestWriterReadFromFile: ReadFrom and ReadFromAfter of a regular file,
// alone or behind an io.LimitedReader, send its bytes in full records, 16
// to a write, read nothing beyond the limit, and (on Linux, by readv(2))
// take one read-type system call per batch, not one per record.
func TestWriterReadFromFile(t *testing.T) {
	data := make([]byte, 40*MaxPlaintext+100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, st := range allSuites {
		for _, c := range []struct {
			what   string
			prefix int
			limit  int64 // -1: the file itself; -2: a type wrapping it
			writes []int // records per write
			first  int   // the first record's payload
		}{
			{"file", 0, -1, []int{16, 16, 9}, MaxPlaintext},
			{"wrapped file", 0, -2, []int{16, 16, 9}, MaxPlaintext},
			{"limit mid-record", 0, 20*MaxPlaintext + 7, []int{16, 5}, MaxPlaintext},
			{"limit of 3 records", 0, 3 * MaxPlaintext, []int{3}, MaxPlaintext},
			{"header and file", 200, -1, []int{16, 16, 9}, MaxPlaintext},
			{"header and 3 records' worth", 200, 3*MaxPlaintext - 200, []int{3}, MaxPlaintext},
			{"header and empty limit", 200, 0, []int{1}, 200},
		} {
			what := tls.CipherSuiteName(st.suite) + " " + c.what
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			var r io.Reader = f
			want := data
			switch {
			case c.limit >= 0:
				r, want = io.LimitReader(f, c.limit), data[:c.limit]
			case c.limit == -2:
				fi, err := f.Stat()
				if err != nil {
					t.Fatal(err)
				}
				r = &statFile{f, fi}
			}
			prefix := bytes.Repeat([]byte("h"), c.prefix)
			sl, o := pair(t, st.version, st.suite)
			var cw callWriter
			// Counted on this goroutine's thread only: the process's
			// count moves with the race detector's own reads.
			runtime.LockOSThread()
			before := readCalls(t)
			n, err := NewWriter(&cw, sl).ReadFromAfter(prefix, r)
			calls := readCalls(t) - before
			runtime.UnlockOSThread()
			if err != nil || n != int64(len(want)) {
				t.Fatalf("%s: ReadFromAfter = %d, %v, want %d", what, n, err, len(want))
			}
			if off, _ := f.Seek(0, io.SeekCurrent); off != int64(len(want)) {
				t.Errorf("%s: file offset %d after reading %d bytes", what, off, len(want))
			}
			// Each write holds whole records: count them.
			wire := cw.Bytes()
			var writes []int
			for _, size := range cw.calls {
				recs := 0
				for b := wire[:size]; len(b) >= HeaderLen; recs++ {
					b = b[min(len(b), HeaderLen+int(binary.BigEndian.Uint16(b[3:5]))):]
				}
				writes = append(writes, recs)
				wire = wire[size:]
			}
			rd := NewReader(&cw.Buffer, o)
			var got []byte
			for {
				_, pt, err := rd.ReadRecord()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if len(got) == 0 && len(pt) != c.first {
					t.Errorf("%s: first record of %d bytes, want %d", what, len(pt), c.first)
				}
				got = append(got, pt...)
			}
			if !bytes.Equal(got, append(prefix, want...)) {
				t.Errorf("%s: data differs", what)
			}
			if !slices.Equal(writes, c.writes) {
				t.Errorf("%s: records per write %v, want %v", what, writes, c.writes)
			}
			if runtime.GOOS == "linux" && calls > int64(len(c.writes))+4 {
				t.Errorf("%s: %d read calls for %d writes", what, calls, len(c.writes))
			}
		}
	}
}

// readCalls returns the read-type system calls of the calling thread so
// far (syscr of /proc/thread-self/io; the caller locks its goroutine to the
// thread) on Linux, else 0.
func readCalls(t *testing.T) int64 {
	t.Helper()
	if runtime.GOOS != "linux" {
		return 0
	}
	b, err := os.ReadFile("/proc/thread-self/io")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscr in /proc/self/io")
	return 0
}

// statFile wraps an *os.File and keeps its information, as ktls serve's
// handler does.
type statFile struct {
	*os.File
	fi fs.FileInfo
}

func (f *statFile) Stat() (fs.FileInfo, error) { return f.fi, nil }
