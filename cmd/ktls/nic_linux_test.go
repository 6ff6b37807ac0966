package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestEthtoolFeatures reads the features of lo: the kernel knows the TLS
// feature names (Linux 4.19 and later; tls-hw-record is gone from 7.3), and
// lo has none of them.
func TestEthtoolFeatures(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	m, err := ethtoolFeatures(fd, "lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range nicFeatures {
		f, ok := m[name]
		if !ok && name == "tls-hw-record" {
			continue // gone from newer kernels (not in 7.3)
		}
		if !ok || f.available || f.active {
			t.Errorf("lo: %s: %+v (known %v)", name, f, ok)
		}
	}
	if _, err := ethtoolFeatures(fd, "nosuchif0"); err == nil {
		t.Error("no error for a missing interface")
	}
	for _, r := range nicOffload() {
		if r.Interface == "lo" && (len(r.Features) != 0 || r.Error != "") {
			t.Errorf("lo: %+v", r)
		}
	}
}
