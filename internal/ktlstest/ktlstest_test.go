package ktlstest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ktls-go/ktls/internal/kernel"
)

// fakeTB records how RequireKernel ended a test.
type fakeTB struct {
	testing.TB
	how, msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.how, f.msg = "fatal", fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.how, f.msg = "skip", fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func run(f *fakeTB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		RequireKernel(f)
		f.how = "run"
	}()
	<-done
}

func TestRequireKernel(t *testing.T) {
	for _, env := range []struct{ name, value string }{
		{"", ""}, {"CI", "true"}, {"KTLS_REQUIRE_KERNEL", "1"}, {"KTLS_LAB", "1"},
	} {
		t.Setenv("CI", "")
		t.Setenv("KTLS_REQUIRE_KERNEL", "")
		t.Setenv("KTLS_LAB", "")
		if env.name != "" {
			t.Setenv(env.name, env.value)
		}
		f := &fakeTB{TB: t}
		run(f)
		want := "run"
		switch {
		case kernel.Supported() == nil:
		case env.name == "":
			want = "skip"
		default:
			want = "fatal"
		}
		if f.how != want {
			t.Errorf("%s=%s: test was %s (%s), want %s", env.name, env.value, f.how, f.msg, want)
		}
		if want == "skip" && !strings.Contains(f.msg, "go run ./internal/cmd/ktlslab test") {
			t.Errorf("skip message %q does not say how to run the lab", f.msg)
		}
	}
}
