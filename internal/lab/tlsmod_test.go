package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPatchTLSSource: the counters move to the module's per-net data, the
// per-net operations get the data's id and size, and the shim is included
// in every file; sources the patch does not fit are an error.
func TestPatchTLSSource(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tls_main.c", "\tnet->mib.tls_statistics = alloc_percpu(struct linux_tls_mib);\n\n"+
		"static struct pernet_operations tls_proc_ops = {\n\t.init = tls_init_net,\n};\n")
	write("tls_proc.c", "\tsnmp_get_cpu_field_batch(buf, tls_mib_list, net->mib.tls_statistics);\n")
	write("Makefile", "obj-$(CONFIG_TLS) += tls.o\n")
	if err := patchTLSSource(dir); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	main, proc := read("tls_main.c"), read("tls_proc.c")
	for _, s := range []string{main, proc} {
		if strings.Contains(s, "net->mib.tls_statistics") || !strings.Contains(s, "tls_net_mib(net)") {
			t.Errorf("counters not moved:\n%s", s)
		}
	}
	if !strings.Contains(main, "unsigned int tls_net_id;\n\nstatic struct pernet_operations tls_proc_ops = {\n\t.id = &tls_net_id,\n\t.size = sizeof(struct tls_net),\n\t.init") {
		t.Errorf("pernet operations:\n%s", main)
	}
	if !strings.Contains(read("Makefile"), "-include $(src)/tls_mib.h") || !strings.Contains(read("tls_mib.h"), "#define TLS_INC_STATS") {
		t.Error("shim not included")
	}
	// A second run finds nothing to patch.
	if err := patchTLSSource(dir); err == nil {
		t.Error("patching patched sources: no error")
	}
}

func TestWithoutTLS(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "boot"), 0o755)
	cfg := filepath.Join(root, "boot", "config-5.10.0-32-cloud-amd64")
	os.WriteFile(cfg, []byte("CONFIG_XFRM=y\n# CONFIG_TLS is not set\nCONFIG_INET_DIAG=m\n"), 0o644)
	if !withoutTLS(root, "5.10.0-32-cloud-amd64") {
		t.Error("5.10 config: TLS not reported missing")
	}
	os.WriteFile(cfg, []byte("CONFIG_XFRM=y\nCONFIG_TLS=m\n"), 0o644)
	if withoutTLS(root, "5.10.0-32-cloud-amd64") || withoutTLS(root, "6.1.0-57-cloud-amd64") {
		t.Error("CONFIG_TLS=m or no config: reported missing")
	}
}
