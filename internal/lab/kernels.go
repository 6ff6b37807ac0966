package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Families are the kernel series the lab keeps, newest release of each,
// oldest first: Debian 11's 5.10 (kernel TLS with AES-GCM but without
// ChaCha20-Poly1305), Debian 12's 6.1, the 6.12 of Debian 12 backports and
// Debian 13, and the newest 7.x.
var Families = []string{"5.10", "6.1", "6.12", "7"}

// flavour is the Debian kernel flavour used: the smallest one that has
// CONFIG_TLS=m and boots under qemu (Debian 11's 5.10 has CONFIG_TLS in no
// flavour: the lab builds its module, see tlsmod.go).
const flavour = "cloud-amd64"

// Kernel is one extracted Debian kernel.
type Kernel struct {
	// Release is the kernel release (uname -r), e.g. "6.1.0-56-cloud-amd64".
	Release string `json:"release"`
	// Family is the entry of Families it was chosen for.
	Family string `json:"family"`
	// Packages are the Debian packages it came from.
	Packages []string `json:"packages"`
	// Vmlinuz is the kernel image.
	Vmlinuz string `json:"vmlinuz"`
	// ModDir is the module directory (lib/modules/RELEASE) with depmod's files.
	ModDir string `json:"moddir"`
}

// numbers returns the decimal numbers in s ("6.12.90+deb12.1" -> 6 12 90 12 1).
func numbers(s string) []int {
	var n []int
	for _, f := range regexp.MustCompile(`[0-9]+`).FindAllString(s, -1) {
		v, _ := strconv.Atoi(f)
		n = append(n, v)
	}
	return n
}

// dotted returns the leading dotted numbers of a release ("6.1.0-56-..." -> 6 1 0).
func dotted(release string) []int {
	m := regexp.MustCompile(`^[0-9]+(\.[0-9]+)*`).FindString(release)
	return numbers(m)
}

// MatchPrefix reports whether the release belongs to the series prefix,
// comparing dotted components: "6.1" matches 6.1.0-56 but not 6.12.57.
// "" and "all" match everything.
func MatchPrefix(prefix, release string) bool {
	if prefix == "" || prefix == "all" {
		return true
	}
	p, r := numbers(prefix), dotted(release)
	if len(p) == 0 || len(p) > len(r) || strings.Trim(prefix, "0123456789.") != "" {
		return prefix == release
	}
	for i := range p {
		if p[i] != r[i] {
			return false
		}
	}
	return true
}

// newer orders releases by their numbers ("+deb13" after "+deb12").
func newer(a, b string) bool {
	x, y := numbers(strings.TrimSuffix(a, "-"+flavour)), numbers(strings.TrimSuffix(b, "-"+flavour))
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] != y[i] {
			return x[i] > y[i]
		}
	}
	return len(x) > len(y)
}

// candidate is a kernel release found in the package lists.
type candidate struct {
	release  string
	packages []string
}

// candidates turns package names into kernel releases: an unsigned
// linux-image-R-unsigned package holds kernel and modules; newer kernels
// come as linux-binary-R (kernel) plus linux-modules-R (modules).
func candidates(names []string) []candidate {
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	var cs []candidate
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "linux-image-") && strings.HasSuffix(n, "-"+flavour+"-unsigned"):
			r := strings.TrimSuffix(strings.TrimPrefix(n, "linux-image-"), "-unsigned")
			cs = append(cs, candidate{r, []string{n}})
		case strings.HasPrefix(n, "linux-binary-") && strings.HasSuffix(n, "-"+flavour):
			r := strings.TrimPrefix(n, "linux-binary-")
			if m := "linux-modules-" + r; have[m] {
				cs = append(cs, candidate{r, []string{n, m}})
			}
		}
	}
	return cs
}

// pick chooses the newest candidate of each family.
func pick(cs []candidate) (map[string]candidate, error) {
	best := map[string]candidate{}
	for _, c := range cs {
		if len(dotted(c.release)) < 2 {
			continue
		}
		for _, f := range Families {
			if MatchPrefix(f, c.release) {
				if b, ok := best[f]; !ok || newer(c.release, b.release) {
					best[f] = c
				}
			}
		}
	}
	var missing []string
	for _, f := range Families {
		if _, ok := best[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return best, fmt.Errorf("no %s kernel found for series %s in the suites %s",
			flavour, strings.Join(missing, ", "), strings.Join(append(labSuites, labSecuritySuite), ", "))
	}
	return best, nil
}

const manifestName = "kernels.json"

// Kernels makes sure the lab's kernels are in the cache and returns them
// (one per entry of Families, in that order). With update false a complete
// cache is used as it is; with update true the package lists are fetched
// again and newer kernels downloaded.
func Kernels(o *Options, update bool) ([]Kernel, error) {
	dir, err := o.cacheDir()
	if err != nil {
		return nil, err
	}
	if !update {
		if ks, err := readManifest(dir); err == nil {
			return ks, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(dir, "lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !update {
		// Another lab command may have fetched while we waited for the lock.
		if ks, err := readManifest(dir); err == nil {
			return ks, nil
		}
	}
	for _, t := range []string{"apt-get", "apt-cache", "dpkg-deb", "depmod"} {
		if _, err := lookTool(t); err != nil {
			return nil, CheckTools()
		}
	}
	apt := &aptEnv{dir: filepath.Join(dir, "apt")}
	if err := apt.setup("/etc/apt"); err != nil {
		return nil, err
	}
	o.logf("fetching package lists (private apt configuration in %s)", apt.dir)
	if err := apt.update(); err != nil {
		return nil, err
	}
	names, err := apt.search(`^linux-(image|binary|modules)-[0-9].*-` + flavour + `(-unsigned)?$`)
	if err != nil {
		return nil, err
	}
	best, err := pick(candidates(names))
	if err != nil {
		return nil, err
	}
	var ks []Kernel
	for _, f := range Families {
		k, err := extractKernel(o, apt, dir, f, best[f])
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	if err := writeManifest(dir, ks); err != nil {
		return nil, err
	}
	pruneKernels(dir, ks)
	return ks, nil
}

func readManifest(dir string) ([]Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	var ks []Kernel
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, err
	}
	if len(ks) != len(Families) {
		return nil, errors.New("manifest does not match the kernel series")
	}
	for i := range ks {
		if ks[i].Family != Families[i] {
			return nil, errors.New("manifest does not match the kernel series")
		}
		// Paths are found again: the cache directory may have moved.
		if err := locate(&ks[i], filepath.Join(dir, "kernels", ks[i].Release)); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

func writeManifest(dir string, ks []Kernel) error {
	b, err := json.MarshalIndent(ks, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, manifestName))
}

// pruneKernels removes extracted kernels that are no longer used.
func pruneKernels(dir string, keep []Kernel) {
	ents, _ := os.ReadDir(filepath.Join(dir, "kernels"))
	for _, e := range ents {
		used := false
		for _, k := range keep {
			used = used || e.Name() == k.Release
		}
		if !used {
			os.RemoveAll(filepath.Join(dir, "kernels", e.Name()))
		}
	}
}

// extractKernel downloads and unpacks a kernel unless it is already in the
// cache, and runs depmod on it.
func extractKernel(o *Options, apt *aptEnv, dir, family string, c candidate) (Kernel, error) {
	root := filepath.Join(dir, "kernels", c.release)
	k := Kernel{Release: c.release, Family: family, Packages: c.packages}
	if err := locate(&k, root); err == nil {
		return k, nil
	}
	o.logf("downloading %s", strings.Join(c.packages, " "))
	debs := filepath.Join(apt.dir, "debs")
	os.RemoveAll(debs)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return k, err
	}
	defer os.RemoveAll(debs)
	if err := apt.download(debs, c.packages...); err != nil {
		return k, err
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	if len(files) != len(c.packages) {
		return k, fmt.Errorf("apt-get download %s: got %d .deb files", strings.Join(c.packages, " "), len(files))
	}
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return k, err
	}
	for _, f := range files {
		if err := command("", "dpkg-deb", "-x", f, tmp); err != nil {
			return k, err
		}
	}
	if withoutTLS(tmp, c.release) {
		if err := buildTLSModule(o, apt, tmp, c.release, files[0]); err != nil {
			return k, err
		}
	}
	// depmod looks in ROOT/lib/modules; newer packages use /usr/lib/modules.
	if _, err := os.Stat(filepath.Join(tmp, "lib", "modules", c.release)); err != nil {
		if _, err := os.Stat(filepath.Join(tmp, "usr", "lib", "modules", c.release)); err == nil {
			os.MkdirAll(filepath.Join(tmp, "lib"), 0o755)
			if err := os.Symlink("../usr/lib/modules", filepath.Join(tmp, "lib", "modules")); err != nil {
				return k, err
			}
		}
	}
	if err := command("", "depmod", "-b", tmp, c.release); err != nil {
		return k, err
	}
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return k, err
	}
	return k, locate(&k, root)
}

// locate fills in the paths of an extracted kernel.
func locate(k *Kernel, root string) error {
	k.ModDir = filepath.Join(root, "lib", "modules", k.Release)
	if _, err := os.Stat(filepath.Join(k.ModDir, "modules.dep")); err != nil {
		return err
	}
	for _, p := range []string{
		filepath.Join(root, "boot", "vmlinuz-"+k.Release),
		filepath.Join(root, "usr", "lib", "modules", k.Release, "vmlinuz"),
		filepath.Join(k.ModDir, "vmlinuz"),
	} {
		if _, err := os.Stat(p); err == nil {
			k.Vmlinuz = p
			return nil
		}
	}
	return fmt.Errorf("%s: no vmlinuz", root)
}

// Select returns the kernels whose release matches the prefix (see
// MatchPrefix), oldest series first.
func Select(ks []Kernel, prefix string) ([]Kernel, error) {
	var out []Kernel
	for _, k := range ks {
		if MatchPrefix(prefix, k.Release) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		var have []string
		for _, k := range ks {
			have = append(have, k.Release)
		}
		return nil, fmt.Errorf("no kernel matches %q (have %s)", prefix, strings.Join(have, ", "))
	}
	sort.SliceStable(out, func(i, j int) bool { return newer(out[j].Release, out[i].Release) })
	return out, nil
}
