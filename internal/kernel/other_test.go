//go:build !linux && !freebsd

package kernel

import (
	"errors"
	"testing"
)

func TestUnsupported(t *testing.T) {
	if err := Supported(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Supported: %v, want ErrUnsupported", err)
	}
	if err := Attach(nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Attach: %v", err)
	}
	if err := Enable(nil, TX, nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Enable: %v", err)
	}
	if _, err := SendRecord(nil, 21, nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SendRecord: %v", err)
	}
	if _, _, err := RecvRecord(nil, nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("RecvRecord: %v", err)
	}
	if _, err := SocketInfo(nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SocketInfo: %v", err)
	}
	if _, err := Stats(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Stats: %v", err)
	}
}
