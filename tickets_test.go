package ktls

import (
	"crypto/rand"
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/ktlstest"
)

// ticketFrom returns a client session cache holding a ticket that a
// crypto/tls server with the session ticket keys keys issued.
func ticketFrom(t *testing.T, keys [32]byte, sc suiteCase) tls.ClientSessionCache {
	t.Helper()
	cache := tls.NewLRUClientSessionCache(1)
	scfg, ccfg := limit(serverTLS(), sc), limit(clientTLS(), sc)
	scfg.SetSessionTicketKeys([][32]byte{keys})
	ccfg.ClientSessionCache = cache
	cc, ss := tcpPair(t)
	deadline := time.Now().Add(20 * time.Second)
	cc.SetDeadline(deadline)
	ss.SetDeadline(deadline)
	s, c := tls.Server(ss, scfg), tls.Client(cc, ccfg)
	errc := make(chan error, 1)
	go func() {
		err := s.Handshake()
		if err == nil {
			_, err = s.Write([]byte("x")) // behind the TLS 1.3 ticket
		}
		errc <- err
	}()
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cache
}

func newTicketKey(t *testing.T) (k [32]byte) {
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return k
}

// resumes connects a crypto/tls client with cache to a ktls server with
// kcfg and reports whether the session was resumed.
func resumes(t *testing.T, kcfg *Config, cache tls.ClientSessionCache, sc suiteCase) bool {
	t.Helper()
	pcfg := limit(clientTLS(), sc)
	pcfg.ClientSessionCache = cache
	pr := newPair(t, true, kcfg, pcfg)
	pr.fc.release()
	pr.handshake(t)
	if tx, rx := pr.k.Mode(); tx != wantMode(kcfg.TX) || rx != wantMode(kcfg.RX) {
		t.Fatalf("Mode() = %v, %v; want %v", tx, rx, wantMode(kcfg.TX))
	}
	echo(t, pr)
	return pr.k.ConnectionState().DidResume
}

func TestSessionTicketKeys(t *testing.T) { testSessionTicketKeys(t, OffloadUser) }

func TestKernelSessionTicketKeys(t *testing.T) {
	ktlstest.RequireKernel(t)
	testSessionTicketKeys(t, OffloadKernel)
}

// testSessionTicketKeys checks that a ktls server uses the session ticket
// keys crypto/tls would (issue 13, item 7): the current keys of its
// tls.Config, rotated by SetSessionTicketKeys while it runs, and the keys
// of the tls.Config GetConfigForClient returns when it has its own (else
// the original's).
func testSessionTicketKeys(t *testing.T, engine Offload) {
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[3]} {
		t.Run(sc.name+"/rotation", func(t *testing.T) {
			k1, k2 := newTicketKey(t), newTicketKey(t)
			scfg := limit(serverTLS(), sc)
			scfg.SetSessionTicketKeys([][32]byte{k1})
			kcfg := &Config{TLS: scfg, TX: engine, RX: engine, KernelWithoutRekey: true}
			old := tls.NewLRUClientSessionCache(1)
			if resumes(t, kcfg, old, sc) {
				t.Fatal("first connection resumed")
			}
			if !resumes(t, kcfg, old, sc) {
				t.Fatal("a ticket of the server's own did not resume")
			}
			if !resumes(t, kcfg, ticketFrom(t, k1, sc), sc) {
				t.Fatal("a ticket sealed under the server's key did not resume")
			}
			scfg.SetSessionTicketKeys([][32]byte{k2})
			if resumes(t, kcfg, ticketFrom(t, k1, sc), sc) {
				t.Error("after SetSessionTicketKeys, a ticket under the old key resumed")
			}
			if !resumes(t, kcfg, ticketFrom(t, k2, sc), sc) {
				t.Error("after SetSessionTicketKeys, a ticket under the new key did not resume")
			}
		})
		t.Run(sc.name+"/config_for_client", func(t *testing.T) {
			kOrig, kOwn := newTicketKey(t), newTicketKey(t)
			own, without := limit(serverTLS(), sc), limit(serverTLS(), sc)
			own.SetSessionTicketKeys([][32]byte{kOwn})
			for _, tc := range []struct {
				name            string
				cfg             *tls.Config
				resumes, refuse [32]byte
			}{
				{"own_keys", own, kOwn, kOrig},
				{"no_keys", without, kOrig, kOwn},
			} {
				scfg := limit(serverTLS(), sc)
				scfg.SetSessionTicketKeys([][32]byte{kOrig})
				scfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return tc.cfg, nil }
				kcfg := &Config{TLS: scfg, TX: engine, RX: engine, KernelWithoutRekey: true}
				if !resumes(t, kcfg, ticketFrom(t, tc.resumes, sc), sc) {
					t.Errorf("%s: a ticket under the key crypto/tls uses did not resume", tc.name)
				}
				if resumes(t, kcfg, ticketFrom(t, tc.refuse, sc), sc) {
					t.Errorf("%s: a ticket under the key crypto/tls does not use resumed", tc.name)
				}
				cache := tls.NewLRUClientSessionCache(1)
				resumes(t, kcfg, cache, sc)
				if !resumes(t, kcfg, cache, sc) {
					t.Errorf("%s: a ticket of the server's own did not resume", tc.name)
				}
			}
		})
	}
}
