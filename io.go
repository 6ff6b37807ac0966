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
// direction in the kernel it uses sendfile(2) for an *os.File (or an
// io.LimitedReader of one) and splice(2) for a TCP or Unix socket source,
// so the data never enters user space. With the sending direction in user
// space, each read from a file lands in place in a record's payload and is
// sealed there (record.Writer.ReadFrom), without another copy.
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
	if !readsWithoutBlocking(r) {
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
		n, err := c.readFromLocked(src)
		back(n)
		total += n
		c.out.records += recordsOf(n)
		countTX(n)
		if err != nil || n < budget {
			return total, err
		}
	}
}

// limitTo returns r limited to n bytes, and the function to call with the
// number of bytes read that accounts them to r when r is itself an
// io.LimitedReader (so that sendFile still sees a file behind one level).
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

// readsWithoutBlocking reports whether reads from r never wait for a peer:
// regular files and in-memory readers, also behind an io.LimitedReader or
// io.SectionReader. Only those are read with the sending direction held.
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

// readFromLocked sends what r yields; r does not block (see
// readsWithoutBlocking) and c.out is held.
func (c *Conn) readFromLocked(r io.Reader) (int64, error) {
	if c.txMode == ModeUser {
		return c.out.w.ReadFrom(r)
	}
	if n, handled, err := c.sendFile(r); handled {
		return n, err
	}
	return copyBuffered(c.conn, readerOnly{r})
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
