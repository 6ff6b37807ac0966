// Package guestconf is the contract between the kernel lab on the host and
// its PID 1 inside the virtual machine: the run configuration the host puts
// into the initramfs and the markers the guest prints on the serial console.
package guestconf

// Path is where the run configuration (JSON of Config) sits in the initramfs.
const Path = "/lab/config.json"

// Console markers printed by the guest's PID 1 at the start of a line.
const (
	// MarkInit is printed once PID 1 runs; its absence means the kernel did not boot.
	MarkInit = "KTLSLAB-INIT"
	// MarkModule is followed by a module name and the result of loading it.
	MarkModule = "KTLSLAB-MODULE"
	// MarkBegin is followed by a step name and announces that the step's output follows.
	MarkBegin = "KTLSLAB-BEGIN"
	// MarkExit is followed by a step name and its exit status (-1: could not start).
	MarkExit = "KTLSLAB-EXIT"
	// MarkError is followed by a message about a failure of PID 1 itself.
	MarkError = "KTLSLAB-ERROR"
	// MarkDone is printed before PID 1 powers the machine off.
	MarkDone = "KTLSLAB-DONE"
)

// Config is what PID 1 does: load modules, set up networking, run steps.
type Config struct {
	// Modules are the kernel module files to load, in order (dependencies first).
	Modules []string `json:"modules"`
	// Required names modules whose failure to load is an error (EEXIST is not).
	Required []string `json:"required,omitempty"`
	// Network configures eth0 (virtio-net) with 10.0.2.15/24 for qemu's user network.
	Network bool `json:"network,omitempty"`
	// Env is added to every step's environment.
	Env []string `json:"env,omitempty"`
	// Steps run one after another.
	Steps []Step `json:"steps"`
}

// Step is one program run by PID 1.
type Step struct {
	Name string   `json:"name"`
	Dir  string   `json:"dir"`
	Args []string `json:"args"` // Args[0] is the program path
}
