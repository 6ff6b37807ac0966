package lab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// labSuites are the Debian suites searched for kernels. The security suite
// is reached through the security archive's URI, the others through the
// main archive's. Debian 11's kernel comes from bullseye's last point
// release: bullseye-security (Debian LTS) is not searched, its packages are
// not on every mirror of the security archive.
var labSuites = []string{
	"bullseye", "bullseye-updates",
	"bookworm", "bookworm-updates", "bookworm-backports",
	"trixie", "trixie-backports", "sid",
}

const labSecuritySuite = "bookworm-security"

// debianKeyring is the keyring the private apt configuration trusts.
const debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// aptSource is one "deb" entry of the host's apt configuration.
type aptSource struct {
	uris, suites []string
	signedBy     string
}

// readHostSources reads the deb entries of /etc/apt/sources.list and
// /etc/apt/sources.list.d/*.{list,sources}.
func readHostSources(etc string) ([]aptSource, error) {
	var srcs []aptSource
	files := []string{filepath.Join(etc, "sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", pat))
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(f, ".sources") {
			srcs = append(srcs, parseDeb822Sources(b)...)
		} else {
			srcs = append(srcs, parseOneLineSources(b)...)
		}
	}
	return srcs, nil
}

// parseDeb822Sources parses the deb822 format (sources.list(5)).
func parseDeb822Sources(b []byte) []aptSource {
	var srcs []aptSource
	for _, para := range bytes.Split(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n\n")) {
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(string(para), "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if line[0] == ' ' || line[0] == '\t' {
				if last != "" {
					fields[last] += " " + strings.TrimSpace(line)
				}
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
		if !contains(strings.Fields(fields["types"]), "deb") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		srcs = append(srcs, aptSource{
			uris:     strings.Fields(fields["uris"]),
			suites:   strings.Fields(fields["suites"]),
			signedBy: fields["signed-by"],
		})
	}
	return srcs
}

// parseOneLineSources parses "deb [opts] URI SUITE COMPONENT..." lines.
func parseOneLineSources(b []byte) []aptSource {
	var srcs []aptSource
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		line, _, _ := strings.Cut(s.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		var signedBy string
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 {
				opt := strings.Trim(f[0], "[]")
				if k, v, ok := strings.Cut(opt, "="); ok && k == "signed-by" {
					signedBy = v
				}
				done := strings.HasSuffix(f[0], "]")
				f = f[1:]
				if done {
					break
				}
			}
		}
		if len(f) < 2 {
			continue
		}
		srcs = append(srcs, aptSource{uris: f[:1], suites: f[1:2], signedBy: signedBy})
	}
	return srcs
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// debianCodenames are the suite names (before any "-updates" etc.) that
// mark a source as a Debian archive.
var debianCodenames = []string{
	"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
	"stable", "testing", "unstable", "oldstable", "oldoldstable",
}

// debianMirrors picks from the host's sources the URI of the Debian archive
// and of the Debian security archive ("" if none is configured).
func debianMirrors(srcs []aptSource) (archive, security string) {
	for _, s := range srcs {
		for _, suite := range s.suites {
			base, variant, _ := strings.Cut(suite, "-")
			base, _, _ = strings.Cut(base, "/")
			if !contains(debianCodenames, base) || len(s.uris) == 0 {
				continue
			}
			u := strings.TrimRight(s.uris[0], "/")
			if pu, err := url.Parse(u); err != nil || pu.Scheme == "" {
				continue
			}
			switch {
			case variant == "security" || strings.HasSuffix(suite, "/updates"):
				if security == "" {
					security = u
				}
			case archive == "":
				archive = u
			}
		}
	}
	return archive, security
}

// aptEnv is a private apt configuration under dir: the host's sources
// and state are read but never written.
type aptEnv struct {
	dir string
}

func (a *aptEnv) opts() []string {
	d := func(p ...string) string { return filepath.Join(append([]string{a.dir}, p...)...) }
	return []string{
		"-o", "Dir::Etc::SourceList=" + d("sources.list"),
		"-o", "Dir::Etc::SourceParts=" + d("empty"),
		"-o", "Dir::Etc::Preferences=" + d("empty", "preferences"),
		"-o", "Dir::Etc::PreferencesParts=" + d("empty"),
		"-o", "Dir::State=" + d("state"),
		"-o", "Dir::State::status=" + d("state", "status"),
		"-o", "Dir::Cache=" + d("cache"),
		"-o", "APT::Architecture=amd64",
		"-o", "APT::Architectures=amd64",
		"-o", "APT::Sandbox::User=" + sandboxUser(),
		"-o", "Acquire::Languages=none",
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false",
	}
}

// sandboxUser keeps apt from switching to _apt, which cannot write into
// a cache directory owned by the user.
func sandboxUser() string {
	if os.Getuid() == 0 {
		return "root"
	}
	return "_apt"
}

// setup writes the private sources.list that reuses the host's Debian mirrors.
func (a *aptEnv) setup(hostEtc string) error {
	srcs, err := readHostSources(hostEtc)
	if err != nil {
		return err
	}
	archive, security := debianMirrors(srcs)
	if archive == "" {
		return fmt.Errorf("no Debian archive configured in %s/sources.list.d: the lab reuses its URI to find kernels", hostEtc)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by ktlslab: the host's Debian mirrors with the suites that carry lab kernels.\n")
	for _, s := range labSuites {
		fmt.Fprintf(&b, "deb [signed-by=%s] %s %s main\n", debianKeyring, archive, s)
	}
	if security != "" {
		fmt.Fprintf(&b, "deb [signed-by=%s] %s %s main\n", debianKeyring, security, labSecuritySuite)
	}
	for _, d := range []string{"empty", "state/lists/partial", "cache/archives/partial", "debs"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(a.dir, "state", "status"), nil, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(a.dir, "sources.list"), []byte(b.String()), 0o644)
}

func (a *aptEnv) run(dir, tool string, args ...string) ([]byte, error) {
	p, err := lookTool(tool)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	cmd := exec.Command(p, append(a.opts(), args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, tail(stderr.Bytes(), 4000))
	}
	return out, nil
}

// update fetches the package lists of the private configuration.
func (a *aptEnv) update() error {
	_, err := a.run(a.dir, "apt-get", "-q", "update")
	return err
}

// search lists the names of the real packages matching a regular expression.
func (a *aptEnv) search(re string) ([]string, error) {
	out, err := a.run(a.dir, "apt-cache", "search", "--names-only", re)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, ok := strings.Cut(line, " - "); ok {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names, nil
}

// download fetches packages (.deb files) into dir.
func (a *aptEnv) download(dir string, pkgs ...string) error {
	_, err := a.run(dir, "apt-get", append([]string{"-q", "download"}, pkgs...)...)
	return err
}
