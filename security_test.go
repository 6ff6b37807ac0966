package ktls

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// secretForms returns the forms a secret (or a key derived from it) could
// leak in: raw, hex in both cases, base64, and Go's %v of a byte slice.
func secretForms(b []byte) []string {
	return []string{string(b), hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), fmt.Sprint(b)}
}

// keyLogSecrets returns every secret of a key log and the keys and IVs of
// the TLS 1.3 sessions the traffic secrets make, in all their forms.
func keyLogSecrets(t *testing.T, log string, suite uint16) []string {
	t.Helper()
	var forms []string
	for line := range strings.Lines(log) {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		secret, err := hex.DecodeString(f[2])
		if err != nil {
			t.Fatal(err)
		}
		forms = append(forms, secretForms(secret)...)
		if s, err := record.TLS13Session(suite, secret); err == nil {
			forms = append(forms, secretForms(s.Key)...)
			forms = append(forms, secretForms(s.IV)...)
		}
	}
	if len(forms) == 0 {
		t.Fatal("no secrets in the key log")
	}
	return forms
}

func TestSecretsNotLeaked(t *testing.T) { testSecretsNotLeaked(t, OffloadUser) }

func TestKernelSecretsNotLeaked(t *testing.T) {
	ktlstest.RequireKernel(t)
	testSecretsNotLeaked(t, OffloadKernel)
}

// testSecretsNotLeaked runs connections whose key log captures the secrets,
// drives them into errors (bad records, alerts, truncation, KeyUpdate and
// writes after close) and into String, %v and slog output, and checks that
// no secret, key or IV appears in any of that text; and that Close wipes
// the traffic secrets the Conn keeps.
func testSecretsNotLeaked(t *testing.T, engine Offload) {
	for _, mangle := range []string{"bad_mac", "overflow", "alert", "truncated", "garbage"} {
		t.Run(mangle, func(t *testing.T) {
			var kl keyLogBuf
			k, rp := newRawPeer(t, engine, true, func(c *Config) { c.TLS.KeyLogWriter = &kl })
			var text bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&text, &slog.HandlerOptions{Level: slog.LevelDebug}))
			note := func(what string, v ...any) {
				fmt.Fprintln(&text, append([]any{what}, v...)...)
				logger.Debug(what, "values", v)
			}
			rp.send(record.TypeApplicationData, []byte("hello"))
			buf := make([]byte, 100)
			n, err := k.Read(buf)
			note("first read", n, err)
			s := rp.sealer(rp.txSecret)
			s.Seal(nil, record.TypeApplicationData, nil)
			rec, _ := s.Seal(nil, record.TypeApplicationData, []byte("second"))
			switch mangle {
			case "bad_mac":
				rec[len(rec)-3] ^= 1
				rp.conn.Write(rec)
			case "overflow":
				rp.conn.Write(sealOversized(t, rp.suite, rp.session(rp.txSecret), record.MaxPlaintext+1))
			case "alert":
				rp.send(record.TypeAlert, []byte{2, byte(record.AlertDecryptError)})
			case "truncated":
				rp.conn.Write(rec[:10])
				rp.conn.(*net.TCPConn).CloseWrite()
			case "garbage":
				rp.conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			}
			k.SetReadDeadline(time.Now().Add(10 * time.Second))
			for range 2 {
				_, err = k.Read(buf)
				note("bad read", err)
				note("%+v", err)
				note("%#v", err)
			}
			_, _, err = k.ReadRecord()
			note("ReadRecord", err)
			tx, rx := k.Mode()
			st := k.ConnectionState()
			note("state", tx, rx, st.Version, st.CipherSuite, st.ServerName, st.NegotiatedProtocol)
			note("config", k.config.TX, k.config.RX)
			note("stats", fmt.Sprintf("%+v", Stats()))
			for _, secret := range [][]byte{rp.txSecret, rp.rxSecret} {
				if sess, err := record.TLS13Session(rp.suite, secret); err == nil {
					note("session", sess, sess.String(), fmt.Sprintf("%v %+v", sess, sess))
				}
			}
			note("key update", k.KeyUpdate(true))
			note("close", k.Close())
			_, err = k.Write([]byte("x"))
			note("write after close", err)
			note("key update after close", k.KeyUpdate(false))
			// Close wipes the secrets kept for KeyUpdates.
			if k.txSecret != nil || k.rxSecret != nil {
				t.Errorf("traffic secrets kept after Close: tx %d bytes, rx %d bytes", len(k.txSecret), len(k.rxSecret))
			}
			note("conn after close", fmt.Sprintf("%v %+v", k, k))
			// The peer's view: the alert it got.
			rp.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, _ := io.ReadAll(rp.conn)
			note("peer", len(rest))
			out := text.String()
			for _, form := range keyLogSecrets(t, kl.b.String(), rp.suite) {
				if strings.Contains(out, form) {
					t.Fatalf("a secret (%d bytes in this form) appears in the errors and logs:\n%s", len(form), out)
				}
			}
			t.Logf("checked %d bytes of error and log text", len(out))
		})
	}
	t.Run("handshake_failure", func(t *testing.T) {
		// A client that does not trust the server fails after the key log
		// got the handshake secrets.
		var kl keyLogBuf
		cc, ss := tcpPair(t)
		scfg := serverTLS()
		scfg.KeyLogWriter = &kl
		ccfg := clientTLS()
		ccfg.RootCAs = nil
		ccfg.MinVersion = tls.VersionTLS13
		errc := make(chan error, 1)
		go func() {
			s := Server(ss, &Config{TLS: scfg, TX: engine, RX: engine})
			errc <- s.Handshake()
			s.Close()
		}()
		c := Client(cc, &Config{TLS: ccfg, TX: engine, RX: engine})
		cerr := c.Handshake()
		serr := <-errc
		out := fmt.Sprintf("%v\n%+v\n%v\n%+v\n", cerr, cerr, serr, serr)
		if cerr == nil {
			t.Fatal("handshake with an untrusted certificate succeeded")
		}
		for _, form := range keyLogSecrets(t, kl.b.String(), tls.TLS_AES_128_GCM_SHA256) {
			if strings.Contains(out, form) {
				t.Fatalf("a secret appears in the handshake errors:\n%s", out)
			}
		}
	})
}
