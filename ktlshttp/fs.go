package ktlshttp

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"syscall"
)

// RootFS returns an http.FileSystem of the files under root, for
// http.FileServer. Names are resolved by os.Root, so no name reaches outside
// the root directory, through ".." or through a symbolic link pointing
// outside; such names fail with an error wrapping fs.ErrPermission, which
// http.FileServer answers with 403 Forbidden. Only regular files and
// directories are opened: a FIFO, socket or device fails with an error
// wrapping fs.ErrPermission too, without being opened (opening a FIFO
// waits for a writer, and opening a device may act on it).
//
// Unlike http.FS(root.FS()), whose files net/http can only copy through a
// buffer, RootFS opens *os.File values: on HTTP/1.1, net/http hands them to
// the connection's ReadFrom, which a ktls.Conn turns into sendfile(2) when its
// transmit direction is in the kernel.
func RootFS(root *os.Root) http.FileSystem {
	return rootFS{root}
}

type rootFS struct{ root *os.Root }

// Open opens the slash-separated name (http.FileServer passes it cleaned and
// starting with "/") relative to the root.
func (r rootFS) Open(name string) (http.File, error) {
	rel := strings.TrimPrefix(name, "/")
	if rel == "" {
		rel = "."
	}
	fi, err := r.root.Stat(rel)
	if err != nil {
		return nil, refusal(err)
	}
	if err := servable(name, fi); err != nil {
		return nil, err
	}
	// Should the name become a FIFO after Stat, O_NONBLOCK keeps the open
	// from waiting for a writer; reads of regular files ignore it.
	f, err := r.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, refusal(err)
	}
	if fi, err = f.Stat(); err == nil {
		err = servable(name, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// errNotServable is the error of a name that is neither a regular file nor
// a directory.
var errNotServable = fmt.Errorf("not a regular file or directory: %w", fs.ErrPermission)

// servable returns an error wrapping fs.ErrPermission unless fi, the
// information of name, is that of a regular file or a directory.
func servable(name string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() || fi.IsDir() {
		return nil
	}
	return &fs.PathError{Op: "open", Path: name, Err: errNotServable}
}

// refusal turns os.Root's own refusals, which carry no errno (the name
// escapes the root), into fs.ErrPermission, ENOTDIR (a file named as a
// directory) into fs.ErrNotExist as http.Dir does, and leaves the other
// errors of the system alone.
func refusal(err error) error {
	var pe *fs.PathError
	if errors.Is(err, syscall.ENOTDIR) && errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: fs.ErrNotExist}
	}
	var errno syscall.Errno
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.As(err, &errno) {
		return err
	}
	if errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: fs.ErrPermission}
	}
	return fs.ErrPermission
}
