package record

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"strconv"
)

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

// maxHMACInput bounds the message of hmacSum: the longest is a TLS 1.2 PRF
// block's, A(i) (48 bytes), "key expansion" and two randoms (77 bytes).
const maxHMACInput = 128

// hmacSum returns HMAC(key, the concatenation of parts) (RFC 2104) with
// SHA-384 (sha384) or SHA-256 (in the first 32 bytes of the result), for a
// key no longer than the hash's block and parts of at most maxHMACInput
// bytes in all, computed on the stack: nothing is allocated, and the
// padded key is wiped.
func hmacSum(sha384 bool, key []byte, parts ...[]byte) [sha512.Size384]byte {
	blockSize, size := sha256.BlockSize, sha256.Size
	if sha384 {
		blockSize, size = sha512.BlockSize, sha512.Size384
	}
	if len(key) > blockSize {
		panic("record: HMAC key longer than the hash's block")
	}
	var buf [sha512.BlockSize + maxHMACInput]byte
	defer clear(buf[:])
	pad := buf[:blockSize]
	copy(pad, key)
	for i := range pad {
		pad[i] ^= 0x36 // ipad
	}
	m := buf[:blockSize]
	for _, p := range parts {
		if len(m)+len(p) > len(buf) {
			panic("record: HMAC input too long")
		}
		m = append(m, p...)
	}
	inner := hashSum(sha384, m)
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c // opad
	}
	outer := hashSum(sha384, append(buf[:blockSize], inner[:size]...))
	clear(inner[:])
	return outer
}

// hashSum returns SHA-384 of b (sha384) or SHA-256 of b in the first 32
// bytes.
func hashSum(sha384 bool, b []byte) [sha512.Size384]byte {
	if sha384 {
		return sha512.Sum384(b)
	}
	var out [sha512.Size384]byte
	sum := sha256.Sum256(b)
	copy(out[:], sum[:])
	return out
}

// expandLabel is HKDF-Expand-Label from RFC 8446 section 7.1 with an empty
// context, for an output no longer than the hash (every use here): the
// first block of HKDF-Expand (RFC 5869 section 2.3), HMAC(secret, info ||
// 0x01). Only the result is allocated.
func expandLabel(sha384 bool, secret []byte, label string, length int) []byte {
	const prefix = "tls13 "
	if length > sha512.Size384 || !sha384 && length > sha256.Size || len(label) > 32 {
		panic("record: HKDF-Expand-Label: unsupported lengths")
	}
	var buf [2 + 1 + len(prefix) + 32 + 1 + 1]byte
	info := append(buf[:0], byte(length>>8), byte(length), byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0, 1) // empty context; block counter 1
	sum := hmacSum(sha384, secret, info)
	out := make([]byte, length)
	copy(out, sum[:])
	clear(sum[:])
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
	return &Session{
		Version:     VersionTLS13,
		CipherSuite: suite,
		Key:         expandLabel(info.sha384, trafficSecret, "key", info.cipher.KeyLen()),
		IV:          expandLabel(info.sha384, trafficSecret, "iv", nonceLen),
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
	return expandLabel(info.sha384, trafficSecret, "traffic upd", info.hashLen()), nil
}

// prf12 is the TLS 1.2 PRF, P_hash(secret, label + seed) with SHA-384
// (sha384) or SHA-256, from RFC 5246 section 5, writing len(out) bytes.
// Only out is written to the heap.
func prf12(sha384 bool, out, secret []byte, label string, seed ...[]byte) {
	size := sha256.Size
	if sha384 {
		size = sha512.Size384
	}
	var buf [maxHMACInput - sha512.Size384]byte
	labelSeed := append(buf[:0], label...)
	for _, s := range seed {
		if len(labelSeed)+len(s) > len(buf) {
			panic("record: PRF seed too long")
		}
		labelSeed = append(labelSeed, s...)
	}
	a := hmacSum(sha384, secret, labelSeed) // A(1)
	for len(out) > 0 {
		b := hmacSum(sha384, secret, a[:size], labelSeed)
		out = out[copy(out, b[:size]):]
		clear(b[:])
		a = hmacSum(sha384, secret, a[:size])
	}
	clear(a[:])
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
	prf12(info.sha384, kb, masterSecret, "key expansion", serverRandom, clientRandom)
	client = &Session{Version: VersionTLS12, CipherSuite: suite}
	server = &Session{Version: VersionTLS12, CipherSuite: suite}
	client.Key, kb = kb[:keyLen:keyLen], kb[keyLen:]
	server.Key, kb = kb[:keyLen:keyLen], kb[keyLen:]
	client.IV, kb = kb[:ivLen:ivLen], kb[ivLen:]
	server.IV = kb[:ivLen:ivLen]
	return client, server, nil
}
