package kernel

import "testing"

func TestSpliceRXSafeRelease(t *testing.T) {
	for _, tt := range []struct {
		release string
		safe    bool
	}{
		{"5.10.0-33-amd64", false},
		{"5.10.226", false},
		{"5.15.0-126-generic", false},
		{"5.16", true},
		{"5.16.0-rc3", true},
		{"5.19.17", true},
		{"6.1.0-28-amd64", true},
		{"6.12.9+bpo-cloud-amd64", true},
		{"7.3.0-1-amd64", true},
		{"10.0.0", true},
		{"4.19.0-27-amd64", false},
		{"", false},
		{"6", false},
		{"x.1", false},
		{"6.x", false},
		{"-6.1", false},
		{"6.-1", false},
	} {
		if got := spliceRXSafeRelease(tt.release); got != tt.safe {
			t.Errorf("spliceRXSafeRelease(%q) = %v, want %v", tt.release, got, tt.safe)
		}
	}
}

func TestParseRelease(t *testing.T) {
	major, minor, ok := parseRelease("6.12.9+bpo-cloud-amd64")
	if !ok || major != 6 || minor != 12 {
		t.Errorf("parseRelease = %d, %d, %v; want 6, 12, true", major, minor, ok)
	}
}
