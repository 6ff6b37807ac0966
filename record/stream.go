package record

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"syscall"
)

// maxBatch is the number of full records Writer.Write seals before handing
// them to the underlying writer in one call.
const maxBatch = 16

// Writer writes protected records to an underlying writer, typically the TCP
// connection of a direction whose record layer runs in user space. It is not
// safe for concurrent use.
//
// A Writer holds no buffer between calls: each call takes one from a pool
// shared by all Writers and gives it back before it returns, as crypto/tls
// does with its output buffer, so that a connection that sent a large
// response once does not keep 16 records' worth of memory for its life.
type Writer struct {
	w   io.Writer
	s   *Sealer
	bp  *[]byte // the pooled buffer of the call in progress
	buf []byte  // sealed records not yet written: *bp's, during a call
	err error   // sticky: once records are lost the stream is broken
}

// bufPool holds the Writers' buffers between calls.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// NewWriter returns a Writer sealing with s and writing to w.
func NewWriter(w io.Writer, s *Sealer) *Writer {
	return &Writer{w: w, s: s}
}

// Write seals p into application_data records and writes them to the
// underlying writer. It packs p into full records of MaxPlaintext bytes
// (only the last may be shorter) and hands up to 16 records (256 KiB) at a
// time to the underlying writer in a single Write call, which is one
// write(2) on a net.Conn: the records lie back to back in one buffer, so a
// single contiguous write does what a writev of the records would do. The
// buffer comes from a pool, so that Write does not allocate in steady
// state. An empty p writes nothing (WriteRecord writes an empty record).
// Write returns when all of p has been written or on the first error;
// after an error the Writer is unusable, as records it sealed may be lost.
func (w *Writer) Write(p []byte) (n int, err error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	records := min((len(p)+MaxPlaintext-1)/MaxPlaintext, maxBatch)
	w.getBuf(min(len(p), records*MaxPlaintext) + records*w.s.Overhead())
	defer w.putBuf()
	for len(p) > 0 {
		records := min((len(p)+MaxPlaintext-1)/MaxPlaintext, maxBatch)
		batch := min(len(p), records*MaxPlaintext)
		sealed := 0
		var serr error
		for sealed < batch {
			chunk := p[sealed:min(batch, sealed+MaxPlaintext)]
			if w.buf, serr = w.s.Seal(w.buf, TypeApplicationData, chunk); serr != nil {
				break
			}
			sealed += len(chunk)
		}
		if err := w.flush(); err != nil {
			return n, err
		}
		n += sealed
		if serr != nil {
			w.err = serr
			return n, serr
		}
		p = p[sealed:]
	}
	return n, nil
}

// ReadFrom reads application data from r until io.EOF and writes it in
// records, implementing io.ReaderFrom. Each Read goes straight into the
// place of a record's payload in the Writer's buffer, up to MaxPlaintext
// bytes, and is sealed there, so that the data is not copied again (Write
// must copy a TLS 1.3 payload to append its inner content type). While reads
// fill whole records, as from a file, up to 16 records are batched into one
// write; a short read sends what has been read at once, so that data from a
// stream is not held back. On Linux a regular file (an *os.File, or a type
// wrapping one; also behind an io.LimitedReader) is read into the payloads
// of a whole batch with one readv(2). The buffer holds one record for a
// source that may
// block (a socket, a pipe) and no more records than an io.LimitedReader has
// left. ReadFrom returns the number of bytes read from r and written, and the
// first error other than io.EOF.
func (w *Writer) ReadFrom(r io.Reader) (n int64, err error) {
	return w.ReadFromAfter(nil, r)
}

// ReadFromAfter writes p and then what r yields, as Write(p) and
// ReadFrom(r) would, but seals p into one record with r's first bytes when
// p fits in a record (MaxPlaintext bytes), so that a short header and the
// body that follows it make one record and one write instead of two. A p
// that does not fit is written first by Write. The count returned is of
// the bytes read from r, as for ReadFrom.
func (w *Writer) ReadFromAfter(p []byte, r io.Reader) (n int64, err error) {
	if len(p) > MaxPlaintext {
		if _, err := w.Write(p); err != nil {
			return 0, err
		}
		p = nil
	}
	if w.err != nil {
		return 0, w.err
	}
	off, slot := w.s.PayloadOffset(), MaxPlaintext+w.s.Overhead()
	records := readFromBatch(r)
	// Records from a source that may block go out after each read, so
	// that a stream never waits in the buffer for more input.
	batching := records > 1
	w.getBuf(records * slot)
	defer w.putBuf()
	// A regular file is read into all the batch's records with one call.
	var fr *fileReader
	if batching {
		if fr = newFileReader(r); fr != nil {
			defer fr.release()
		}
	}
	for {
		var rerr, serr error
		batch := 0
		// p, if any, goes first in the first record.
		k := copy(w.buf[off:off+MaxPlaintext], p)
		p = p[k:]
		got := 0 // what fr read into the slots and is not sealed yet
		if fr != nil {
			got, rerr = fr.fill(w.buf[:cap(w.buf)], off, slot, k)
		}
		for more := true; more && len(w.buf)+slot <= cap(w.buf); k = 0 {
			start := len(w.buf) + off
			rec := w.buf[start : start+MaxPlaintext]
			var m int
			if fr != nil {
				m = min(got, len(rec)-k)
				got -= m
			} else {
				m, rerr = r.Read(rec[k:])
				if m < 0 || m > len(rec)-k {
					m, rerr = 0, errors.New("record: invalid Read result")
				}
			}
			if k+m > 0 {
				if w.buf, serr = w.s.Seal(w.buf, TypeApplicationData, rec[:k+m]); serr != nil {
					break
				}
				batch += m
			}
			more = batching && rerr == nil && k+m == len(rec)
		}
		if err := w.flush(); err != nil {
			return n, err
		}
		n += int64(batch)
		switch {
		case serr != nil:
			w.err = serr
			return n, serr
		case rerr == io.EOF:
			return n, nil
		case rerr != nil:
			return n, rerr
		}
	}
}

// WriteRecord seals p into one record of type typ and writes it, as
// sendmsg with a TLS_SET_RECORD_TYPE control message does. len(p) must not
// exceed MaxPlaintext; an empty p makes a zero-length record.
func (w *Writer) WriteRecord(typ ContentType, p []byte) error {
	if w.err != nil {
		return w.err
	}
	w.getBuf(len(p) + w.s.Overhead())
	defer w.putBuf()
	var err error
	if w.buf, err = w.s.Seal(w.buf, typ, p); err != nil {
		return err // nothing was sealed; the stream is intact
	}
	return w.flush()
}

// SetSealer replaces the Sealer for the records written from now on, as a
// TLS 1.3 connection does after sending a KeyUpdate.
func (w *Writer) SetSealer(s *Sealer) { w.s = s }

// getBuf sets w.buf to an empty buffer from bufPool that can hold n bytes.
func (w *Writer) getBuf(n int) {
	w.bp = bufPool.Get().(*[]byte)
	if cap(*w.bp) < n {
		*w.bp = make([]byte, 0, n)
	}
	w.buf = (*w.bp)[:0]
}

// putBuf gives w.buf back to bufPool.
func (w *Writer) putBuf() {
	*w.bp = w.buf[:0]
	bufPool.Put(w.bp)
	w.bp, w.buf = nil, nil
}

// readFromBatch returns the number of records ReadFrom seals before it
// writes them: one for a source that may block, else up to maxBatch, and
// no more than an io.LimitedReader has left to read.
func readFromBatch(r io.Reader) int {
	if !readsWithoutBlocking(r) {
		return 1
	}
	if lr, ok := r.(*io.LimitedReader); ok {
		return int(max(1, min(maxBatch, (lr.N+MaxPlaintext-1)/MaxPlaintext)))
	}
	return maxBatch
}

// flush writes the sealed records in w.buf.
func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		w.err = err
	}
	return err
}

const (
	// readChunk is the least room a Reader of full size leaves for one
	// read from the underlying reader.
	readChunk = 1 << 16
	// readBufSize, the full size, holds a partial record of the largest
	// size plus a chunk.
	readBufSize = readChunk + HeaderLen + maxCiphertext12
	// readBufStart is the size a Reader's buffer starts at: enough for the
	// small records of a short exchange (an HTTP request), so that a
	// connection that moves little, or waits idle for its next request,
	// holds no more than crypto/tls would.
	readBufStart = 1024
)

// Reader reads protected records from an underlying reader, typically the
// TCP connection of a direction whose record layer runs in user space. It
// reads in large chunks (64 KiB and more, once the stream has shown it has
// that much to read), keeps records that arrive split across reads, and
// opens each record in place in its buffer. It is not safe for concurrent
// use.
type Reader struct {
	r          io.Reader
	o          *Opener
	buf        []byte
	start, end int   // unread bytes are buf[start:end]
	full       bool  // the last read filled the buffer: more may be waiting
	rerr       error // error from r, returned once the buffer runs dry
	err        error // sticky record error
}

// NewReader returns a Reader reading from r and opening with o.
func NewReader(r io.Reader, o *Opener) *Reader {
	return &Reader{r: r, o: o}
}

// ReadRecord reads and opens the next record and returns its content type
// and plaintext. The plaintext is valid until the next call. Zero-length
// records are returned as such.
//
// At the end of the stream ReadRecord returns io.EOF if it ended at a record
// boundary, and an *Error wrapping ErrTruncated (and so syscall.EMSGSIZE) if
// it ended inside a record. Errors from ParseHeader and Opener.Open are
// returned as they are and stick: every later call returns the same error.
// Other errors of the underlying reader are returned as they are and do not
// stick; data read before them is kept.
func (r *Reader) ReadRecord() (ContentType, []byte, error) {
	return r.ReadRecordTo(nil)
}

// ReadRecordTo is ReadRecord, except that a record whose decrypted body fits
// in dst is opened into dst, which saves copying its plaintext out of the
// Reader's buffer: the plaintext returned is then dst[:n], and dst may have
// been written beyond n (TLS 1.3 padding and inner content type). A dst of
// MaxPlaintext+1 bytes holds any record; for a smaller one the result
// depends on the record, and a record that does not fit is opened in place
// in the Reader's buffer as by ReadRecord. dst must not overlap the
// Reader's buffer; when opening fails, dst's contents are unspecified.
func (r *Reader) ReadRecordTo(dst []byte) (ContentType, []byte, error) {
	if r.err != nil {
		return 0, nil, r.err
	}
	if err := r.fill(HeaderLen); err != nil {
		return 0, nil, err
	}
	h, err := ParseHeader(r.buf[r.start:r.end], r.o.Version())
	if err != nil {
		r.err = err
		return 0, nil, err
	}
	n := HeaderLen + h.Length
	if err := r.fill(n); err != nil {
		return 0, nil, err
	}
	rec := r.buf[r.start : r.start+n]
	r.start += n
	typ, pt, err := r.o.open(dst, rec)
	if err != nil {
		r.err = err
		return 0, nil, err
	}
	return typ, pt, nil
}

// SetOpener replaces the Opener for the records read from now on, including
// those already buffered, as a TLS 1.3 connection does after receiving a
// KeyUpdate.
func (r *Reader) SetOpener(o *Opener) { r.o = o }

// Buffered returns the number of bytes read from the underlying reader that
// ReadRecord has not returned yet.
func (r *Reader) Buffered() int { return r.end - r.start }

// fill reads until at least n unread bytes are buffered.
func (r *Reader) fill(n int) error {
	for empty := 0; r.end-r.start < n; {
		if err := r.rerr; err != nil {
			r.rerr = nil
			if errors.Is(err, io.EOF) {
				if r.end > r.start {
					err = errorf("read", AlertDecodeError, ErrTruncated)
				} else {
					err = io.EOF
				}
				r.rerr = io.EOF
			}
			return err
		}
		r.makeRoom(n)
		m, err := r.r.Read(r.buf[r.end:])
		if m < 0 || m > len(r.buf)-r.end {
			return errorf("read", AlertInternalError, syscall.EIO)
		}
		r.end += m
		r.full = r.end == len(r.buf)
		r.rerr = err
		if m > 0 || err != nil {
			empty = 0
		} else if empty++; empty == 100 {
			return io.ErrNoProgress
		}
	}
	return nil
}

// makeRoom moves the unread bytes, less than n and so less than a record,
// to the start of the buffer, so that the next read has all the rest of it.
// The buffer grows from readBufStart to readBufSize when n needs it or the
// last read filled it: at full size a read has room for readChunk bytes.
func (r *Reader) makeRoom(n int) {
	buf := r.buf
	if len(buf) < n || r.full && len(buf) < readBufSize {
		buf = make([]byte, min(max(n, 2*len(buf), readBufStart), readBufSize))
		r.full = false
	}
	r.end = copy(buf, r.buf[r.start:r.end])
	r.buf, r.start = buf, 0
}

// file is what ReadFrom needs of a file: an *os.File, or a type that wraps
// one and keeps its information (so that Stat costs no system call).
type file interface {
	io.Reader
	Name() string
	Stat() (fs.FileInfo, error)
	SyscallConn() (syscall.RawConn, error)
}

// readsWithoutBlocking reports whether reads from r never wait for a peer:
// regular files (see file) and in-memory readers, also behind an
// io.LimitedReader or io.SectionReader.
func readsWithoutBlocking(r io.Reader) bool {
	switch r := r.(type) {
	case *io.LimitedReader:
		return readsWithoutBlocking(r.R)
	case file:
		fi, err := r.Stat()
		return err == nil && fi.Mode().IsRegular()
	case *bytes.Reader, *strings.Reader, *bytes.Buffer, *io.SectionReader:
		return true
	}
	return false
}
