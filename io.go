package ktls

import (
	"errors"
	"io"
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
// space, each read from r lands in place in a record's payload and is sealed
// there (record.Writer.ReadFrom), without another copy.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if c.txMode == ModeNone {
		return copyBuffered(writerOnly{c}, r)
	}
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.closeNotifySent {
		return 0, errShutdown
	}
	n, err := c.readFromLocked(r)
	countTX(n)
	return n, err
}

// readFromLocked is ReadFrom once the handshake is done; c.out is held.
func (c *Conn) readFromLocked(r io.Reader) (int64, error) {
	if c.txMode == ModeUser {
		return c.out.w.ReadFrom(r)
	}
	if n, handled, err := c.sendFile(r); handled {
		return n, err
	}
	if rf, ok := c.conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return copyBuffered(c.conn, readerOnly{r})
}

// WriteTo writes the application data it reads to w until the end of the
// stream, implementing io.WriterTo. With the receiving direction in the
// kernel the data goes from the socket to w by w's ReadFrom, which splices
// where w is a socket or a file; when a control record arrives (splice(2)
// fails with EINVAL, read(2) with EIO) WriteTo reads it with recvmsg and
// goes on. On FreeBSD, whose read(2) returns the payload of every record as
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
		if rf, ok := w.(io.ReaderFrom); ok {
			n, err = rf.ReadFrom(c.conn)
		} else {
			n, err = io.Copy(w, c.conn)
		}
		total += n
		counters.bytesRX.Add(uint64(n))
		counters.recordsRX.Add(recordsOf(n))
		if err == nil {
			// The end of the TCP stream without close_notify.
			counters.badTruncated.Add(1)
			c.in.err = ErrTruncated
			return total, ErrTruncated
		}
		if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EINVAL) {
			return total, err
		}
		// A control record is next: read it (or data) by recvmsg.
		m, err := c.readLocked(c.scratch())
		if m > 0 {
			c.in.pending = c.in.scratch[:m]
		}
		if err != nil && err != io.EOF {
			return total, err
		}
	}
}

type writerOnly struct{ io.Writer }

type readerOnly struct{ io.Reader }
