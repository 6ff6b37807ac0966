package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nicFeatures are the ethtool features (ethtool -k) of TLS offload; kernels
// that no longer know tls-hw-record (7.3) leave it out.
var nicFeatures = []string{"tls-hw-tx-offload", "tls-hw-rx-offload", "tls-hw-record"}

const ethSSFeatures = 4 // ETH_SS_FEATURES, the feature names' string set

// nicOffload reports the TLS offload features of every network interface,
// from the ETHTOOL_GFEATURES ioctl as ethtool -k shows them.
func nicOffload() []nicReport {
	ifs, err := net.Interfaces()
	if err != nil {
		return []nicReport{{Error: err.Error()}}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return []nicReport{{Error: os.NewSyscallError("socket", err).Error()}}
	}
	defer unix.Close(fd)
	var out []nicReport
	for _, ifc := range ifs {
		r := nicReport{Interface: ifc.Name}
		feats, err := ethtoolFeatures(fd, ifc.Name)
		if err != nil {
			r.Error = err.Error()
		}
		for _, name := range nicFeatures {
			if f, ok := feats[name]; ok && (f.available || f.active) {
				r.Features = append(r.Features, nicFeature{Name: name, Active: f.active, Fixed: !f.available})
			}
		}
		out = append(out, r)
	}
	return out
}

type featureState struct{ available, active bool }

// ethtoolFeatures returns the state of the features named in nicFeatures.
func ethtoolFeatures(fd int, ifname string) (map[string]featureState, error) {
	// ETHTOOL_GSSET_INFO: the number of feature names.
	info := make([]byte, 8+8+4)
	ne := binary.NativeEndian
	ne.PutUint32(info, unix.ETHTOOL_GSSET_INFO)
	ne.PutUint64(info[8:], 1<<ethSSFeatures)
	if err := ethtool(fd, ifname, info); err != nil {
		return nil, err
	}
	if ne.Uint64(info[8:]) == 0 {
		return nil, nil
	}
	n := int(ne.Uint32(info[16:]))
	// ETHTOOL_GSTRINGS: the names, ETH_GSTRING_LEN (32) bytes each.
	strs := make([]byte, 12+n*32)
	ne.PutUint32(strs, unix.ETHTOOL_GSTRINGS)
	ne.PutUint32(strs[4:], ethSSFeatures)
	ne.PutUint32(strs[8:], uint32(n))
	if err := ethtool(fd, ifname, strs); err != nil {
		return nil, err
	}
	// ETHTOOL_GFEATURES: available, requested, active, never_changed
	// bit blocks of 32 features.
	blocks := (n + 31) / 32
	feats := make([]byte, 8+blocks*16)
	ne.PutUint32(feats, unix.ETHTOOL_GFEATURES)
	ne.PutUint32(feats[4:], uint32(blocks))
	if err := ethtool(fd, ifname, feats); err != nil {
		return nil, err
	}
	m := make(map[string]featureState)
	for i := range n {
		name, _, _ := bytes.Cut(strs[12+i*32:12+i*32+32], []byte{0})
		for _, want := range nicFeatures {
			if string(name) == want {
				b := feats[8+(i/32)*16:]
				bit := uint32(1) << (i % 32)
				m[want] = featureState{available: ne.Uint32(b)&bit != 0, active: ne.Uint32(b[8:])&bit != 0}
			}
		}
	}
	return m, nil
}

// ethtool runs the SIOCETHTOOL ioctl with the command in data.
func ethtool(fd int, ifname string, data []byte) error {
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [24]byte // the rest of struct ifreq's union
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = unsafe.Pointer(&data[0])
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return fmt.Errorf("%s: %w", ifname, os.NewSyscallError("ioctl SIOCETHTOOL", errno))
	}
	return nil
}

// sysctls returns no settings on Linux: the counters say it all.
func sysctls() map[string]string { return nil }

// enableHint says how to get kernel TLS when Supported fails.
const enableHint = "load the kernel's TLS module: modprobe tls (the kernel needs CONFIG_TLS=m or =y; " +
	"to load it at boot: echo tls > /etc/modules-load.d/tls.conf)"
