package handshake

import (
	"bytes"
	"encoding/hex"
	"io"
	"sync"
)

// Key log labels (NSS key log format) that crypto/tls writes to
// tls.Config.KeyLogWriter and that the hand-off needs.
const (
	labelTLS12              = "CLIENT_RANDOM"           // TLS 1.2 master secret
	labelClientTrafficTLS13 = "CLIENT_TRAFFIC_SECRET_0" // TLS 1.3 client application traffic secret
	labelServerTrafficTLS13 = "SERVER_TRAFFIC_SECRET_0" // TLS 1.3 server application traffic secret
	labelClientHandshake    = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
	labelServerHandshake    = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
	maxKeyLogLine           = 16 + 1 + 64 + 1 + 2*64 + 1 // label, random, secret (SHA-384 at most), newline
)

// keyLog is the per-connection tls.Config.KeyLogWriter: it keeps the secrets
// the hand-off needs and passes every line on to the user's writer.
type keyLog struct {
	next io.Writer // the user's KeyLogWriter, or nil

	mu            sync.Mutex
	partial       []byte // an incomplete line
	clientRandom  []byte // from the CLIENT_RANDOM line
	master        []byte // TLS 1.2 master secret
	clientTraffic []byte // TLS 1.3 client_application_traffic_secret_0
	serverTraffic []byte // TLS 1.3 server_application_traffic_secret_0
	resumed       []byte // TLS 1.2 master secret of a resumed session (see Conn.SetResumedSession)
	// TLS 1.3 handshake traffic secrets, which tell the records of the
	// handshake from what follows it (see Conn.readRecords).
	clientHandshake, serverHandshake []byte
}

// Write parses key log lines. crypto/tls writes one line per call; partial
// lines are kept until their newline arrives. The lines also go to the
// user's KeyLogWriter, whose error (if any) is returned.
func (k *keyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	if len(k.partial) == 0 && bytes.IndexByte(p, '\n') == len(p)-1 {
		k.parseLine(p[:len(p)-1]) // one whole line, as crypto/tls writes
		k.mu.Unlock()
		if k.next != nil {
			return k.next.Write(p)
		}
		return len(p), nil
	}
	k.partial = append(k.partial, p...)
	for {
		i := bytes.IndexByte(k.partial, '\n')
		if i < 0 {
			break
		}
		k.parseLine(k.partial[:i])
		clear(k.partial[:i+1])
		k.partial = k.partial[i+1:]
	}
	if len(k.partial) > maxKeyLogLine {
		clear(k.partial)
		k.partial = nil
	}
	if len(k.partial) == 0 {
		k.partial = nil
	}
	k.mu.Unlock()
	if k.next != nil {
		return k.next.Write(p)
	}
	return len(p), nil
}

// parseLine records the secret of one line "LABEL <client random> <secret>".
// Lines it does not need or cannot parse are ignored.
func (k *keyLog) parseLine(line []byte) {
	label, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return
	}
	random, secret, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return
	}
	var dst *[]byte
	switch string(label) {
	case labelTLS12:
		dst = &k.master
	case labelClientTrafficTLS13:
		dst = &k.clientTraffic
	case labelServerTrafficTLS13:
		dst = &k.serverTraffic
	case labelClientHandshake:
		dst = &k.clientHandshake
	case labelServerHandshake:
		dst = &k.serverHandshake
	default:
		return
	}
	var r []byte
	if dst == &k.master {
		r = make([]byte, hex.DecodedLen(len(random)))
		if _, err := hex.Decode(r, random); err != nil {
			return
		}
	}
	s := make([]byte, hex.DecodedLen(len(secret)))
	if _, err := hex.Decode(s, secret); err != nil {
		clear(s)
		return
	}
	clear(*dst)
	*dst = s
	if r != nil {
		k.clientRandom = r
	}
}

// wipe zeroes and drops every secret.
func (k *keyLog) wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, b := range []*[]byte{&k.partial, &k.master, &k.clientTraffic, &k.serverTraffic, &k.resumed, &k.clientHandshake, &k.serverHandshake} {
		clear(*b)
		*b = nil
	}
}
