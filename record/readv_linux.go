package record

import (
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// fileReader reads a regular file into the payload slots of a batch of
// records with one readv(2), where Read takes one read(2) per record: on
// the host, the cost of a read(2) call is about that of copying 50 KiB, so
// a batch of 16 records from the page cache costs about half as much to
// read.
type fileReader struct {
	f    file
	lr   *io.LimitedReader // the limit in front of f, if any
	rc   syscall.RawConn
	iov  [maxBatch]syscall.Iovec
	niov int
	n    int
	err  syscall.Errno
	call func(fd uintptr) bool // readv, bound once
}

var fileReaderPool = sync.Pool{New: func() any {
	fr := new(fileReader)
	fr.call = fr.readv
	return fr
}}

// newFileReader returns a fileReader for r if r is a file, alone or
// behind one io.LimitedReader, that readsWithoutBlocking has found regular,
// else nil. The caller gives it back with release.
func newFileReader(r io.Reader) *fileReader {
	lr, _ := r.(*io.LimitedReader)
	if lr != nil {
		r = lr.R
	}
	f, ok := r.(file)
	if !ok {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	fr := fileReaderPool.Get().(*fileReader)
	fr.f, fr.lr, fr.rc = f, lr, rc
	return fr
}

// release gives fr back to the pool, with no reference to the file or the
// buffer.
func (fr *fileReader) release() {
	fr.f, fr.lr, fr.rc = nil, nil, nil
	fr.iov = [maxBatch]syscall.Iovec{}
	fileReaderPool.Put(fr)
}

// fill reads, with one readv(2), into the payload slots of the records
// that fit in buf: buf[i*slot+off:][:MaxPlaintext] for record i, less the
// first k bytes of the first, which are taken. The slots are filled in
// order, so only the last record with data may be short. Like os.File.Read
// (and io.LimitedReader's), fill returns io.EOF when it reads nothing at
// the end of the file or of the limit.
func (fr *fileReader) fill(buf []byte, off, slot, k int) (int, error) {
	limit := int64(len(buf)) // no more than the slots hold
	if fr.lr != nil {
		limit = fr.lr.N
	}
	fr.niov = 0
	for i := 0; (i+1)*slot <= len(buf) && limit > 0; i++ {
		b := buf[i*slot+off+k : i*slot+off+MaxPlaintext]
		b = b[:min(int64(len(b)), limit)]
		limit -= int64(len(b))
		fr.iov[i].Base = &b[0]
		fr.iov[i].SetLen(len(b))
		fr.niov++
		k = 0
	}
	if fr.niov == 0 {
		return 0, io.EOF
	}
	if err := fr.rc.Read(fr.call); err != nil {
		return 0, err
	}
	if fr.err != 0 {
		return 0, &os.PathError{Op: "readv", Path: fr.f.Name(), Err: fr.err}
	}
	if fr.n == 0 {
		return 0, io.EOF
	}
	if fr.lr != nil {
		fr.lr.N -= int64(fr.n)
	}
	return fr.n, nil
}

// readv is the readv(2) of fill, called by fr.rc.Read with the file's
// descriptor.
func (fr *fileReader) readv(fd uintptr) bool {
	for {
		n, _, e := syscall.Syscall(syscall.SYS_READV, fd, uintptr(unsafe.Pointer(&fr.iov[0])), uintptr(fr.niov))
		if e != syscall.EINTR {
			fr.n, fr.err = int(n), e
			return true
		}
	}
}
