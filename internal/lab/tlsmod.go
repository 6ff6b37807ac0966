package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Debian 11 builds its 5.10 kernels (every flavour) without CONFIG_TLS. For
// such a kernel the lab builds the TLS module itself, from the net/tls of
// the very Debian source the kernel was built from (linux-source-SERIES),
// against the kernel's headers (linux-headers-RELEASE, linux-kbuild-SERIES),
// with the host's gcc. The kernel lacks one thing the module expects: the
// tls_statistics pointer of struct netns_mib exists only with CONFIG_TLS, so
// the module keeps its counters (/proc/net/tls_stat) in per-net data of its
// own (tlsMIBShim). Everything else is the kernel's own TLS: its ciphers,
// versions and features are those of 5.10 (no ChaCha20-Poly1305).

// tlsMIBShim is included before each net/tls source file: the counters
// move from net->mib.tls_statistics to the module's per-net data.
const tlsMIBShim = `/* Written by ktlslab: struct netns_mib has no tls_statistics without
 * CONFIG_TLS, so the module keeps its counters in per-net data of its own. */
#include <linux/percpu.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/tls.h>
struct tls_net {
	struct linux_tls_mib __percpu *tls_statistics;
};
extern unsigned int tls_net_id;
#define tls_net_mib(net) (((struct tls_net *)net_generic(net, tls_net_id))->tls_statistics)
#undef __TLS_INC_STATS
#undef TLS_INC_STATS
#undef __TLS_DEC_STATS
#undef TLS_DEC_STATS
#define __TLS_INC_STATS(net, field) __SNMP_INC_STATS(tls_net_mib(net), field)
#define TLS_INC_STATS(net, field) SNMP_INC_STATS(tls_net_mib(net), field)
#define __TLS_DEC_STATS(net, field) __SNMP_DEC_STATS(tls_net_mib(net), field)
#define TLS_DEC_STATS(net, field) SNMP_DEC_STATS(tls_net_mib(net), field)
`

// tlsBuildTools are the host programs buildTLSModule runs besides dpkg-deb
// and apt-get, with their Debian packages.
var tlsBuildTools = [][2]string{{"make", "make"}, {"gcc", "gcc"}, {"tar", "tar"}, {"xz", "xz-utils"}, {"sh", "dash"}}

// withoutTLS reports whether the kernel unpacked in root was configured
// without CONFIG_TLS.
func withoutTLS(root, release string) bool {
	b, err := os.ReadFile(filepath.Join(root, "boot", "config-"+release))
	return err == nil && bytes.Contains(b, []byte("\n# CONFIG_TLS is not set\n"))
}

// buildTLSModule builds tls.ko for the kernel unpacked in root (from the
// package imageDeb) and puts it in the kernel's module tree.
func buildTLSModule(o *Options, apt *aptEnv, root, release, imageDeb string) error {
	for _, t := range tlsBuildTools {
		if _, err := lookTool(t[0]); err != nil {
			return fmt.Errorf("%w: %s not found (needed to build the TLS module of %s); install the Debian package %s",
				ErrMissingTool, t[0], release, t[1])
		}
	}
	dpkgDeb, err := lookTool("dpkg-deb")
	if err != nil {
		return err
	}
	out, err := exec.Command(dpkgDeb, "-f", imageDeb, "Version").Output()
	if err != nil {
		return fmt.Errorf("dpkg-deb -f %s Version: %w", imageDeb, err)
	}
	version := strings.TrimSpace(string(out))
	// 5.10.0-32-cloud-amd64: series 5.10, ABI 5.10.0-32.
	series := regexp.MustCompile(`^[0-9]+\.[0-9]+`).FindString(release)
	abi := regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+`).FindString(release)
	if series == "" || abi == "" {
		return fmt.Errorf("kernel release %q: cannot name its headers and source", release)
	}
	pkgs := []string{
		"linux-headers-" + release + "=" + version,
		"linux-headers-" + abi + "-common=" + version,
		"linux-kbuild-" + series + "=" + version,
		"linux-source-" + series + "=" + version,
	}
	o.logf("%s has no CONFIG_TLS: building its TLS module from %s", release, strings.Join(pkgs, " "))
	work, err := os.MkdirTemp(apt.dir, "tlsmod")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	debs := filepath.Join(work, "debs")
	tree := filepath.Join(work, "root")
	for _, d := range []string{debs, tree} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := apt.download(debs, pkgs...); err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "linux-source-") {
			// Only net/tls of the source tarball.
			script := `dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/src/linux-source-"$2".tar.xz | xz -d | tar -x -C "$3" --strip-components=1 --wildcards "linux-source-$2/net/tls/*"`
			if err := command("", "sh", "-c", script, "sh", f, series, work); err != nil {
				return err
			}
			continue
		}
		if err := command("", "dpkg-deb", "-x", f, tree); err != nil {
			return err
		}
	}
	// The headers' Makefile includes the common headers by absolute path.
	headers := filepath.Join(tree, "usr", "src", "linux-headers-"+release)
	common := filepath.Join(tree, "usr", "src", "linux-headers-"+abi+"-common", "Makefile")
	if err := os.WriteFile(filepath.Join(headers, "Makefile"), []byte("include "+common+"\n"), 0o644); err != nil {
		return err
	}
	src := filepath.Join(work, "net", "tls")
	if err := patchTLSSource(src); err != nil {
		return err
	}
	// The kernel was built with Debian 11's gcc-10; the host's gcc builds
	// a module that loads (vermagic and symbol versions come from the
	// headers).
	if err := command("", "make", "-C", headers, "M="+src, "CONFIG_TLS=m", "CC=gcc", "modules"); err != nil {
		return err
	}
	ko, err := os.ReadFile(filepath.Join(src, "tls.ko"))
	if err != nil {
		return err
	}
	dst := filepath.Join(root, "lib", "modules", release, "kernel", "net", "tls")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, "tls.ko"), ko, 0o644)
}

// patchTLSSource makes the net/tls sources in dir build without
// CONFIG_TLS in the kernel (see tlsMIBShim).
func patchTLSSource(dir string) error {
	edit := func(name string, f func(string) string) error {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := f(string(b))
		if s == string(b) {
			return fmt.Errorf("%s: the patch for a kernel without CONFIG_TLS does not apply", p)
		}
		return os.WriteFile(p, []byte(s), 0o644)
	}
	mib := func(s string) string { return strings.ReplaceAll(s, "net->mib.tls_statistics", "tls_net_mib(net)") }
	if err := edit("tls_proc.c", mib); err != nil {
		return err
	}
	if err := edit("tls_main.c", func(s string) string {
		const ops = "static struct pernet_operations tls_proc_ops = {\n"
		if !strings.Contains(s, ops) {
			return s
		}
		return strings.Replace(mib(s), ops, "unsigned int tls_net_id;\n\n"+ops+"\t.id = &tls_net_id,\n\t.size = sizeof(struct tls_net),\n", 1)
	}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls_mib.h"), []byte(tlsMIBShim), 0o644); err != nil {
		return err
	}
	return edit("Makefile", func(s string) string { return s + "ccflags-y += -include $(src)/tls_mib.h\n" })
}
