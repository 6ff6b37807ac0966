package ktlshttp

import (
	"errors"
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
// http.FileServer answers with 403 Forbidden.
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
	f, err := r.root.Open(rel)
	if err != nil {
		return nil, refusal(err)
	}
	return f, nil
}

// refusal turns os.Root's own refusals, which carry no errno (the name
// escapes the root), into fs.ErrPermission, and leaves the errors of the
// system alone.
func refusal(err error) error {
	var errno syscall.Errno
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.As(err, &errno) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: fs.ErrPermission}
	}
	return fs.ErrPermission
}
