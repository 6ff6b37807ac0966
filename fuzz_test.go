package ktls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ktls-go/ktls/record"
)

// FuzzControlRecord has a raw peer seal one arbitrary record (any type
// byte, any payload) after the hand-off and then close the connection
// without close_notify; the user-space engine must return the payload of
// application data and then ErrTruncated, io.EOF for a close_notify, or
// another error, and never panic or hang. The seeds (testdata/fuzz) are the
// real control records: alerts, KeyUpdates, NewSessionTickets, and records
// of other types.
func FuzzControlRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, client bool, typ uint8, payload []byte) {
		if len(payload) > record.MaxPlaintext {
			payload = payload[:record.MaxPlaintext]
		}
		var opts []func(*Config)
		if client {
			opts = append(opts, func(c *Config) { c.TLS.ClientSessionCache = tls.NewLRUClientSessionCache(2) })
		}
		k, rp := newRawPeer(t, OffloadUser, !client, opts...)
		defer k.Close()
		if err := rp.w.WriteRecord(record.ContentType(typ), payload); err != nil {
			return // not a type the record layer seals
		}
		rp.conn.(*net.TCPConn).CloseWrite()
		k.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []byte
		var err error
		buf := make([]byte, 1000)
		for err == nil {
			var n int
			n, err = k.Read(buf)
			got = append(got, buf[:n]...)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("Read hung: %v", err)
		}
		switch record.ContentType(typ) {
		case record.TypeApplicationData:
			if !bytes.Equal(got, payload) || !errors.Is(err, ErrTruncated) {
				t.Fatalf("read %d bytes of %d, %v; want all and ErrTruncated", len(got), len(payload), err)
			}
			return
		case record.TypeAlert:
			if len(payload) == 2 && payload[1] == byte(record.AlertCloseNotify) && err != io.EOF {
				t.Fatalf("close_notify gave %v, want io.EOF", err)
			}
		}
		if len(got) > 0 {
			t.Fatalf("a %v record gave %d bytes of data", record.ContentType(typ), len(got))
		}
		if _, err2 := k.Read(buf); err2 == nil {
			t.Fatalf("Read after %v succeeded", err)
		}
	})
}
