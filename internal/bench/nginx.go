package bench

// nginx as a reference server of the servers scenarios: a minimal nginx.conf
// and a start and stop of nginx in the foreground, with its files under a
// prefix directory of its own. Everything nginx-specific is in this file,
// behind refServer.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
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

// nginxConf is nginx.conf: one worker, sendfile, the TLS version and
// AES-128-GCM suite asked for, HTTP/1.1 and HTTP/2 (chosen by ALPN), no
// access log, keep-alive connections that are never closed for their
// number of requests.
var nginxConf = template.Must(template.New("nginx.conf").Parse(`# ktls bench: nginx reference server
{{if .Root}}user root;
{{end}}daemon off;
master_process on;
worker_processes 1;
pid {{.Prefix}}/nginx.pid;
error_log stderr warn;
events {
	worker_connections 4096;
}
http {
	default_type application/octet-stream;
	types {}
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000000;
	client_body_temp_path {{.Prefix}}/tmp/body;
	proxy_temp_path {{.Prefix}}/tmp/proxy;
	fastcgi_temp_path {{.Prefix}}/tmp/fastcgi;
	uwsgi_temp_path {{.Prefix}}/tmp/uwsgi;
	scgi_temp_path {{.Prefix}}/tmp/scgi;
	server {
		listen {{.Addr}} ssl http2;
		root {{.Dir}};
		ssl_certificate {{.Cert}};
		ssl_certificate_key {{.Key}};
		ssl_protocols {{.Protocol}};
		ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;
		ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
{{- if .KTLS}}
		ssl_conf_command Options KTLS;
{{- end}}
	}
}
`))

// renderNginxConf returns nginx.conf for c listening on addr; root says
// whether nginx runs as root (its workers then stay root, to read the
// served files).
func renderNginxConf(c nginxConfig, addr string, root bool) (string, error) {
	proto := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[c.Version]
	if proto == "" {
		return "", fmt.Errorf("nginx: no TLS version %#x", c.Version)
	}
	var b strings.Builder
	err := nginxConf.Execute(&b, struct {
		Root                         bool
		Prefix, Addr, Dir, Cert, Key string
		Protocol                     string
		KTLS                         bool
	}{root, c.Prefix, addr, c.Root, c.Cert, c.Key, proto, c.KTLS})
	return b.String(), err
}

// nginxServer is a running nginx.
type nginxServer struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{} // closed when cmd.Wait returns
	stderr *syncBuffer
}

// startNginx starts nginx in the foreground and waits until it accepts
// connections.
func startNginx(ctx context.Context, c nginxConfig) (refServer, error) {
	if err := os.MkdirAll(filepath.Join(c.Prefix, "tmp"), 0o700); err != nil {
		return nil, err
	}
	var err error
	for range 3 { // the free port may be taken before nginx binds it
		var n *nginxServer
		if n, err = tryNginx(ctx, c); err == nil {
			return n, nil
		}
	}
	return nil, err
}

func tryNginx(ctx context.Context, c nginxConfig) (*nginxServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	conf, err := renderNginxConf(c, addr, os.Geteuid() == 0)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(c.Prefix, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	n := &nginxServer{addr: addr, exited: make(chan struct{}), stderr: &syncBuffer{}}
	n.cmd = exec.Command(c.Bin, "-p", c.Prefix+"/", "-c", file, "-e", "stderr")
	n.cmd.Stdout, n.cmd.Stderr = n.stderr, n.stderr
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	go func() {
		n.cmd.Wait()
		close(n.exited)
	}()
	// Ready when it accepts a connection; a safety net of 30 s.
	deadline := time.After(30 * time.Second)
	for {
		d := net.Dialer{Timeout: time.Second}
		if conn, err := d.DialContext(ctx, "tcp", addr); err == nil {
			conn.Close()
			return n, nil
		}
		select {
		case <-n.exited:
			return nil, fmt.Errorf("nginx exited: %s", strings.TrimSpace(n.stderr.String()))
		case <-ctx.Done():
			n.Stop()
			return nil, ctx.Err()
		case <-deadline:
			n.Stop()
			return nil, fmt.Errorf("nginx did not accept connections on %s: %s", addr, strings.TrimSpace(n.stderr.String()))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Addr returns the address nginx listens on.
func (n *nginxServer) Addr() string { return n.addr }

// PIDs returns the master process and its children, the workers.
func (n *nginxServer) PIDs() ([]int, error) {
	master := n.cmd.Process.Pid
	kids, err := childPIDs(master)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 {
		return nil, errors.New("nginx has no worker process")
	}
	return append([]int{master}, kids...), nil
}

// Stop ends nginx (SIGTERM: a fast shutdown) and waits for it.
func (n *nginxServer) Stop() error {
	select {
	case <-n.exited:
		return nil
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
	return nil
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

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
