// Package fileserve is the handler of ktls serve, without its access log:
// http.FileServer with an ETag, each file opened once per request, and a
// deadline on every write. ktls serve (cmd/ktls) and ktls bench's
// ktls-serve server (internal/bench) both run it, so that the benchmarks
// measure what users run.
package fileserve

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// DefaultWriteTimeout is the default of ktls serve's --write-timeout, as
// nginx's send_timeout.
const DefaultWriteTimeout = 60 * time.Second

// writeChunk is the first step of a file body under one write deadline
// (see deadlineWriter.ReadFrom): with the default timeout a client is cut
// off below about 4 KiB/s; maxWriteChunk is the largest step.
const (
	writeChunk    = 256 << 10
	maxWriteChunk = 16 << 20
)

const indexPage = "/index.html"

// Handler returns the handler of ktls serve for the files of fsys: what
// http.FileServer(fsys) answers, with these differences.
//
// A response for a regular file (or a directory's index.html) to GET or
// HEAD has an ETag made of the file's size and modification time, so that
// If-None-Match and If-Range work as If-Modified-Since does with
// http.FileServer alone. The file is opened (and its information read)
// once, and that file is what http.FileServer serves; on HTTP/1.1 its body
// still goes to the connection's ReadFrom (sendfile(2) in the kernel).
//
// With writeTimeout above 0, every write of a response gets writeTimeout
// to complete: a client that stops reading is cut off between 7/8 and all
// of writeTimeout after the last write it took (the deadline moves at most
// every writeTimeout/8, since on HTTP/2 each move is a message to the
// connection's goroutine), with its connection (HTTP/1.1) or its stream
// (HTTP/2: a stream stuck at a zero flow-control window is reset). File
// bodies that go to the connection's ReadFrom get a new deadline every 256
// KiB, or every larger step for a client that takes them fast: a step is
// doubled (up to 16 MiB) after one that took less than a 16th of
// writeTimeout, so that at the client's rate it lasts at most an 8th, and a
// client is cut off mid-step only if it slows down about 7-fold.
func Handler(fsys http.FileSystem, writeTimeout time.Duration) http.Handler {
	return &handler{fsys: fsys, d: writeTimeout}
}

type handler struct {
	fsys http.FileSystem
	d    time.Duration
}

// request is the state of one request: the files opened for it, and its
// ResponseWriter (with write deadlines if the handler has them).
type request struct {
	deadlineWriter
	opened opened
	etag   [1]string // the ETag header's value
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := &request{opened: opened{fsys: h.fsys}}
	q.deadlineWriter = deadlineWriter{ResponseWriter: w, d: h.d}
	if h.d > 0 {
		q.setter = deadlineSetter(w)
		defer q.renew() // for the writes net/http makes after the handler
	}
	w = &q.deadlineWriter
	// http.FileServer redirects ".../index.html" to "./" before it opens
	// anything.
	if !strings.HasSuffix(r.URL.Path, indexPage) {
		fi := q.opened.open(r)
		defer q.opened.close()
		if fi != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			q.etag[0] = etag(fi)
			w.Header()["Etag"] = q.etag[:]
		}
	}
	// http.FileServer opens the files of r again: it gets those opened
	// (or the errors of their opening).
	http.FileServer(&q.opened).ServeHTTP(w, r)
}

// opened is an http.FileSystem that hands out the files opened for a
// request (each once), then opens others from fsys.
type opened struct {
	fsys  http.FileSystem
	n     int
	names [2]string
	files [2]http.File
	errs  [2]error
	stat  [2]statFile
}

// statFile is an *os.File opened for a request with its information, which
// Stat returns without a system call (for http.FileServer, and for the
// connection's ReadFrom, which asks whether the file is regular).
type statFile struct {
	*os.File
	fi fs.FileInfo
}

func (f *statFile) Stat() (fs.FileInfo, error) { return f.fi, nil }

// open opens the file named by r's path as http.FileServer does (and a
// directory's index.html if the path ends in "/"), and returns the
// information of the regular file that http.FileServer is to serve (not
// redirect), or nil.
func (o *opened) open(r *http.Request) fs.FileInfo {
	upath := r.URL.Path
	if !strings.HasPrefix(upath, "/") {
		upath = "/" + upath
	}
	name := path.Clean(upath)
	dirPath := strings.HasSuffix(upath, "/")
	fi := o.add(name)
	switch {
	case fi == nil:
		return nil
	case fi.IsDir() && dirPath:
		fi = o.add(strings.TrimSuffix(name, "/") + indexPage)
	case fi.IsDir() || dirPath:
		return nil // redirected
	}
	if fi == nil || !fi.Mode().IsRegular() {
		return nil
	}
	return fi
}

// add opens name and returns its information, or nil.
func (o *opened) add(name string) fs.FileInfo {
	i := o.n
	o.n++
	f, err := o.fsys.Open(name)
	o.names[i], o.files[i], o.errs[i] = name, f, err
	if err != nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	if osf, ok := f.(*os.File); ok {
		o.stat[i] = statFile{osf, fi}
		o.files[i] = &o.stat[i]
	}
	return fi
}

func (o *opened) Open(name string) (http.File, error) {
	for i := range o.n {
		if o.names[i] == name && (o.files[i] != nil || o.errs[i] != nil) {
			f, err := o.files[i], o.errs[i]
			o.files[i], o.errs[i] = nil, nil
			return f, err
		}
	}
	return o.fsys.Open(name)
}

// close closes the files not handed out.
func (o *opened) close() {
	for i := range o.n {
		if o.files[i] != nil {
			o.files[i].Close()
		}
	}
}

// etag returns the ETag of a file: its modification time and size.
func etag(fi fs.FileInfo) string {
	var b [32]byte
	e := append(b[:0], '"')
	e = strconv.AppendInt(e, fi.ModTime().UnixNano(), 36)
	e = append(e, '-')
	e = strconv.AppendInt(e, fi.Size(), 36)
	return string(append(e, '"'))
}

// writeDeadliner is the part of net/http's ResponseWriters (HTTP/1.x and
// HTTP/2) that http.ResponseController.SetWriteDeadline calls.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// deadlineSetter returns what sets w's write deadline, found as
// http.ResponseController finds it (through Unwrap), or nil.
func deadlineSetter(w http.ResponseWriter) writeDeadliner {
	for {
		switch t := w.(type) {
		case writeDeadliner:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// deadlineWriter renews the write deadline before each write (if setter is
// not nil), and gives the connection's ReadFrom the files of a request as
// *os.File values.
type deadlineWriter struct {
	http.ResponseWriter
	setter writeDeadliner
	d      time.Duration
	last   time.Time        // of the last move of the deadline
	step   io.LimitedReader // what ReadFrom passes on
}

// renew moves the deadline to d from now, unless it moved less than d/8
// ago.
func (w *deadlineWriter) renew() {
	if w.setter == nil {
		return
	}
	if now := time.Now(); w.last.IsZero() || now.Sub(w.last) >= w.d/8 {
		w.setter.SetWriteDeadline(now.Add(w.d))
		w.last = now
	}
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.renew()
	return w.ResponseWriter.Write(p)
}

// ReadFrom passes r on to the wrapped writer's ReadFrom (sendfile) in
// steps, each with its own deadline: writeChunk bytes, twice as many after a
// step that took less than a 16th of the timeout (up to maxWriteChunk),
// writeChunk again after a slower one. Steps are not free: in the lab, 16
// MiB over kernel TLS in 256 KiB steps cost 1.5x the server CPU of one
// step. Without a deadline to renew the body goes in one step. A step of an
// io.LimitedReader (http.ServeContent's) is an io.LimitedReader of what it
// reads, not of it. A ktls.Conn sends a file (an *os.File, or a statFile,
// whose Stat costs no system call) behind an io.LimitedReader with
// sendfile, and its user-space engine reads more than a record at a time
// from one.
func (w *deadlineWriter) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w}, r)
	}
	lr, limited := r.(*io.LimitedReader)
	if !limited {
		lr = &io.LimitedReader{R: r, N: 1<<63 - 1}
	}
	src := lr.R
	var total int64
	size := int64(writeChunk)
	if w.setter == nil {
		size = lr.N
	}
	for lr.N > 0 {
		w.renew()
		step := min(lr.N, size)
		w.step = io.LimitedReader{R: src, N: step}
		start := time.Now()
		n, err := rf.ReadFrom(&w.step)
		lr.N -= n
		total += n
		if err != nil || n < step {
			return total, err
		}
		if w.setter != nil {
			if time.Since(start) < w.d/16 {
				size = min(2*size, maxWriteChunk)
			} else {
				size = writeChunk
			}
		}
	}
	return total, nil
}

// Unwrap gives http.ResponseController the wrapped writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
