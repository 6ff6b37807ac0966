//go:build linux && amd64

package ktls

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// syscountChild is the environment variable that makes TestServeConnsChild
// the server of BenchmarkServerConnSyscalls: the server (as serveOneConn
// takes it), a space, and the TLS version (hex).
const syscountChild = "KTLS_SYSCOUNT_CHILD"

// TestServeConnsChild is the traced server process of
// BenchmarkServerConnSyscalls; without syscountChild it does nothing. It
// prints its address, then serves one short connection (serveOneConn) per
// accepted connection until killed.
func TestServeConnsChild(t *testing.T) {
	mode := os.Getenv(syscountChild)
	if mode == "" {
		return
	}
	var version uint16
	fmt.Sscanf(mode[strings.IndexByte(mode, ' ')+1:], "%x", &version)
	cfg := &Config{TLS: serverTLS(), TX: OffloadAuto, RX: OffloadAuto, KernelWithoutRekey: true}
	cfg.TLS.MaxVersion = version
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if err := serveOneConn(c, mode[:strings.IndexByte(mode, ' ')], cfg); err != nil {
			t.Fatal(err)
		}
	}
}

// syscallCounter traces a process and all its threads (ptrace
// PTRACE_SYSCALL) and counts the system calls they enter, by number, and
// those that returned EAGAIN.
type syscallCounter struct {
	mu     sync.Mutex
	enter  map[uint64]int
	eagain int
}

func (sc *syscallCounter) snapshot() (map[uint64]int, int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	m := make(map[uint64]int, len(sc.enter))
	for k, v := range sc.enter {
		m[k] = v
	}
	return m, sc.eagain
}

// trace starts cmd traced and counts its system calls until it exits. All
// ptrace requests come from one locked OS thread, as ptrace wants. started
// gets cmd.Start's error.
func (sc *syscallCounter) trace(cmd *exec.Cmd, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	inSyscall := map[int]bool{}
	first := true
	for {
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if err != nil {
			return
		}
		if ws.Exited() || ws.Signaled() {
			delete(inSyscall, tid)
			if tid == cmd.Process.Pid {
				return
			}
			continue
		}
		if !ws.Stopped() {
			continue
		}
		sig := 0
		switch s := ws.StopSignal(); {
		case first:
			first = false
			unix.PtraceSetOptions(tid, unix.PTRACE_O_TRACESYSGOOD|unix.PTRACE_O_TRACECLONE|unix.PTRACE_O_EXITKILL)
		case s == syscall.SIGTRAP|0x80:
			var regs unix.PtraceRegs
			if unix.PtraceGetRegs(tid, &regs) == nil {
				sc.mu.Lock()
				if !inSyscall[tid] {
					sc.enter[regs.Orig_rax]++
				} else if int64(regs.Rax) == -int64(unix.EAGAIN) {
					sc.eagain++
				}
				sc.mu.Unlock()
			}
			inSyscall[tid] = !inSyscall[tid]
		case s == syscall.SIGTRAP, s == syscall.SIGSTOP:
			// A clone event, or a new thread's first stop: not
			// signals to deliver.
		default:
			sig = int(s)
		}
		unix.PtraceSyscall(tid, sig)
	}
}

// socketSyscalls are the system calls a server makes on a connection's
// socket, by name.
var socketSyscalls = map[uint64]string{
	unix.SYS_READ: "read", unix.SYS_WRITE: "write", unix.SYS_RECVFROM: "recvfrom",
	unix.SYS_SENDTO: "sendto", unix.SYS_RECVMSG: "recvmsg", unix.SYS_SENDMSG: "sendmsg",
	unix.SYS_SENDFILE: "sendfile", unix.SYS_SETSOCKOPT: "setsockopt",
	unix.SYS_GETSOCKOPT: "getsockopt", unix.SYS_CLOSE: "close", unix.SYS_ACCEPT4: "accept4",
	unix.SYS_SHUTDOWN: "shutdown", unix.SYS_EPOLL_CTL: "epoll_ctl",
	unix.SYS_GETSOCKNAME: "getsockname", unix.SYS_GETPEERNAME: "getpeername",
}

// BenchmarkServerConnSyscalls counts the system calls of a server process
// per new connection with one 4 KiB response (serveOneConn): crypto/tls or
// ktls (the kernel where it has TLS, as Config.KernelWithoutRekey; else
// user space; with or without a Mode call) in a child process traced with ptrace, against a crypto/tls
// client here. It reports the socket's system calls per connection
// (socket-syscalls/op; setsockopt/op of them), all the server's
// (syscalls/op: with the Go runtime's futex, epoll_pwait, nanosleep...) and
// the calls that returned EAGAIN (eagain/op). ns/op is meaningless (every
// system call stops the child twice). go test -bench ServerConnSyscalls
// -benchtime 50x -v logs the calls by name.
func BenchmarkServerConnSyscalls(b *testing.B) {
	for _, v := range []struct {
		name    string
		version uint16
	}{{"tls12", tls.VersionTLS12}, {"tls13", tls.VersionTLS13}} {
		for _, server := range []string{"crypto-tls", "ktls", "ktls+Mode"} {
			b.Run(server+"/"+v.name, func(b *testing.B) { benchSyscalls(b, server, v.version) })
		}
	}
}

func benchSyscalls(b *testing.B, server string, version uint16) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeConnsChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %x", syscountChild, server, version))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	sc := &syscallCounter{enter: map[uint64]int{}}
	started := make(chan error, 1)
	traced := make(chan struct{})
	go func() { sc.trace(cmd, started); close(traced) }()
	if err := <-started; err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		<-traced
		cmd.Wait()
	}()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	addr = strings.TrimSpace(addr)
	cli := clientTLS()
	cli.MaxVersion = version
	cli.InsecureSkipVerify = true // the child made its own certificates
	fetch := func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if err := fetchOneConn(c, cli); err != nil {
			b.Fatal(err)
		}
	}
	fetch() // warm up: the first connection probes the kernel
	before, eagainBefore := sc.snapshot()
	n := 0
	for b.Loop() {
		fetch()
		n++
	}
	// The client sees the end of the stream at the server's
	// close_notify: the last connection's close(2) may be counted or not,
	// as the first one's accept4 was not (about 1/n either way).
	after, eagainAfter := sc.snapshot()
	var all, sock, setsockopt int
	var names []string
	for nr, c := range after {
		d := c - before[nr]
		all += d
		if name, ok := socketSyscalls[nr]; ok {
			sock += d
			names = append(names, fmt.Sprintf("%s %.1f", name, float64(d)/float64(n)))
		}
		if nr == unix.SYS_SETSOCKOPT {
			setsockopt += d
		}
	}
	b.ReportMetric(float64(sock)/float64(n), "socket-syscalls/op")
	b.ReportMetric(float64(setsockopt)/float64(n), "setsockopt/op")
	b.ReportMetric(float64(all)/float64(n), "syscalls/op")
	b.ReportMetric(float64(eagainAfter-eagainBefore)/float64(n), "eagain/op")
	slices.Sort(names)
	b.Logf("per connection: %s", strings.Join(names, ", "))
}
