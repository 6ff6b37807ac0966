package ktls

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// checkLeaks makes t fail unless the goroutines and open file descriptors
// of the process settle back to their number at the call once t's other
// cleanups (closing its connections) have run. Call it first in a test.
func checkLeaks(t *testing.T) {
	goroutines, fds := runtime.NumGoroutine(), openFDs()
	t.Cleanup(func() {
		var g, n int
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if g, n = runtime.NumGoroutine(), openFDs(); g <= goroutines && n <= fds {
				return
			}
		}
		buf := make([]byte, 1<<16)
		t.Errorf("leak: %d goroutines (was %d), %d fds (was %d)\n%s", g, goroutines, n, fds, buf[:runtime.Stack(buf, true)])
	})
}

// openFDs counts the process's open file descriptors (-1 where /proc is
// missing, which makes the check pass).
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func TestFaults(t *testing.T) { testFaults(t, OffloadUser) }

func TestKernelFaults(t *testing.T) {
	ktlstest.RequireKernel(t)
	testFaults(t, OffloadKernel)
}

// testFaults has a raw peer misbehave at the TCP and record level and
// checks the error or data, the alert and that nothing is left behind.
func testFaults(t *testing.T, engine Offload) {
	t.Run("reset_mid_record", func(t *testing.T) {
		checkLeaks(t)
		k, rp := newRawPeer(t, engine, true)
		rp.send(record.TypeApplicationData, []byte("good"))
		buf := make([]byte, 100)
		if n, err := k.Read(buf); err != nil || string(buf[:n]) != "good" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		rec, _ := rp.sealer(rp.txSecret).Seal(nil, record.TypeApplicationData, []byte("never whole"))
		rp.conn.Write(rec[:len(rec)/2])
		time.Sleep(20 * time.Millisecond)
		rp.conn.(*net.TCPConn).SetLinger(0)
		rp.conn.Close()
		_, err := k.Read(buf)
		if err == nil || err == io.EOF || !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("Read after a reset = %v, want ECONNRESET or ErrTruncated", err)
		}
		k.Close()
	})
	t.Run("no_close_notify", func(t *testing.T) {
		checkLeaks(t)
		k, rp := newRawPeer(t, engine, true)
		data := testData(50000, 1)
		rp.w.Write(data)
		rp.conn.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(k)
		if !bytes.Equal(got, data) || !errors.Is(err, ErrTruncated) || errors.Is(err, io.EOF) {
			t.Fatalf("ReadAll = %d bytes, %v; want %d and ErrTruncated, not io.EOF", len(got), err, len(data))
		}
		k.Close()
	})
	t.Run("stall_mid_record", func(t *testing.T) {
		checkLeaks(t)
		k, rp := newRawPeer(t, engine, true)
		want := testData(3000, 2)
		rec, _ := rp.sealer(rp.txSecret).Seal(nil, record.TypeApplicationData, want)
		rp.conn.Write(rec[:1000])
		k.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 5000)
		start := time.Now()
		_, err := k.Read(buf)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read of a stalled record = %v, want a timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("timeout took %v", d)
		}
		// A timeout does not stick: the rest of the record completes it.
		rp.conn.Write(rec[1000:])
		k.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadFull(k, buf[:len(want)])
		if err != nil || !bytes.Equal(buf[:got], want) {
			t.Fatalf("Read after the stall = %d, %v", got, err)
		}
		k.Close()
	})
	t.Run("one_byte_segments", func(t *testing.T) {
		checkLeaks(t)
		k, rp := newRawPeer(t, engine, true)
		rp.conn.(*net.TCPConn).SetNoDelay(true)
		s := rp.sealer(rp.txSecret)
		var want, stream []byte
		for i, n := range []int{1, 700, 0, 2500} {
			p := testData(n, uint64(10+i))
			want = append(want, p...)
			stream, _ = s.Seal(stream, record.TypeApplicationData, p)
		}
		go func() {
			for i := range stream {
				if _, err := rp.conn.Write(stream[i : i+1]); err != nil {
					return
				}
			}
		}()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(k, got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ReadFull = %v; %s", err, firstDiff(got, want))
		}
		k.Close()
	})
	t.Run("plaintext_overflow", func(t *testing.T) {
		checkLeaks(t)
		k, rp := newRawPeer(t, engine, true)
		rp.conn.Write(sealOversized(t, rp.suite, rp.session(rp.txSecret), record.MaxPlaintext+1))
		_, err := k.Read(make([]byte, record.MaxPlaintext+10))
		if !errors.Is(err, syscall.EMSGSIZE) {
			t.Fatalf("Read of 2^14+1 bytes of plaintext = %v, want EMSGSIZE", err)
		}
		rp.wantAlert(record.AlertRecordOverflow)
		k.Close()
	})
	t.Run("after_close_notify", func(t *testing.T) {
		checkLeaks(t)
		k, rp := newRawPeer(t, engine, true)
		rp.send(record.TypeApplicationData, []byte("before"))
		rp.send(record.TypeAlert, []byte{1, 0})
		rp.send(record.TypeApplicationData, []byte("after"))
		rp.send(record.TypeAlert, []byte{2, byte(record.AlertInternalError)})
		got, err := io.ReadAll(k)
		if err != nil || string(got) != "before" {
			t.Fatalf("ReadAll = %q, %v; want only what came before close_notify", got, err)
		}
		for range 2 {
			if n, err := k.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("Read after close_notify = %d, %v; want io.EOF", n, err)
			}
		}
		k.Close()
	})
	t.Run("bad_tag_in_stream", func(t *testing.T) {
		checkLeaks(t)
		k, rp := newRawPeer(t, engine, true)
		const records, size, bad = 200, 1000, 150
		data := testData(records*size, 3)
		s := rp.sealer(rp.txSecret)
		var stream []byte
		for i := range records {
			stream, _ = s.Seal(stream, record.TypeApplicationData, data[i*size:(i+1)*size])
			if i == bad {
				stream[len(stream)-1] ^= 0x80 // the last byte of the tag
			}
		}
		go rp.conn.Write(stream)
		got, err := readVarying(k)
		if !bytes.Equal(got, data[:bad*size]) {
			t.Fatalf("before the bad record: %s", firstDiff(got, data[:bad*size]))
		}
		if !errors.Is(err, syscall.EBADMSG) {
			t.Fatalf("error at the bad record = %v, want EBADMSG", err)
		}
		rp.wantAlert(record.AlertBadRecordMAC)
		k.Close()
	})
	t.Run("interleaved_control", func(t *testing.T) {
		checkLeaks(t)
		cache := tls.NewLRUClientSessionCache(4)
		k, rp := newRawPeer(t, engine, false, func(c *Config) { c.TLS.ClientSessionCache = cache })
		canRekey := engine != OffloadKernel || kernel.Rekey() == nil
		data := testData(200000, 4)
		ticket := []byte{typeNewSessionTicket, 0, 0, 17, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 4, 't', 'k', 't', '1', 0, 0}
		werr := make(chan error, 1)
		go func() {
			var err error
			for i, off := 0, 0; off < len(data) && err == nil; i++ {
				n := min(len(data)-off, 1+i*997%20000)
				if _, err = rp.w.Write(data[off : off+n]); err != nil {
					break
				}
				off += n
				switch i % 3 {
				case 0:
					err = rp.w.WriteRecord(record.TypeHandshake, ticket)
				case 1:
					if canRekey {
						err = rp.tryKeyUpdate(false)
					}
				case 2:
					err = rp.w.WriteRecord(record.TypeApplicationData, nil)
				}
			}
			if err == nil {
				err = rp.w.WriteRecord(record.TypeAlert, []byte{1, 0})
			}
			werr <- err
		}()
		got, err := readVarying(k)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadAll = %v; %s", err, firstDiff(got, data))
		}
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
		k.Close()
	})
}

// sealOversized seals a TLS 1.3 application data record of n bytes of
// plaintext at sequence number s.Seq, which package record refuses to do
// for more than 2^14 bytes.
func sealOversized(t *testing.T, suite uint16, s *record.Session, n int) []byte {
	t.Helper()
	var aead cipher.AEAD
	var err error
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384:
		var b cipher.Block
		if b, err = aes.NewCipher(s.Key); err == nil {
			aead, err = cipher.NewGCM(b)
		}
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		aead, err = chacha20poly1305.New(s.Key)
	default:
		t.Fatalf("suite %#x", suite)
	}
	if err != nil {
		t.Fatal(err)
	}
	inner := append(testData(n, 5), byte(record.TypeApplicationData))
	hdr := []byte{byte(record.TypeApplicationData), 3, 3, 0, 0}
	binary.BigEndian.PutUint16(hdr[3:], uint16(len(inner)+aead.Overhead()))
	nonce := bytes.Clone(s.IV)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], s.Seq)
	for i := range seq {
		nonce[len(nonce)-8+i] ^= seq[i]
	}
	return aead.Seal(hdr, nonce, inner, hdr)
}
