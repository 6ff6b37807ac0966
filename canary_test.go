package ktls

// Canaries: the hand-off relies on crypto/tls behaviour that is not its API
// (issue 13, item 9). Each test here pins one such behaviour, and its
// failure message says which one changed and what in ktls depends on it.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/handshake"
	"github.com/ktls-go/ktls/record"
)

// tls12Session runs a TLS 1.2 handshake between crypto/tls peers and
// returns the session the client may resume, and the master secret of the
// key log.
func tls12Session(t *testing.T) (*tls.SessionState, []byte) {
	t.Helper()
	var kl keyLogBuf
	cache := tls.NewLRUClientSessionCache(1)
	scfg, ccfg := serverTLS(), clientTLS()
	scfg.MaxVersion = tls.VersionTLS12
	ccfg.ClientSessionCache, ccfg.KeyLogWriter = cache, &kl
	cc, ss := tcpPair(t)
	deadline := time.Now().Add(20 * time.Second)
	cc.SetDeadline(deadline)
	ss.SetDeadline(deadline)
	errc := make(chan error, 1)
	go func() { errc <- tls.Server(ss, scfg).Handshake() }()
	if err := tls.Client(cc, ccfg).Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	cs, ok := cache.Get("localhost")
	if !ok {
		t.Fatal("no TLS 1.2 session in the client's cache")
	}
	_, state, err := cs.ResumptionState()
	if err != nil || state == nil {
		t.Fatalf("ResumptionState: %v", err)
	}
	_, master := clientRandomLine(t, &kl)
	return state, master
}

// TestCanarySessionStateBytes: handshake.SetResumedSession reads the master
// secret of a resumed TLS 1.2 session from tls.SessionState.Bytes, whose
// encoding crypto/tls documents as opaque.
func TestCanarySessionStateBytes(t *testing.T) {
	state, master := tls12Session(t)
	b, err := state.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	const secretAt = 2 + 1 + 2 + 8 // version, type, suite, created_at
	if len(b) < secretAt+1+48 || !bytes.Equal(b[:2], []byte{3, 3}) || b[secretAt] != 48 || !bytes.Equal(b[secretAt+1:secretAt+1+48], master) {
		t.Fatalf("crypto/tls changed the encoding of tls.SessionState.Bytes (documented as opaque): a TLS 1.2 session's " +
			"master secret is no longer at byte 13, after a one-byte length of 48. internal/handshake.SetResumedSession " +
			"reads it there (crypto/tls writes no key log line for a resumed TLS 1.2 session): follow the new encoding")
	}
}

// TestCanaryPostHandshakeRead: ReadTickets and storeTicket (TLS 1.3
// clients with a ClientSessionCache) let the tls.Conn read one
// NewSessionTicket record, after which the handshake conn returns
// handshake.ErrDetached. That needs crypto/tls's Read to go on reading after
// a post-handshake NewSessionTicket (so it meets the error), and not to keep
// an error whose Temporary() is true (so it can read the next ticket).
func TestCanaryPostHandshakeRead(t *testing.T) {
	var kl keyLogBuf
	cache := &recordingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	scfg, ccfg := serverTLS(), clientTLS()
	scfg.SessionTicketsDisabled = true
	ccfg.MinVersion, ccfg.ClientSessionCache = tls.VersionTLS13, cache
	cc, ss := tcpPair(t)
	deadline := time.Now().Add(20 * time.Second)
	cc.SetDeadline(deadline)
	ss.SetDeadline(deadline)
	hc := handshake.NewConn(cc, true)
	ccfg.KeyLogWriter = hc.KeyLogWriter(&kl)
	tc := tls.Client(hc, ccfg)
	errc := make(chan error, 1)
	go func() { errc <- tls.Server(ss, scfg).Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	hc.Detach()
	s, err := record.TLS13Session(tc.ConnectionState().CipherSuite, kl.secret(t, "SERVER_TRAFFIC_SECRET_0"))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := record.NewSealer(s)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"tkt1", "tkt2"} {
		ticket := slices.Concat([]byte{typeNewSessionTicket, 0, 0, 17, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 4}, []byte(name), []byte{0, 0})
		rec, err := sealer.Seal(nil, record.TypeHandshake, ticket)
		if err != nil {
			t.Fatal(err)
		}
		hc.Feed(rec)
		n, err := tc.Read(make([]byte, 1))
		switch {
		case err == nil:
			t.Fatalf("crypto/tls's Read returned %d bytes and no error after a post-handshake NewSessionTicket: it no "+
				"longer reads on after one. ReadTickets and storeTicket count on meeting handshake.ErrDetached there", n)
		case !errors.Is(err, handshake.ErrDetached):
			t.Fatalf("crypto/tls's Read of a post-handshake NewSessionTicket = %v, want handshake.ErrDetached "+
				"(ReadTickets and storeTicket count on it)", err)
		case !slices.Contains(cache.tickets(), name) && i == 0:
			t.Fatal("crypto/tls's Read of a post-handshake NewSessionTicket did not store it in the ClientSessionCache " +
				"(storeTicket counts on it)")
		case !slices.Contains(cache.tickets(), name):
			t.Fatal("crypto/tls now keeps an error whose Temporary() is true (handshake.ErrDetached) and reads no more: " +
				"ReadTickets and storeTicket count on it to read one NewSessionTicket after another")
		}
	}
}

// TestCanaryTicketKeys: explicitKeys tells session ticket keys set with
// SetSessionTicketKeys or SessionTicketKey from crypto/tls's automatic ones
// by their rotation: a clone of the Config living past their lifetime
// (Config.Time) seals under a new automatic key. It also needs Clone to
// share the keys.
func TestCanaryTicketKeys(t *testing.T) {
	state, _ := tls12Session(t)
	set, legacy, auto := serverTLS(), serverTLS(), serverTLS()
	set.SetSessionTicketKeys([][32]byte{{1, 2, 3}})
	//lint:ignore SA1019 the deprecated field still sets a config's keys, and explicitKeys must see them
	legacy.SessionTicketKey = [32]byte{4, 5, 6}
	auto.DecryptTicket(nil, tls.ConnectionState{}) // makes its automatic keys
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want bool
	}{{"SetSessionTicketKeys", set, true}, {"SessionTicketKey", legacy, true}, {"automatic", auto, false}} {
		if got := explicitKeys(tc.cfg, tls.ConnectionState{}, state); got != tc.want {
			t.Errorf("explicitKeys for keys from %s = %v, want %v: crypto/tls changed how it rotates its automatic "+
				"session ticket keys (Config.Time) or how Clone copies the keys; explicitKeys (ktls.go), which picks "+
				"the keys of GetConfigForClient's configuration as crypto/tls does, must follow", tc.name, got, tc.want)
		}
	}
	// The keys of a clone are the original's.
	clone := set.Clone()
	ticket, err := clone.EncryptTicket(tls.ConnectionState{}, state)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := set.DecryptTicket(ticket, tls.ConnectionState{}); got == nil {
		t.Error("a clone of a tls.Config no longer seals tickets with the original's keys: serverConfig (ktls.go) " +
			"clones Config.TLS for each connection and counts on it")
	}
}
