package ktls

import (
	"errors"
	"io"
	"syscall"
)

// copyBuffer is the buffer size of the copy loops: 16 full records, which
// the user-space record layer seals and writes in one write(2).
const copyBuffer = 16 * 16384

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
		return io.CopyBuffer(writerOnly{c}, r, make([]byte, copyBuffer))
	}
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.closeNotifySent {
		return 0, errShutdown
	}
	if c.txMode == ModeUser {
		return c.out.w.ReadFrom(r)
	}
	if n, handled, err := c.sendFile(r); handled {
		return n, err
	}
	if rf, ok := c.conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.CopyBuffer(c.conn, readerOnly{r}, make([]byte, copyBuffer))
}

// WriteTo writes the application data it reads to w until the end of the
// stream, implementing io.WriterTo. With the receiving direction in the
// kernel the data goes from the socket to w by w's ReadFrom, which splices
// where w is a socket or a file; when a control record arrives (splice(2)
// fails with EINVAL, read(2) with EIO) WriteTo reads it with recvmsg and
// goes on.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if !c.rxMode.IsKernel() {
		return io.CopyBuffer(w, readerOnly{c}, make([]byte, copyBuffer))
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
		if err == nil {
			return total, nil // end of the TCP stream without close_notify
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
