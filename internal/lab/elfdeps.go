package lab

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// libDirs are the directories where Debian's amd64 ld.so looks for a
// library named by DT_NEEDED when neither the program nor the library
// sets a run path (and no ld.so.cache exists, as in the guest).
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// pkgTree is one unpacked Debian package.
type pkgTree struct {
	name string // package name
	dir  string // where dpkg-deb -x unpacked it
}

// lookupTrees finds the guest path p in the unpacked packages, following
// symbolic links (absolute ones within the trees), and returns the real
// file and the package that holds it.
func lookupTrees(trees []pkgTree, p string) (host string, owner pkgTree, err error) {
	for range 16 {
		found := false
		for _, t := range trees {
			h := filepath.Join(t.dir, filepath.FromSlash(p))
			fi, err := os.Lstat(h)
			if err != nil {
				continue
			}
			found = true
			if fi.Mode()&fs.ModeSymlink == 0 {
				return h, t, nil
			}
			target, err := os.Readlink(h)
			if err != nil {
				return "", t, err
			}
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			p = path.Clean(target)
			break
		}
		if !found {
			return "", owner, fs.ErrNotExist
		}
	}
	return "", owner, fmt.Errorf("%s: too many levels of symbolic links", p)
}

// elfClosure returns what the dynamically linked program prog (a guest
// path) needs to run: the program, its interpreter (PT_INTERP) and the
// shared libraries named by DT_NEEDED, transitively, as found in the
// unpacked packages (files: guest path -> real host file). missing maps
// each library that was not found to the packages whose files need it.
func elfClosure(trees []pkgTree, prog string) (files map[string]string, missing map[string][]string, err error) {
	files = map[string]string{}
	missing = map[string][]string{}
	var order []string
	add := func(p string) error {
		if _, ok := files[p]; ok {
			return nil
		}
		h, _, err := lookupTrees(trees, p)
		if err != nil {
			return err
		}
		files[p] = h
		order = append(order, p)
		return nil
	}
	if err := add(prog); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", prog, err)
	}
	for i := 0; i < len(order); i++ {
		p := order[i]
		_, owner, _ := lookupTrees(trees, p)
		interp, needed, err := readELFDeps(files[p])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		if interp != "" {
			if err := add(interp); errors.Is(err, fs.ErrNotExist) {
				missing[interp] = appendNew(missing[interp], owner.name)
			} else if err != nil {
				return nil, nil, err
			}
		}
	libs:
		for _, lib := range needed {
			for _, d := range libDirs {
				err := add(path.Join(d, lib))
				if err == nil {
					continue libs
				}
				if !errors.Is(err, fs.ErrNotExist) {
					return nil, nil, err
				}
			}
			missing[lib] = appendNew(missing[lib], owner.name)
		}
	}
	return files, missing, nil
}

// readELFDeps reads an ELF file's interpreter and DT_NEEDED entries.
func readELFDeps(file string) (interp string, needed []string, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", nil, err
			}
			interp = string(b[:clen(b)])
		}
	}
	needed, err = f.DynString(elf.DT_NEEDED)
	if err != nil && f.Section(".dynamic") != nil {
		return "", nil, err
	}
	return interp, needed, nil
}

func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

func appendNew(s []string, x string) []string {
	if contains(s, x) {
		return s
	}
	s = append(s, x)
	sort.Strings(s)
	return s
}
