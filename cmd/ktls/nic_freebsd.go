package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nicCaps are the interface capabilities (ifconfig -m) of TLS offload
// (net/if.h IFCAP_TXTLS4, IFCAP_TXTLS6, IFCAP_TXTLS_RTLMT). The receive
// capabilities (RXTLS4/6) are IFCAP2 bits, only in SIOCGIFCAPNV, not
// checked.
var nicCaps = []struct {
	name string
	bit  uint32
}{
	{"TXTLS4", 1 << 27},
	{"TXTLS6", 1 << 28},
	{"TXTLS_RTLMT", 1 << 31},
}

// nicOffload reports the TLS capabilities of every network interface from
// the SIOCGIFCAP ioctl.
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
		var ifr struct {
			name           [unix.IFNAMSIZ]byte
			reqcap, curcap uint32 // supported, enabled
			_              [8]byte
		}
		copy(ifr.name[:unix.IFNAMSIZ-1], ifc.Name)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCGIFCAP, uintptr(unsafe.Pointer(&ifr)))
		if errno != 0 {
			r.Error = fmt.Sprintf("%s: %v", ifc.Name, os.NewSyscallError("ioctl SIOCGIFCAP", errno))
		}
		for _, c := range nicCaps {
			if ifr.reqcap&c.bit != 0 {
				r.Features = append(r.Features, nicFeature{Name: c.name, Active: ifr.curcap&c.bit != 0})
			}
		}
		out = append(out, r)
	}
	return out
}

// sysctls returns the kernel TLS settings and kern.ipc.mb_use_ext_pgs
// (unmapped mbufs, which ktls(4) needs for sendfile).
func sysctls() map[string]string {
	m := make(map[string]string)
	for _, name := range []string{"kern.ipc.tls.enable", "kern.ipc.tls.cbc_enable", "kern.ipc.tls.maxlen",
		"kern.ipc.tls.ifnet.permitted", "kern.ipc.mb_use_ext_pgs"} {
		if v, err := unix.SysctlUint32(name); err == nil {
			m[name] = strconv.FormatUint(uint64(v), 10)
		}
	}
	return m
}

// enableHint says how to get kernel TLS when Supported fails.
const enableHint = "turn on ktls(4): sysctl kern.ipc.tls.enable=1 (the kernel needs options KERN_TLS, " +
	"in GENERIC since FreeBSD 13; sendfile also wants kern.ipc.mb_use_ext_pgs=1)"
