package lab

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/ktls-go/ktls/internal/lab/guestconf"
)

// etcFiles make name resolution of "localhost" work without DNS.
var etcFiles = map[string]string{
	"/etc/hosts":         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	"/etc/nsswitch.conf": "hosts: files dns\n",
	"/etc/passwd":        "root:x:0:0:root:/tmp:/bin/false\n",
	"/etc/group":         "root:x:0:\n",
}

// writeArchive writes one gzip-compressed newc cpio archive. Linux accepts
// an initramfs made of several such archives one after another, so the
// part shared by all kernels is written once and the per-kernel part
// (modules, run configuration) appended for each boot.
func writeArchive(file string, fill func(*cpioWriter)) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return err
	}
	w := newCPIOWriter(zw)
	fill(w)
	if err := w.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// commonArchive holds /init, /dev/console, /etc and the given files
// (guest path -> host path).
func commonArchive(file, initBin string, files [][2]string) error {
	return writeArchive(file, func(w *cpioWriter) {
		w.CopyFile("/init", initBin)
		w.CharDev("/dev/console", 5, 1)
		w.CharDev("/dev/null", 1, 3)
		for _, d := range []string{"/proc", "/sys", "/tmp", "/run", "/bin"} {
			w.Dir(d)
		}
		for p, s := range etcFiles {
			w.File(p, 0o644, []byte(s))
		}
		for _, f := range files {
			w.CopyTree(f[0], f[1])
		}
	})
}

// kernelArchive holds one kernel's modules and the run configuration
// (with cfg.Modules set to their guest paths); it returns the number of
// modules.
func kernelArchive(file string, k Kernel, cfg guestconf.Config) (int, error) {
	db, err := loadModuleDB(k.ModDir)
	if err != nil {
		return 0, err
	}
	mods, required, err := db.guestModules(cfg.Network)
	if err != nil {
		return 0, err
	}
	cfg.Required = required
	cfg.Modules = nil
	for _, m := range mods {
		cfg.Modules = append(cfg.Modules, path.Join("/lab/modules", m))
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return 0, err
	}
	return len(mods), writeArchive(file, func(w *cpioWriter) {
		for _, m := range mods {
			w.CopyFile(path.Join("/lab/modules", m), filepath.Join(k.ModDir, filepath.FromSlash(m)))
		}
		w.File(guestconf.Path, 0o644, b)
	})
}

// concat writes the files one after another into dst.
func concat(dst string, srcs ...string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	for _, s := range srcs {
		in, err := os.Open(s)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			return err
		}
	}
	return out.Close()
}
