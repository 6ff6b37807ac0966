package record

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"hash"
	"strconv"
)

// hashFunc returns the PRF / HKDF hash of a suite.
func (info suiteInfo) hashFunc() func() hash.Hash {
	if info.sha384 {
		return sha512.New384
	}
	return sha256.New
}

// hashLen returns the output length of the suite's hash.
func (info suiteInfo) hashLen() int {
	if info.sha384 {
		return sha512.Size384
	}
	return sha256.Size
}

// suiteFor looks up a suite and checks that it belongs to version.
func suiteFor(suite, version uint16) (suiteInfo, error) {
	info, ok := suiteOf(suite)
	if !ok {
		return info, sessionError("unsupported cipher suite " + tls.CipherSuiteName(suite))
	}
	if info.version != version {
		return info, sessionError("cipher suite " + tls.CipherSuiteName(suite) + " does not belong to " + versionName(version))
	}
	return info, nil
}

// expandLabel is HKDF-Expand-Label from RFC 8446 section 7.1 with an empty
// context: HKDF-Expand (RFC 5869 section 2.3) with mac, an HMAC keyed with
// the secret, which it resets before use (one HMAC serves every label of a
// secret).
func expandLabel(mac hash.Hash, label string, length int) []byte {
	const prefix = "tls13 "
	info := make([]byte, 0, 2+1+len(prefix)+len(label)+1+1)
	info = append(info, byte(length>>8), byte(length), byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0) // empty context
	n := len(info)
	out := make([]byte, 0, length)
	var t []byte // T(i-1)
	for i := 1; len(out) < length; i++ {
		if i > 255 {
			// Only possible for length > 255*hash size, which never happens here.
			panic("record: HKDF-Expand-Label: output too long")
		}
		mac.Reset()
		mac.Write(t)
		mac.Write(append(info[:n], byte(i)))
		t = mac.Sum(t[:0])
		out = append(out, t[:min(len(t), length-len(out))]...)
	}
	clear(t)
	return out
}

// checkSecret checks the length of a TLS 1.3 traffic secret.
func checkSecret(info suiteInfo, secret []byte) error {
	if len(secret) != info.hashLen() {
		return sessionError("traffic secret length " + strconv.Itoa(len(secret)) + ", want " + strconv.Itoa(info.hashLen()))
	}
	return nil
}

// TLS13Session derives the write key and IV of a TLS 1.3 direction from its
// traffic secret (RFC 8446 section 7.3: HKDF-Expand-Label(secret, "key", "",
// key_length) and (secret, "iv", "", 12)), such as CLIENT_TRAFFIC_SECRET_0 or
// SERVER_TRAFFIC_SECRET_0 from crypto/tls's key log. Seq is 0.
func TLS13Session(suite uint16, trafficSecret []byte) (*Session, error) {
	info, err := suiteFor(suite, VersionTLS13)
	if err != nil {
		return nil, err
	}
	if err := checkSecret(info, trafficSecret); err != nil {
		return nil, err
	}
	mac := hmac.New(info.hashFunc(), trafficSecret)
	return &Session{
		Version:     VersionTLS13,
		CipherSuite: suite,
		Key:         expandLabel(mac, "key", info.cipher.KeyLen()),
		IV:          expandLabel(mac, "iv", nonceLen),
	}, nil
}

// TLS13NextSecret derives application_traffic_secret_N+1 from
// application_traffic_secret_N (RFC 8446 section 7.2:
// HKDF-Expand-Label(secret, "traffic upd", "", Hash.length)), for following
// a KeyUpdate. Pass the result to TLS13Session for the new keys.
func TLS13NextSecret(suite uint16, trafficSecret []byte) ([]byte, error) {
	info, err := suiteFor(suite, VersionTLS13)
	if err != nil {
		return nil, err
	}
	if err := checkSecret(info, trafficSecret); err != nil {
		return nil, err
	}
	return expandLabel(hmac.New(info.hashFunc(), trafficSecret), "traffic upd", info.hashLen()), nil
}

// prf12 is the TLS 1.2 PRF, P_hash(secret, label + seed), from RFC 5246
// section 5, writing len(out) bytes.
func prf12(h func() hash.Hash, out, secret []byte, label string, seed ...[]byte) {
	mac := hmac.New(h, secret)
	labelSeed := []byte(label)
	for _, s := range seed {
		labelSeed = append(labelSeed, s...)
	}
	mac.Write(labelSeed)
	a := mac.Sum(nil) // A(1)
	for len(out) > 0 {
		mac.Reset()
		mac.Write(a)
		mac.Write(labelSeed)
		n := copy(out, mac.Sum(nil))
		out = out[n:]
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
}

// TLS12Sessions derives both directions of a TLS 1.2 AEAD connection from
// the master secret (the CLIENT_RANDOM line of crypto/tls's key log) and the
// hello randoms: key_block = PRF(master_secret, "key expansion",
// server_random + client_random), split into client_write_key,
// server_write_key, client_write_IV and server_write_IV (RFC 5246 section
// 6.3; the IVs are 4-byte salts for AES-GCM per RFC 5288 and 12 bytes for
// ChaCha20-Poly1305 per RFC 7905). Both Sessions start at Seq 0; note that
// each side's Finished is record 0 under these keys.
func TLS12Sessions(suite uint16, masterSecret, clientRandom, serverRandom []byte) (client, server *Session, err error) {
	info, err := suiteFor(suite, VersionTLS12)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case len(masterSecret) != 48:
		return nil, nil, sessionError("master secret length " + strconv.Itoa(len(masterSecret)) + ", want 48")
	case len(clientRandom) != 32 || len(serverRandom) != 32:
		return nil, nil, sessionError("hello random length is not 32")
	}
	keyLen, ivLen := info.cipher.KeyLen(), ivLen(VersionTLS12, info.cipher)
	kb := make([]byte, 2*keyLen+2*ivLen)
	prf12(info.hashFunc(), kb, masterSecret, "key expansion", serverRandom, clientRandom)
	client = &Session{Version: VersionTLS12, CipherSuite: suite}
	server = &Session{Version: VersionTLS12, CipherSuite: suite}
	client.Key, kb = kb[:keyLen:keyLen], kb[keyLen:]
	server.Key, kb = kb[:keyLen:keyLen], kb[keyLen:]
	client.IV, kb = kb[:ivLen:ivLen], kb[ivLen:]
	server.IV = kb[:ivLen:ivLen]
	return client, server, nil
}
