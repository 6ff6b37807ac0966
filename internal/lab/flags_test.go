package lab

import (
	"strings"
	"testing"
)

func TestTranslateTestFlags(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"-run X", "-test.run=X"},
		{"-v -count=1 -short", "-test.v -test.count=1 -test.short"},
		{"--skip ^TestKernel -timeout 5m", "-test.skip=^TestKernel -test.timeout=5m"},
		{"-bench . -benchtime 100x -benchmem", "-test.bench=. -test.benchtime=100x -test.benchmem"},
		{"-test.run=Y -custom 3", "-test.run=Y -custom 3"},
		{"-run A -args -run B", "-test.run=A -run B"},
	} {
		if got := strings.Join(TranslateTestFlags(strings.Fields(tt.in)), " "); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMatchPrefix(t *testing.T) {
	for _, tt := range []struct {
		prefix, release string
		want            bool
	}{
		{"6.1", "6.1.0-56-cloud-amd64", true},
		{"6.1", "6.12.117+deb13-cloud-amd64", false},
		{"6.12", "6.12.117+deb13-cloud-amd64", true},
		{"6", "6.12.117+deb13-cloud-amd64", true},
		{"7", "7.3.4+deb13-cloud-amd64", true},
		{"7.3", "7.3.4+deb13-cloud-amd64", true},
		{"7.30", "7.3.4+deb13-cloud-amd64", false},
		{"all", "7.3.4+deb13-cloud-amd64", true},
		{"7.3.4+deb13-cloud-amd64", "7.3.4+deb13-cloud-amd64", true},
	} {
		if got := MatchPrefix(tt.prefix, tt.release); got != tt.want {
			t.Errorf("MatchPrefix(%q, %q) = %v", tt.prefix, tt.release, got)
		}
	}
}

func TestPick(t *testing.T) {
	names := []string{
		"linux-image-5.10.0-30-cloud-amd64-unsigned", "linux-image-5.10.0-32-cloud-amd64-unsigned",
		"linux-image-6.1.0-0.deb11.21-cloud-amd64-unsigned", // Debian 11 LTS's 6.1: older than 6.1.0-56
		"linux-image-6.1.0-47-cloud-amd64-unsigned", "linux-image-6.1.0-56-cloud-amd64-unsigned",
		"linux-image-6.1.0-57-cloud-amd64", // signed only: not used
		"linux-image-6.12.90+deb12.1-cloud-amd64-unsigned", "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
		"linux-image-6.12.117+deb13-cloud-amd64-unsigned", "linux-image-6.16.3+deb13-cloud-amd64-unsigned",
		"linux-binary-7.2.13+deb14-cloud-amd64", "linux-modules-7.2.13+deb14-cloud-amd64",
		"linux-binary-7.3.4+deb13-cloud-amd64", "linux-modules-7.3.4+deb13-cloud-amd64",
		"linux-binary-7.4.1+deb13-cloud-amd64", // no modules package: not used
	}
	best, err := pick(candidates(names))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"5.10": "5.10.0-32-cloud-amd64", "6.1": "6.1.0-56-cloud-amd64", "6.12": "6.12.117+deb13-cloud-amd64", "7": "7.3.4+deb13-cloud-amd64"}
	for f, r := range want {
		if best[f].release != r {
			t.Errorf("family %s: got %q, want %q", f, best[f].release, r)
		}
	}
	if p := best["7"].packages; len(p) != 2 {
		t.Errorf("7.x packages %v", p)
	}
	if _, err := pick(candidates(names[:2])); err == nil {
		t.Error("missing families: no error")
	}
}

func TestSources(t *testing.T) {
	deb822 := `Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`
	oneLine := "deb [arch=amd64 signed-by=/k.gpg] https://other.example/apt cloud-sdk main\n"
	srcs := append(parseDeb822Sources([]byte(deb822)), parseOneLineSources([]byte(oneLine))...)
	if len(srcs) != 3 {
		t.Fatalf("got %d sources", len(srcs))
	}
	a, s := debianMirrors(srcs)
	if a != "http://mirror.example/debian" || s != "http://mirror.example/debian-security" {
		t.Errorf("mirrors %q %q", a, s)
	}
	a, s = debianMirrors(parseOneLineSources([]byte("deb http://m.example/debian/ trixie main\n" + oneLine)))
	if a != "http://m.example/debian" || s != "" {
		t.Errorf("one-line mirrors %q %q", a, s)
	}
}
