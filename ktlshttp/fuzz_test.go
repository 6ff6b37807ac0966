package ktlshttp

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// secretMark is the content of the files outside the served root.
const secretMark = "SECRET-c0ffee"

// hostileTree makes DIR/www, the root to serve, with files and symbolic
// links, some of them escaping it, and DIR/outside with the secret.
func hostileTree(t testing.TB) string {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"www/index.html":         "<h1>hi</h1>",
		"www/a/b/c.txt":          "c",
		"www/.hidden":            "hidden",
		"outside/secret.txt":     secretMark,
		"outside/dir/index.html": secretMark,
		"www2/secret.txt":        secretMark, // a sibling whose name starts like the root's
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"out.txt":      "../outside/secret.txt",
		"outdir":       "../outside",
		"abs.txt":      filepath.Join(dir, "outside/secret.txt"),
		"a/b/back.txt": "../../../outside/secret.txt",
		"a/up":         "../..",
		"loop":         "loop",
		"in.txt":       "index.html",
	} {
		if err := os.Symlink(target, filepath.Join(dir, "www", link)); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "www")
}

// FuzzRootFSPath asks http.FileServer(RootFS(root)) for arbitrary paths
// (set as the parsed path and as a raw request URI) and opens them with
// RootFS directly: no answer and no file may ever carry the content of a
// file outside the root, reached by "..", by a symbolic link or otherwise.
func FuzzRootFSPath(f *testing.F) {
	for _, s := range []string{
		"/", "/index.html", "/in.txt", "/out.txt", "/outdir/secret.txt", "/outdir/", "/abs.txt",
		"/a/b/back.txt", "/a/up/outside/secret.txt", "/../outside/secret.txt", "/..%2foutside/secret.txt",
		"/%2e%2e/outside/secret.txt", "/a/b/../../../outside/secret.txt", "/loop", "/outdir/dir/",
		"//outside/secret.txt", "/./out.txt", "/a\\..\\..\\outside\\secret.txt", "/../www2/secret.txt",
		"/outdir%00/secret.txt", "/.hidden", "/a/up/www2/secret.txt",
	} {
		f.Add(s)
	}
	www := hostileTree(f)
	root, err := os.OpenRoot(www)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	fsys := RootFS(root)
	h := http.FileServer(fsys)
	f.Fuzz(func(t *testing.T, p string) {
		check := func(req *http.Request) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if bytes.Contains(w.Body.Bytes(), []byte(secretMark)) {
				t.Fatalf("GET %q: %d with the secret", req.URL, w.Code)
			}
		}
		check(&http.Request{Method: "GET", URL: &url.URL{Path: p}, Header: http.Header{}})
		if u, err := url.ParseRequestURI(p); err == nil {
			check(&http.Request{Method: "GET", URL: u, RequestURI: p, Header: http.Header{}})
		}
		file, err := fsys.Open(p)
		if err != nil {
			return
		}
		defer file.Close()
		b, _ := io.ReadAll(io.LimitReader(file, 1<<16))
		if bytes.Contains(b, []byte(secretMark)) {
			t.Fatalf("RootFS.Open(%q) reached a file outside the root", p)
		}
	})
}
