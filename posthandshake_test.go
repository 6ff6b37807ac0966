package ktls

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// wantFatal checks that Read fails, that the peer gets alert want, and that
// the error sticks (a kernel that paused reading would answer EKEYEXPIRED
// next).
func wantFatal(t *testing.T, k *Conn, rp *rawPeer, want record.Alert) error {
	t.Helper()
	_, err := k.Read(make([]byte, 10))
	if err == nil {
		t.Fatal("Read succeeded")
	}
	rp.wantAlert(want)
	if _, err2 := k.Read(make([]byte, 10)); err2 == nil || err2.Error() != err.Error() || errnoKeyExpired != 0 && errors.Is(err2, errnoKeyExpired) {
		t.Errorf("second Read = %v, want the first error again (%v)", err2, err)
	}
	return err
}

func TestUselessRecords(t *testing.T) { testUselessRecords(t, OffloadUser) }

func TestKernelUselessRecords(t *testing.T) {
	ktlstest.RequireKernel(t)
	testUselessRecords(t, OffloadKernel)
}

// testUselessRecords is issue 13.4: at most 16 records in a row that carry
// nothing, as crypto/tls; more end the connection with unexpected_message.
func testUselessRecords(t *testing.T, engine Offload) {
	canRekey := engine != OffloadKernel || kernel.Rekey() == nil
	floods := map[string]func(rp *rawPeer){
		"key_update":           func(rp *rawPeer) { rp.keyUpdate(false) },
		"key_update_requested": func(rp *rawPeer) { rp.keyUpdate(true) },
		"user_canceled":        func(rp *rawPeer) { rp.send(record.TypeAlert, []byte{1, byte(record.AlertUserCanceled)}) },
	}
	if engine != OffloadKernel {
		// Linux skips empty application data records itself.
		floods["empty_data"] = func(rp *rawPeer) { rp.send(record.TypeApplicationData, nil) }
	}
	for name, send := range floods {
		if strings.HasPrefix(name, "key_update") && !canRekey {
			continue // the first KeyUpdate ends the connection (TestKernelKeyUpdate)
		}
		t.Run(name, func(t *testing.T) {
			k, rp := newRawPeer(t, engine, true)
			// 16, data (which resets the count), 16 again: fine.
			for range 16 {
				send(rp)
			}
			rp.send(record.TypeApplicationData, []byte("a"))
			for range 16 {
				send(rp)
			}
			rp.send(record.TypeApplicationData, []byte("b"))
			if got, err := io.ReadAll(io.LimitReader(k, 2)); err != nil || string(got) != "ab" {
				t.Fatalf("Read = %q, %v", got, err)
			}
			before := Stats().Control.TooManyIgnored
			for range 17 {
				send(rp)
			}
			err := wantFatal(t, k, rp, record.AlertUnexpectedMessage)
			if !strings.Contains(err.Error(), "carried nothing") {
				t.Errorf("error %q does not say why", err)
			}
			if Stats().Control.TooManyIgnored <= before {
				t.Error("not counted")
			}
		})
	}
	if canRekey {
		t.Run("spread_WriteTo", func(t *testing.T) {
			// Data between them resets the count, also when WriteTo
			// moves it (splice or read(2) on the kernel engine).
			k, rp := newRawPeer(t, engine, true)
			go func() {
				for range 40 {
					if rp.tryKeyUpdate(false) != nil || rp.w.WriteRecord(record.TypeApplicationData, []byte("x")) != nil {
						return
					}
				}
				rp.w.WriteRecord(record.TypeAlert, []byte{1, 0})
			}()
			var buf bytes.Buffer
			if n, err := k.WriteTo(&buf); n != 40 || err != nil {
				t.Fatalf("WriteTo = %d, %v; want 40, nil", n, err)
			}
		})
	}
	t.Run("tickets", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, false)
		ticket := []byte{typeNewSessionTicket, 0, 0, 14, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1, 9, 0, 0}
		for range 17 {
			rp.send(record.TypeHandshake, ticket)
		}
		wantFatal(t, k, rp, record.AlertUnexpectedMessage)
	})
	t.Run("key_updates_in_one_record", func(t *testing.T) {
		// CVE-2026-32283: several KeyUpdates in one record.
		k, rp := newRawPeer(t, engine, true)
		ku := []byte{typeKeyUpdate, 0, 0, 1, 1}
		rp.send(record.TypeHandshake, bytes.Repeat(ku, 3))
		wantFatal(t, k, rp, record.AlertUnexpectedMessage)
	})
}

func TestMalformedKeyUpdate(t *testing.T) { testMalformedKeyUpdate(t, OffloadUser) }

func TestKernelMalformedKeyUpdate(t *testing.T) {
	ktlstest.RequireKernel(t)
	testMalformedKeyUpdate(t, OffloadKernel)
}

// testMalformedKeyUpdate is issue 13.5: a record that starts with the
// KeyUpdate type but is no KeyUpdate (Linux then pauses reading) is a
// clean fatal error with its alert, through Read and ReadRecord.
func testMalformedKeyUpdate(t *testing.T, engine Offload) {
	for name, tc := range map[string]struct {
		p     []byte
		alert record.Alert
	}{
		"empty_body":    {[]byte{typeKeyUpdate, 0, 0, 0}, record.AlertDecodeError},
		"long_body":     {[]byte{typeKeyUpdate, 0, 0, 2, 0, 0}, record.AlertDecodeError},
		"bad_value":     {[]byte{typeKeyUpdate, 0, 0, 1, 2}, record.AlertIllegalParameter},
		"trailing_byte": {[]byte{typeKeyUpdate, 0, 0, 1, 0, 0}, record.AlertUnexpectedMessage},
		"huge_length":   {[]byte{typeKeyUpdate, 0xff, 0xff, 0xff}, record.AlertDecodeError},
	} {
		t.Run(name, func(t *testing.T) {
			k, rp := newRawPeer(t, engine, true)
			rp.send(record.TypeHandshake, tc.p)
			wantFatal(t, k, rp, tc.alert)
		})
		t.Run(name+"_ReadRecord", func(t *testing.T) {
			k, rp := newRawPeer(t, engine, true)
			rp.send(record.TypeHandshake, tc.p)
			_, _, err := k.ReadRecord()
			if err == nil {
				t.Fatal("ReadRecord succeeded")
			}
			rp.wantAlert(tc.alert)
			if _, _, err2 := k.ReadRecord(); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("second ReadRecord = %v, want %v", err2, err)
			}
		})
	}
}

func TestFragmentedKeyUpdate(t *testing.T) { testFragmentedKeyUpdate(t, OffloadUser) }

func TestKernelFragmentedKeyUpdate(t *testing.T) {
	ktlstest.RequireKernel(t)
	testFragmentedKeyUpdate(t, OffloadKernel)
}

// testFragmentedKeyUpdate is issue 11b: a KeyUpdate split across two
// records is followed; application data between the pieces is
// unexpected_message. Linux takes the first piece for a whole KeyUpdate and
// reads nothing more until it is re-keyed: ktls gives it the old key again
// (at the kernel's sequence number) to read the rest.
func testFragmentedKeyUpdate(t *testing.T, engine Offload) {
	ku := []byte{typeKeyUpdate, 0, 0, 1, 1}
	for cut := 1; cut <= 4; cut++ {
		for _, between := range []bool{false, true} {
			name := itoa(cut) + "_" + itoa(5-cut)
			if between {
				name += "_data_between"
			}
			t.Run(name, func(t *testing.T) {
				k, rp := newRawPeer(t, engine, true)
				rp.send(record.TypeHandshake, ku[:cut])
				if between {
					rp.send(record.TypeApplicationData, []byte("between"))
				}
				if between {
					rp.send(record.TypeHandshake, ku[cut:])
					wantFatal(t, k, rp, record.AlertUnexpectedMessage)
					return
				}
				// The rest, then the new key.
				if err := rp.tryKeyUpdateRecord(ku[cut:]); err != nil {
					t.Fatal(err)
				}
				rp.send(record.TypeApplicationData, []byte("after"))
				buf := make([]byte, 10)
				n, err := k.Read(buf)
				if engine == OffloadKernel && kernel.Rekey() != nil {
					// Linux before 6.14 reads the pieces but
					// cannot take the new key.
					if err == nil || !strings.Contains(err.Error(), "cannot re-key") {
						t.Fatalf("Read = %v; want the kernel's re-key error", err)
					}
					return
				}
				if err != nil || string(buf[:n]) != "after" {
					t.Fatalf("Read = %q, %v", buf[:n], err)
				}
				// update_requested: our answer comes first.
				go k.Write([]byte("back"))
				if typ, p, err := rp.recv(); err != nil || typ != record.TypeHandshake || len(p) != 5 || p[0] != typeKeyUpdate {
					t.Fatalf("peer got %v %x, %v; want our KeyUpdate", typ, p, err)
				}
				if typ, p, err := rp.recv(); err != nil || typ != record.TypeApplicationData || string(p) != "back" {
					t.Fatalf("peer got %v %q, %v", typ, p, err)
				}
			})
		}
	}
	t.Run("ticket_piece_like_key_update", func(t *testing.T) {
		// The second piece of a split NewSessionTicket starts with
		// the KeyUpdate type, which makes Linux pause reading.
		k, rp := newRawPeer(t, engine, false)
		ticket := []byte{typeNewSessionTicket, 0, 0, 14, typeKeyUpdate, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1, 9, 0, 0}
		rp.send(record.TypeHandshake, ticket[:4])
		rp.send(record.TypeHandshake, ticket[4:])
		rp.send(record.TypeApplicationData, []byte("after"))
		buf := make([]byte, 10)
		if n, err := k.Read(buf); err != nil || string(buf[:n]) != "after" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
	})
	t.Run("second_key_update_across_keys", func(t *testing.T) {
		// A whole KeyUpdate and the start of another in one record:
		// the rest would come under the new key. crypto/tls refuses
		// it (unexpected_message), so does ktls.
		k, rp := newRawPeer(t, engine, true)
		rp.send(record.TypeHandshake, append(append([]byte{}, ku...), ku[:2]...))
		wantFatal(t, k, rp, record.AlertUnexpectedMessage)
	})
}

// tryKeyUpdateRecord sends the last piece of a KeyUpdate and moves to the
// next sending key.
func (rp *rawPeer) tryKeyUpdateRecord(p []byte) error {
	if err := rp.w.WriteRecord(record.TypeHandshake, p); err != nil {
		return err
	}
	next, err := record.TLS13NextSecret(rp.suite, rp.txSecret)
	if err != nil {
		return err
	}
	rp.txSecret = next
	rp.w.SetSealer(rp.sealer(next))
	return nil
}

func TestEmptyAlert(t *testing.T) { testEmptyAlert(t, OffloadUser) }

func TestKernelEmptyAlert(t *testing.T) {
	ktlstest.RequireKernel(t)
	testEmptyAlert(t, OffloadKernel)
}

// testEmptyAlert is issue 11c: an empty alert record under the application
// keys, with 0 to 30 bytes of padding, gets unexpected_message, as from
// crypto/tls (an alert record of any length but 2 does).
func testEmptyAlert(t *testing.T, engine Offload) {
	for _, pad := range []int{0, 1, 15, 30} {
		t.Run("pad_"+itoa(pad), func(t *testing.T) {
			k, rp := newRawPeer(t, engine, true)
			rp.conn.Write(rp.sealPaddedFirst(record.TypeAlert, nil, pad))
			wantFatal(t, k, rp, record.AlertUnexpectedMessage)
		})
	}
	t.Run("one_byte", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, true)
		rp.send(record.TypeAlert, []byte{2})
		wantFatal(t, k, rp, record.AlertUnexpectedMessage)
	})
}

// sealPaddedFirst seals the raw peer's first record (sequence number 0)
// under its first traffic secret, with pad zero bytes of TLS 1.3 padding,
// which record.Sealer never adds.
func (rp *rawPeer) sealPaddedFirst(typ record.ContentType, payload []byte, pad int) []byte {
	s := rp.session(rp.txSecret)
	var aead cipher.AEAD
	var err error
	if rp.suite == tls.TLS_CHACHA20_POLY1305_SHA256 {
		aead, err = chacha20poly1305.New(s.Key)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(s.Key); err == nil {
			aead, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		rp.t.Fatal(err)
	}
	inner := append(append(append([]byte{}, payload...), byte(typ)), make([]byte, pad)...)
	hdr := []byte{byte(record.TypeApplicationData), 3, 3, 0, 0}
	binary.BigEndian.PutUint16(hdr[3:], uint16(len(inner)+aead.Overhead()))
	nonce := append([]byte{}, s.IV...) // sequence number 0: the IV itself
	return aead.Seal(hdr, nonce, inner, hdr)
}

func TestKeyLimit(t *testing.T) { testKeyLimit(t, OffloadUser) }

func TestKernelKeyLimit(t *testing.T) {
	ktlstest.RequireKernel(t)
	testKeyLimit(t, OffloadKernel)
}

// testKeyLimit is issue 13.10 with recordsPerKey lowered to 3: on TLS 1.3
// the sending direction sends a KeyUpdate before every fourth record
// (Write and ReadFrom of a file); where it cannot (a kernel without rekey)
// the connection goes on and is counted.
func testKeyLimit(t *testing.T, engine Offload) {
	old := recordsPerKey
	recordsPerKey = 3
	defer func() { recordsPerKey = old }()
	canRekey := engine != OffloadKernel || kernel.Rekey() == nil
	data := testData(10*record.MaxPlaintext+7, 9)
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"Write", "ReadFrom"} {
		t.Run(how, func(t *testing.T) {
			k, rp := newRawPeer(t, engine, true)
			if c, _ := record.CipherOf(k.ConnectionState().CipherSuite); c == record.CipherChaCha20Poly1305 {
				// Reasoned: the limit is AES-GCM's; TLS 1.3 picks
				// ChaCha20 on CPUs without AES instructions.
				t.Logf("ChaCha20-Poly1305: no record limit")
				return
			}
			before := Stats()
			errc := make(chan error, 1)
			go func() {
				var err error
				if how == "Write" {
					_, err = k.Write(data)
				} else {
					var f *os.File
					if f, err = os.Open(name); err == nil {
						_, err = io.Copy(k, f)
						f.Close()
					}
				}
				errc <- err
			}()
			var got []byte
			run, updates := 0, 0
			for len(got) < len(data) {
				typ, p, err := rp.recv()
				if err != nil {
					t.Fatal(err)
				}
				if typ == record.TypeHandshake && len(p) == 5 && p[0] == typeKeyUpdate {
					updates++
					run = 0
					continue
				}
				if run++; run > 3 && canRekey {
					t.Fatalf("%d records under one key, want at most 3", run)
				}
				got = append(got, p...)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal(firstDiff(got, data))
			}
			s := Stats()
			if canRekey && (updates < 3 || s.RekeysTX-before.RekeysTX < 3) {
				t.Errorf("%d KeyUpdates, %d rekeys; want at least 3", updates, s.RekeysTX-before.RekeysTX)
			}
			if !canRekey && (updates != 0 || s.KeyLimitExceeded-before.KeyLimitExceeded != 1) {
				t.Errorf("kernel without rekey: %d KeyUpdates, key limit counted %d; want 0, 1", updates, s.KeyLimitExceeded-before.KeyLimitExceeded)
			}
		})
	}
}
