// Command guestinit is the PID 1 of the kernel lab's virtual machines. It
// mounts the pseudo file systems, loads the kernel modules listed in the run
// configuration, brings up the network, runs the configured programs with
// their output on the console, prints a marker with each exit status and
// powers the machine off.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktls-go/ktls/internal/lab/guestconf"
	"golang.org/x/sys/unix"
)

// moduleInitCompressedFile is MODULE_INIT_COMPRESSED_FILE: the kernel
// decompresses the module itself (CONFIG_MODULE_DECOMPRESS).
const moduleInitCompressedFile = 4

func main() {
	fmt.Printf("\n%s pid=%d\n", guestconf.MarkInit, os.Getpid())
	if err := run(); err != nil {
		fmt.Printf("\n%s %v\n", guestconf.MarkError, err)
	}
	fmt.Printf("\n%s\n", guestconf.MarkDone)
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Still here: exiting makes the kernel panic, and panic=-1 ends qemu.
	fmt.Printf("\n%s power off: %v\n", guestconf.MarkError, err)
	os.Exit(1)
}

func run() error {
	if err := mountAll(); err != nil {
		return err
	}
	b, err := os.ReadFile(guestconf.Path)
	if err != nil {
		return err
	}
	var cfg guestconf.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s: %v", guestconf.Path, err)
	}
	var errs []error
	if err := loadModules(cfg.Modules, cfg.Required); err != nil {
		errs = append(errs, err)
	}
	if err := ifUp("lo"); err != nil {
		errs = append(errs, err)
	}
	if cfg.Network {
		if err := setupEth0(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, e := range errs {
		fmt.Printf("\n%s %v\n", guestconf.MarkError, e)
	}
	env := append([]string{"PATH=/lab/bin:/bin:/usr/sbin:/usr/bin", "HOME=/tmp", "TMPDIR=/tmp"}, cfg.Env...)
	for _, s := range cfg.Steps {
		runStep(s, env)
	}
	return nil
}

func mountAll() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
		{"tmpfs", "/run", "tmpfs"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if err := os.Chmod("/tmp", 0o1777); err != nil {
		return err
	}
	_ = os.MkdirAll("/dev/shm", 0o1777)
	_ = unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, "")
	// Pseudo-terminals for tests that need one: devpts, and /dev/ptmx
	// pointing at its multiplexer when devtmpfs has none.
	_ = os.MkdirAll("/dev/pts", 0o755)
	_ = unix.Mount("devpts", "/dev/pts", "devpts", 0, "ptmxmode=0666")
	if _, err := os.Lstat("/dev/ptmx"); err != nil {
		_ = os.Symlink("pts/ptmx", "/dev/ptmx")
	}
	_ = unix.Sethostname([]byte("ktlslab"))
	return nil
}

func loadModules(paths, required []string) error {
	var failed []string
	for _, p := range paths {
		name := moduleName(p)
		err := loadModule(p)
		switch {
		case err == nil:
			fmt.Printf("%s %s ok\n", guestconf.MarkModule, name)
		case errors.Is(err, unix.EEXIST):
			fmt.Printf("%s %s present\n", guestconf.MarkModule, name)
		default:
			fmt.Printf("%s %s failed: %v\n", guestconf.MarkModule, name, err)
			for _, r := range required {
				if r == name {
					failed = append(failed, name)
				}
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("required modules failed to load: %s", strings.Join(failed, " "))
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags = moduleInitCompressedFile
	}
	return unix.FinitModule(int(f.Fd()), "", flags)
}

// moduleName is the module's name as modules.dep and the kernel spell it.
func moduleName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

func ifUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: get flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: up: %w", name, err)
	}
	return nil
}

// setupEth0 gives eth0 the address qemu's user network expects (10.0.2.15/24).
func setupEth0() error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat("/sys/class/net/eth0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("eth0 did not appear (virtio_net)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, a := range []struct {
		req  uint
		addr [4]byte
	}{
		{unix.SIOCSIFADDR, [4]byte{10, 0, 2, 15}},
		{unix.SIOCSIFNETMASK, [4]byte{255, 255, 255, 0}},
	} {
		ifr, err := unix.NewIfreq("eth0")
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(a.addr[:]); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, a.req, ifr); err != nil {
			return fmt.Errorf("eth0: address: %w", err)
		}
	}
	return ifUp("eth0")
}

func runStep(s guestconf.Step, env []string) {
	fmt.Printf("\n%s %s\n", guestconf.MarkBegin, s.Name)
	code := -1
	if len(s.Args) == 0 {
		fmt.Println("no program")
	} else {
		_ = os.MkdirAll(s.Dir, 0o755)
		cmd := exec.Command(s.Args[0], s.Args[1:]...)
		cmd.Dir = s.Dir
		cmd.Env = env
		cmd.Stdout = os.Stdout
		cmd.Stderr = os.Stdout
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			code = 0
		case errors.As(err, &ee):
			code = ee.ExitCode()
			if code < 0 {
				fmt.Printf("\n%s: %v\n", s.Name, err)
				code = 128
				if ws, ok := ee.Sys().(interface{ Signal() os.Signal }); ok {
					if sig, ok := ws.Signal().(unix.Signal); ok {
						code += int(sig)
					}
				}
			}
		default:
			fmt.Printf("\n%s: %v\n", s.Name, err)
		}
	}
	fmt.Printf("\n%s %s %d\n", guestconf.MarkExit, s.Name, code)
}
