package lab

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Modules and module aliases the guest needs. The kernel's TLS asks the
// crypto API for these algorithms; without modprobe in the guest nothing
// loads them on demand, so they are loaded before the tests run.
var (
	// tlsModules must be available (loaded or built in) on every kernel.
	tlsModules = []string{"tls", "tcp_diag", "inet_diag"}
	// cryptoAliases are looked up in modules.alias; any module providing
	// one is loaded. Missing ones are assumed to be built in.
	cryptoAliases = []string{
		"crypto-gcm(aes)", "crypto-gcm", "crypto-gcm_base", "crypto-rfc4106",
		"crypto-ccm(aes)", "crypto-ccm", "crypto-ccm_base", "crypto-cbcmac",
		"crypto-rfc7539(chacha20,poly1305)", "crypto-rfc7539",
		"crypto-chacha20", "crypto-poly1305",
		"crypto-ghash", "crypto-aes", "crypto-ctr", "crypto-seqiv", "crypto-authenc",
	}
	// netModules are loaded for "run" (virtio network card).
	netModules = []string{"virtio_pci", "virtio_net"}
	// neverLoad are modules never put into the guest (tcrypt runs the
	// crypto self tests for minutes under emulation).
	neverLoad = map[string]bool{"tcrypt": true}
)

// moduleDB is what depmod wrote for one kernel.
type moduleDB struct {
	dir     string              // .../lib/modules/VERSION
	deps    map[string][]string // module name -> dependency names (modules.dep order)
	file    map[string]string   // module name -> path relative to dir
	aliases [][2]string         // pattern, module name
	builtin map[string]bool
}

// modName turns "kernel/net/tls/tls.ko.xz" into "tls" (dashes as underscores).
func modName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

func loadModuleDB(dir string) (*moduleDB, error) {
	db := &moduleDB{dir: dir, deps: map[string][]string{}, file: map[string]string{}, builtin: map[string]bool{}}
	err := eachLine(filepath.Join(dir, "modules.dep"), func(line string) {
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return
		}
		name := modName(mod)
		db.file[name] = mod
		for _, d := range strings.Fields(deps) {
			db.deps[name] = append(db.deps[name], modName(d))
		}
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(filepath.Join(dir, "modules.alias"), func(line string) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" {
			db.aliases = append(db.aliases, [2]string{f[1], strings.ReplaceAll(f[2], "-", "_")})
		}
	})
	if err != nil {
		return nil, err
	}
	// modules.builtin is not shipped by every package; its absence is fine.
	_ = eachLine(filepath.Join(dir, "modules.builtin"), func(line string) {
		db.builtin[modName(line)] = true
	})
	return db, nil
}

func eachLine(file string, fn func(string)) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		fn(s.Text())
	}
	return s.Err()
}

// resolveAlias returns the modules whose alias pattern matches name.
func (db *moduleDB) resolveAlias(name string) []string {
	var mods []string
	for _, a := range db.aliases {
		if ok, _ := path.Match(a[0], name); ok || a[0] == name {
			mods = append(mods, a[1])
		}
	}
	return mods
}

// guestModules returns the module files (relative to db.dir) to load in
// order, dependencies first, and the names whose load must succeed.
func (db *moduleDB) guestModules(network bool) (files, required []string, err error) {
	var roots []string
	for _, m := range tlsModules {
		if _, ok := db.file[m]; ok {
			roots = append(roots, m)
			required = append(required, m)
		} else if !db.builtin[m] {
			return nil, nil, fmt.Errorf("%s: kernel has no module %s (neither in modules.dep nor built in)", db.dir, m)
		}
	}
	for _, a := range cryptoAliases {
		roots = append(roots, db.resolveAlias(a)...)
	}
	if network {
		for _, m := range netModules {
			if _, ok := db.file[m]; ok {
				roots = append(roots, m)
			}
		}
	}
	// Load crypto algorithms before tls and the diag modules.
	sort.SliceStable(roots, func(i, j int) bool { return !isTLS(roots[i]) && isTLS(roots[j]) })
	seen := map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if seen[m] || neverLoad[m] {
			return
		}
		seen[m] = true
		f, ok := db.file[m]
		if !ok {
			return // built in
		}
		d := db.deps[m]
		for i := len(d) - 1; i >= 0; i-- {
			visit(d[i])
		}
		files = append(files, f)
	}
	for _, r := range roots {
		visit(r)
	}
	return files, required, nil
}

func isTLS(m string) bool {
	for _, t := range tlsModules {
		if m == t {
			return true
		}
	}
	return false
}
