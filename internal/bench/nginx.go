package bench

// nginx as a reference server of the servers scenarios, run by
// internal/nginxref (which also brings nginx into the kernel lab's guest),
// with its files under a prefix directory of its own. Everything
// nginx-specific is in this file, behind refServer.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ktls-go/ktls/internal/nginxref"
)

// refServer is a running server that this program does not implement
// (nginx): its address, the processes whose CPU time is the server's, and
// how to stop it.
type refServer interface {
	Addr() string
	PIDs() ([]int, error)
	Stop() error
}

// nginxConfig describes one nginx reference server.
type nginxConfig struct {
	Bin       string // the nginx executable
	Prefix    string // an empty directory for its configuration, pid and temporary files
	Root      string // the directory it serves
	Cert, Key string // PEM files of its certificate and key
	KTLS      bool   // ssl_conf_command Options KTLS
	Version   uint16 // the only TLS version it offers
}

// refConfig is the nginxref configuration of c: one worker, sendfile,
// only the TLS version and AES-128-GCM suite asked for, HTTP/1.1 and
// HTTP/2 (chosen by ALPN).
func (c nginxConfig) refConfig() (nginxref.Config, error) {
	proto := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[c.Version]
	if proto == "" {
		return nginxref.Config{}, fmt.Errorf("nginx: no TLS version %#x", c.Version)
	}
	return nginxref.Config{Root: c.Root, Addr: "127.0.0.1:0", Cert: c.Cert, Key: c.Key,
		KTLS: c.KTLS, HTTP2: true, Workers: 1, Protocols: proto,
		Ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256", Ciphersuites: "TLS_AES_128_GCM_SHA256",
		Binary: c.Bin, Dir: c.Prefix}, nil
}

// nginxServer is a running nginx.
type nginxServer struct{ *nginxref.Server }

// startNginx starts nginx in the foreground and waits until it accepts
// connections.
func startNginx(ctx context.Context, c nginxConfig) (refServer, error) {
	rc, err := c.refConfig()
	if err != nil {
		return nil, err
	}
	for range 3 { // the free port may be taken before nginx binds it
		var s *nginxref.Server
		if s, err = nginxref.Start(ctx, rc); err == nil {
			return nginxServer{s}, nil
		}
	}
	return nil, err
}

// Addr returns the address nginx listens on.
func (n nginxServer) Addr() string { return n.Server.Addr }

// PIDs returns the master process and its children, the workers.
func (n nginxServer) PIDs() ([]int, error) {
	master := n.Pid()
	kids, err := childPIDs(master)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 {
		return nil, errors.New("nginx has no worker process")
	}
	return append([]int{master}, kids...), nil
}

// childPIDs returns the processes whose parent is pid, from /proc.
func childPIDs(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := procStat(p)
		if err != nil || len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			kids = append(kids, p)
		}
	}
	return kids, nil
}

// procStat returns the fields of /proc/PID/stat after the command name:
// f[0] is the state (field 3 of proc(5)), f[1] the parent, f[11] utime and
// f[12] stime.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100
// on every Linux architecture Go runs on).
const userHZ = 100

// procCPU returns the user + system CPU time of the processes (all
// threads), from /proc/PID/stat.
func procCPU(pids []int) (time.Duration, error) {
	var ticks int64
	for _, pid := range pids {
		f, err := procStat(pid)
		if err != nil {
			return 0, err
		}
		if len(f) < 13 {
			return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
		}
		for _, s := range f[11:13] {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
			}
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// writeCertPEM writes a new self-signed certificate and its key as PEM
// files.
func writeCertPEM(certFile, keyFile string) error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
}
