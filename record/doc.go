// Package record is a user-space TLS record layer and key schedule for
// TLS 1.2 and TLS 1.3 connections protected with AES-128-GCM, AES-256-GCM or
// ChaCha20-Poly1305: the work FreeBSD's ktls(4) and Linux's TLS ULP do in the
// kernel once user space hands them the session keys.
//
// A Session is one direction's state, the counterpart of ktls(4)'s struct
// tls_enable and Linux's struct tls12_crypto_info_*; its LinuxCryptoInfo
// method encodes it for Linux. TLS13Session and
// TLS12Sessions derive Sessions from the secrets crypto/tls writes to its
// KeyLogWriter (CLIENT_TRAFFIC_SECRET_0 / SERVER_TRAFFIC_SECRET_0 for
// TLS 1.3, CLIENT_RANDOM for TLS 1.2 together with the hello randoms), and
// TLS13NextSecret follows a TLS 1.3 KeyUpdate.
//
// A Sealer protects records and an Opener checks and decrypts them, with the
// nonce construction, additional data, TLS 1.3 inner content type and
// padding of RFC 5246, RFC 5288, RFC 7905 and RFC 8446, and per-direction
// sequence numbers that refuse to wrap. Neither allocates once its buffers
// are in place. Writer and Reader stream records over a connection in large
// batches.
//
// Bad records give *Error values that wrap the errno ktls(4) names (EINVAL,
// EMSGSIZE, EBADMSG), so errors.Is works, and carry the Alert to send.
//
// Sessions, Sealers and Openers hold key material; no error, String result
// or panic of this package contains it.
package record
