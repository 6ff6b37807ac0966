package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktls-go/ktls/internal/lab/guestconf"
)

// Forward is a TCP port forward from 127.0.0.1 on the host into the guest.
type Forward struct {
	HostPort, GuestPort int
}

// ParseForward parses "[127.0.0.1:]HOSTPORT:GUESTPORT". Only the loopback
// address is accepted on the host side.
func ParseForward(s string) (Forward, error) {
	f := strings.Split(s, ":")
	if len(f) == 3 {
		if f[0] != "127.0.0.1" {
			return Forward{}, fmt.Errorf("forward %q: host address must be 127.0.0.1", s)
		}
		f = f[1:]
	}
	if len(f) != 2 {
		return Forward{}, fmt.Errorf("forward %q: want [127.0.0.1:]HOSTPORT:GUESTPORT", s)
	}
	h, err1 := strconv.Atoi(f[0])
	g, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || h <= 0 || h > 65535 || g <= 0 || g > 65535 {
		return Forward{}, fmt.Errorf("forward %q: bad port", s)
	}
	return Forward{h, g}, nil
}

// machine describes one boot.
type machine struct {
	kernel   Kernel
	initrd   string
	timeout  time.Duration // 0: none
	kvm      bool
	network  bool
	forwards []Forward
}

func (m *machine) args() []string {
	accel := []string{"-accel", "tcg", "-cpu", "max"}
	if m.kvm {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	a := append(accel,
		"-smp", "2", "-m", "1024", "-nographic", "-no-reboot",
		"-kernel", m.kernel.Vmlinuz, "-initrd", m.initrd,
		"-append", "console=ttyS0 quiet loglevel=3 panic=-1 printk.time=1 no_timer_check tsc=reliable")
	if !m.network {
		return append(a, "-nic", "none")
	}
	netdev := "user,id=n0,restrict=on"
	for _, f := range m.forwards {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
	}
	return append(a, "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0")
}

// stepResult is what a step printed and how it ended.
type stepResult struct {
	name             string
	code             int // exit status; -1 if it never finished
	pass, fail, skip int
}

// bootResult is the outcome of one boot.
type bootResult struct {
	booted   bool // PID 1 printed its first marker
	done     bool // PID 1 finished all steps
	timedOut bool
	steps    []*stepResult
	guestErr []string // KTLSLAB-ERROR lines
	modFail  []string // modules that failed to load
	fault    string   // first oops/panic line, "" if none
	console  []string // kernel messages and lines outside steps
	qemuErr  string
	duration time.Duration
}

// problem describes why a boot failed, or "" if it went well.
func (r *bootResult) problem() string {
	switch {
	case r.fault != "":
		return "kernel fault: " + r.fault
	case r.timedOut && !r.booted:
		return "did not boot (timed out)"
	case !r.booted:
		return "did not boot"
	case r.timedOut:
		return "timed out"
	case len(r.guestErr) > 0:
		return "guest init: " + strings.Join(r.guestErr, "; ")
	case !r.done:
		return "machine stopped before the guest init finished"
	}
	return ""
}

var (
	kernelLine = regexp.MustCompile(`^\[\s*[0-9]+\.[0-9]+\]`)
	faultLine  = regexp.MustCompile(`Oops:|BUG:|Kernel panic|general protection fault|WARNING: CPU:|Call Trace:`)
	testLine   = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): `)
	escapes    = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])`)
)

// boot runs the machine, streams step output to out and parses the console.
// Context cancellation stops qemu with SIGTERM.
func (m *machine) boot(ctx context.Context, out io.Writer) (*bootResult, error) {
	if m.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.timeout)
		defer cancel()
	}
	qemu, err := lookTool("qemu-system-x86_64")
	if err != nil {
		return nil, CheckTools()
	}
	cmd := exec.CommandContext(ctx, qemu, m.args()...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	setpgid(cmd) // a terminal's ^C reaches us, not qemu: we stop it ourselves
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &bootResult{}
	c := console{r: r, out: out}
	br := bufio.NewReaderSize(pipe, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			c.line(escapes.ReplaceAllString(strings.TrimRight(line, "\r\n"), ""))
		}
		if err != nil {
			break
		}
	}
	werr := cmd.Wait()
	r.duration = time.Since(start)
	r.timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	if werr != nil && ctx.Err() == nil {
		r.qemuErr = fmt.Sprintf("%v: %s", werr, strings.TrimSpace(stderr.String()))
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return r, ctx.Err()
	}
	return r, nil
}

// bootRetrying boots the machine and, when the kernel failed before our
// PID 1 ran (seen rarely under TCG on a loaded machine, before any of our
// code was involved), shows the console log on log and boots it once more;
// a second failure is the result.
func (m *machine) bootRetrying(ctx context.Context, out, log io.Writer) (*bootResult, error) {
	r, err := m.boot(ctx, out)
	if err == nil && !r.booted && r.problem() != "" {
		r.report(log, m.kernel.Release)
		fmt.Fprintf(log, "ktlslab: kernel %s: failed before the guest init started; booting it again\n", m.kernel.Release)
		r, err = m.boot(ctx, out)
	}
	return r, err
}

// console sorts the lines of the serial console: kernel messages (with a
// printk time stamp), PID 1's markers, and the output of the running step.
type console struct {
	r       *bootResult
	out     io.Writer
	step    *stepResult
	warning bool
	blank   bool // an empty step output line is held back: PID 1 prints one before each marker
}

func (c *console) line(s string) {
	r := c.r
	if kernelLine.MatchString(s) {
		r.console = append(r.console, s)
		if m := faultLine.FindString(s); m != "" && r.fault == "" {
			switch {
			case m == "WARNING: CPU:":
				c.warning = true
			case m == "Call Trace:":
				if c.warning {
					r.fault = "WARNING with Call Trace"
				}
			default:
				r.fault = strings.TrimSpace(kernelLine.ReplaceAllString(s, ""))
			}
		}
		return
	}
	if i := strings.Index(s, "KTLSLAB-"); i >= 0 {
		if i > 0 {
			c.line(s[:i])
		}
		c.blank = false
		c.marker(s[i:])
		return
	}
	if s == "" && c.step != nil && !c.blank {
		c.blank = true
		return
	}
	if c.step != nil && c.blank {
		fmt.Fprintln(c.out)
	}
	c.blank = false
	if c.step == nil {
		if s != "" {
			r.console = append(r.console, s)
		}
		return
	}
	if m := testLine.FindStringSubmatch(s); m != nil {
		switch m[1] {
		case "PASS":
			c.step.pass++
		case "FAIL":
			c.step.fail++
		case "SKIP":
			c.step.skip++
		}
	}
	fmt.Fprintln(c.out, s)
}

func (c *console) marker(s string) {
	r := c.r
	f := strings.Fields(s)
	switch f[0] {
	case guestconf.MarkInit:
		r.booted = true
	case guestconf.MarkModule:
		if len(f) >= 3 && f[2] == "failed:" {
			r.modFail = append(r.modFail, strings.Join(f[1:], " "))
		}
	case guestconf.MarkBegin:
		c.step = &stepResult{name: strings.Join(f[1:], " "), code: -1}
		r.steps = append(r.steps, c.step)
	case guestconf.MarkExit:
		if c.step != nil && len(f) >= 3 {
			c.step.code, _ = strconv.Atoi(f[len(f)-1])
		}
		c.step = nil
	case guestconf.MarkError:
		r.guestErr = append(r.guestErr, strings.Join(f[1:], " "))
	case guestconf.MarkDone:
		r.done = true
	default:
		r.console = append(r.console, s)
	}
}

// report prints the console log and the problem of a failed boot.
func (r *bootResult) report(w io.Writer, release string) {
	if len(r.modFail) > 0 {
		fmt.Fprintf(w, "ktlslab: kernel %s: modules that failed to load: %s\n", release, strings.Join(r.modFail, ", "))
	}
	p := r.problem()
	if p == "" {
		return
	}
	fmt.Fprintf(w, "ktlslab: kernel %s: %s; console log:\n", release, p)
	for _, l := range r.console {
		fmt.Fprintf(w, "  | %s\n", l)
	}
	if r.qemuErr != "" {
		fmt.Fprintf(w, "ktlslab: qemu: %s\n", r.qemuErr)
	}
}
