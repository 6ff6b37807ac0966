package ktls

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"syscall"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
)

// copyBuffer is the buffer size of the copy loops: 16 full records, which
// the user-space record layer seals and writes in one write(2).
const copyBuffer = 16 * 16384

// copyPool holds the copy loops' buffers, so that ReadFrom and WriteTo do
// not allocate in steady state.
var copyPool = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

// copyBuffered is io.CopyBuffer with a buffer from copyPool.
func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	b := copyPool.Get().(*[]byte)
	defer copyPool.Put(b)
	return io.CopyBuffer(dst, src, *b)
}

// ReadFrom sends what r yields, implementing io.ReaderFrom. With the sending
// direction in the kernel it uses sendfile(2) for a regular file (an
// *os.File, or a type wrapping one with its Stat and SyscallConn methods;
// also behind io.LimitedReaders) and splice(2) for a TCP or Unix socket
// source, so the data never enters user space. With the sending direction
// in user space, a file is read into the payloads of up to 16 records at a
// time and sealed in place (record.Writer.ReadFrom), without another copy.
//
// ReadFrom holds the sending direction only while it sends: a source that
// may block (a socket, a pipe) is waited for without it, so that Read can
// go on meanwhile (and the sending direction can carry what Read owes the
// peer: an alert, the answer to a KeyUpdate).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if c.txMode == ModeNone {
		return copyBuffered(writerOnly{c}, r)
	}
	fi, nonBlocking := source(r)
	blocking := !nonBlocking
	if blocking {
		// What Write held goes now, not after a wait for r.
		if err := c.Uncork(); err != nil {
			return 0, err
		}
	}
	c.lockOut()
	err := c.out.err
	c.unlockOut()
	if err != nil {
		return 0, err // before anything is read from r
	}
	if c.txMode.IsKernel() {
		if n, handled, err := c.spliceFrom(r); handled {
			return n, err
		}
	}
	if blocking {
		// Each Write takes the sending direction.
		return copyBuffered(writerOnly{c}, r)
	}
	c.lockOut()
	defer c.unlockOut()
	var total int64
	for {
		if err := c.prepareLocked(); err != nil {
			return total, err
		}
		// At most the budget of the current key (see recordsPerKey),
		// then again.
		budget := c.budgetLocked()
		src, back := limitTo(r, budget)
		held := int64(len(c.out.held))
		n, err := c.readFromLocked(src, fi)
		back(n)
		total += n
		c.out.records += recordsOf(n + held)
		countTX(n + held)
		if err != nil || n < budget {
			return total, err
		}
	}
}

// Cork makes Write hold what it is given, while it fits in one record
// (16 KiB), instead of sending it at once, so that it goes out in the same
// record as what follows: the next ReadFrom of a file or in-memory reader
// (in the kernel, the held bytes are sent with MSG_MORE, which keeps the
// kernel's record open for the sendfile(2) data that follows), or a Write
// that no longer fits. Uncork sends what is still held, as do Close and
// CloseWrite (before close_notify) and a ReadFrom of a source that may
// block, which uncorks first. This is TCP_CORK for records: ktlshttp corks
// the connection around ResponseWriter.ReadFrom, so that net/http's
// response header and the start of a file body make one record, not two.
//
// A corked Conn may hold data indefinitely: whoever corks must Uncork.
// Cork has no effect on a connection whose record layer stayed in
// crypto/tls (ModeNone).
func (c *Conn) Cork() {
	c.out.Lock()
	c.out.corked = true
	c.out.Unlock()
}

// Uncork ends Cork and sends what Write held, in one record; it returns
// the error of sending it.
func (c *Conn) Uncork() error {
	c.lockOut()
	defer c.unlockOut()
	c.out.corked = false
	if len(c.out.held) == 0 {
		return nil
	}
	if err := c.prepareLocked(); err != nil {
		c.out.held = c.out.held[:0]
		return err
	}
	return c.sendHeldLocked()
}

// holdLocked keeps p in c.out.held if the Conn is corked and p fits in the
// held record, and reports whether it did. c.out is held.
func (c *Conn) holdLocked(p []byte) bool {
	if !c.out.corked || c.out.err != nil || len(c.out.held)+len(p) > record.MaxPlaintext {
		return false
	}
	c.out.held = append(c.out.held, p...)
	return true
}

// sendHeldLocked sends what Write held while corked; c.out is held and
// prepareLocked done. The buffer is kept for the next response unless it
// grew beyond a typical header's size.
func (c *Conn) sendHeldLocked() error {
	if len(c.out.held) == 0 {
		return nil
	}
	_, err := c.writeLocked(c.out.held)
	c.dropHeldLocked()
	return err
}

// dropHeldLocked empties c.out.held once it is sent.
func (c *Conn) dropHeldLocked() {
	if cap(c.out.held) > maxKeptHeld {
		c.out.held = nil
	} else {
		c.out.held = c.out.held[:0]
	}
}

// maxKeptHeld is the largest held buffer a Conn keeps between uses.
const maxKeptHeld = 4096

// limitTo returns r limited to n bytes, and the function to call with the
// number of bytes read that accounts them to r when r is itself an
// io.LimitedReader (so that sendFile sees the file behind no more levels
// than r had).
func limitTo(r io.Reader, n int64) (io.Reader, func(int64)) {
	if lr, ok := r.(*io.LimitedReader); ok {
		inner := &io.LimitedReader{R: lr.R, N: min(lr.N, n)}
		return inner, func(m int64) { lr.N -= m }
	}
	return &io.LimitedReader{R: r, N: n}, func(int64) {}
}

// file is what sendFile needs of an *os.File. An interface rather than the
// type, so that the wrapper io.Copy(conn, f) passes on (File.WriteTo hides
// itself behind a type embedding *os.File) still qualifies.
type file interface {
	io.Reader
	Stat() (fs.FileInfo, error)
	SyscallConn() (syscall.RawConn, error)
}

// source reports whether reads from r never wait for a peer: regular
// files and in-memory readers, also behind an io.LimitedReader or
// io.SectionReader. Only those are read with the sending direction held.
// For a regular file (also behind an io.LimitedReader) it returns its
// FileInfo, which sendFile uses: one fstat(2) per ReadFrom.
func source(r io.Reader) (fs.FileInfo, bool) {
	switch r := r.(type) {
	case *io.LimitedReader:
		return source(r.R)
	case file:
		fi, err := r.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return nil, false
		}
		return fi, true
	case *bytes.Reader, *strings.Reader, *bytes.Buffer, *io.SectionReader:
		return nil, true
	}
	return nil, false
}

// readFromLocked sends what Write held (see Cork) and then what r yields;
// r does not block (see source) and c.out is held; fi is r's file's, if r
// is a file. The count is of r's bytes; the caller counts the held ones.
func (c *Conn) readFromLocked(r io.Reader, fi fs.FileInfo) (int64, error) {
	if c.txMode == ModeUser {
		// What Write held is sealed with r's first bytes.
		n, err := c.out.w.ReadFromAfter(c.out.held, r)
		c.dropHeldLocked()
		return n, err
	}
	if n, handled, err := c.sendFile(r, fi); handled {
		return n, err
	}
	var first int64
	if len(c.out.held) > 0 {
		// What Write held goes in one write, so one record, with r's
		// first bytes (counted by ReadFrom).
		b := copyPool.Get().(*[]byte)
		k := copy(*b, c.out.held)
		c.dropHeldLocked()
		m, rerr := r.Read((*b)[k:])
		_, err := c.conn.Write((*b)[:k+m])
		copyPool.Put(b)
		first = int64(m)
		switch {
		case err != nil:
			return 0, err
		case rerr == io.EOF:
			return first, nil
		case rerr != nil:
			return first, rerr
		}
	}
	n, err := copyBuffered(c.conn, readerOnly{r})
	return first + n, err
}

// WriteTo writes the application data it reads to w until the end of the
// stream, implementing io.WriterTo. With the receiving direction in the
// kernel the data goes from the socket to w by w's ReadFrom, which splices
// where w is a socket or a file; when a control record arrives (splice(2)
// fails with EINVAL, read(2) with EIO) WriteTo reads it with recvmsg and
// goes on. On Linux before 5.16, whose splice(2) out of a TLS socket can
// repeat or skip data (see kernel.SpliceRXSafe), it reads with read(2) and
// writes to w instead. On FreeBSD, whose read(2) returns the payload of every record as
// data, each record is read with recvmsg and its type checked, as by Read.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if !c.rxMode.IsKernel() || !kernel.DataReadSafe {
		return copyBuffered(w, readerOnly{c})
	}
	c.in.Lock()
	defer c.in.Unlock()
	defer c.releaseScratch()
	var total int64
	for {
		if len(c.in.pending) > 0 {
			n, err := w.Write(c.in.pending)
			c.in.pending = c.in.pending[n:]
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
		if c.in.err != nil {
			if c.in.err == io.EOF {
				return total, nil
			}
			return total, c.in.err
		}
		var (
			n   int64
			err error
		)
		if !kernel.SpliceRXSafe() {
			// No splice(2) out of the socket, by w's ReadFrom or by
			// the socket's WriteTo: only read(2).
			n, err = copyBuffered(writerOnly{w}, readerOnly{c.conn})
		} else if rf, ok := w.(io.ReaderFrom); ok {
			n, err = rf.ReadFrom(c.conn)
		} else {
			n, err = io.Copy(w, c.conn)
		}
		total += n
		counters.bytesRX.Add(uint64(n))
		counters.recordsRX.Add(recordsOf(n))
		if n > 0 {
			c.in.useless = 0
		}
		if err == nil {
			// The end of the TCP stream without close_notify.
			counters.eofNoCloseNotify.Add(1)
			c.in.err = ErrTruncated
			return total, ErrTruncated
		}
		if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EINVAL) {
			return total, err
		}
		// A control record is next: read it (or data) by recvmsg.
		if err := c.readToPending(); err != nil && err != io.EOF {
			return total, err
		}
	}
}

type writerOnly struct{ io.Writer }

type readerOnly struct{ io.Reader }
