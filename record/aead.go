package record

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"math"
	"syscall"

	"golang.org/x/crypto/chacha20poly1305"
)

// protection is the state Sealer and Opener share: the AEAD, the IV and the
// sequence number of one direction, plus scratch space for the nonce and the
// additional data so that sealing and opening do not allocate.
type protection struct {
	aead     cipher.AEAD
	version  uint16
	explicit bool // TLS 1.2 AES-GCM: 8-byte explicit nonce on the wire
	iv       [nonceLen]byte
	nonce    [nonceLen]byte
	ad       [13]byte // TLS 1.2: seq_num + type + version + length
	seq      uint64
	done     bool // the record with sequence number 2^64-1 has been processed
}

func (p *protection) init(s *Session) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var err error
	switch s.Cipher() {
	case CipherAES128GCM, CipherAES256GCM:
		var block cipher.Block
		if block, err = aes.NewCipher(s.Key); err == nil {
			p.aead, err = cipher.NewGCM(block)
		}
	case CipherChaCha20Poly1305:
		p.aead, err = chacha20poly1305.New(s.Key)
	}
	if err != nil {
		return err
	}
	p.version = s.Version
	p.explicit = s.Version == VersionTLS12 && len(s.IV) == 4
	copy(p.iv[:], s.IV)
	p.nonce = p.iv
	p.seq = s.Seq
	return nil
}

// setNonce computes the AEAD nonce of the current record: the salt and the
// explicit nonce for TLS 1.2 AES-GCM (RFC 5288), else the IV XOR the
// sequence number (RFC 8446 section 5.3, RFC 7905).
func (p *protection) setNonce(explicit []byte) []byte {
	if p.explicit {
		copy(p.nonce[4:], explicit)
	} else {
		binary.BigEndian.PutUint64(p.nonce[4:], binary.BigEndian.Uint64(p.iv[4:])^p.seq)
	}
	return p.nonce[:]
}

// setAD fills the TLS 1.2 additional data: seq_num, type, version and the
// plaintext length (RFC 5246 section 6.2.3.3).
func (p *protection) setAD(typ ContentType, n int) []byte {
	binary.BigEndian.PutUint64(p.ad[:], p.seq)
	p.ad[8] = byte(typ)
	p.ad[9], p.ad[10] = 3, 3
	p.ad[11], p.ad[12] = byte(n>>8), byte(n)
	return p.ad[:]
}

// advance moves to the next sequence number, remembering when the last one
// has been used.
func (p *protection) advance() {
	if p.seq == math.MaxUint64 {
		p.done = true
		return
	}
	p.seq++
}

// Sealer protects the records of one direction: it keeps its own copy of
// the session's keys and the sequence number, as the kernel does after
// TLS_TX or TCP_TXTLS_ENABLE. A Sealer is not safe for concurrent use.
type Sealer struct {
	p protection
}

// NewSealer returns a Sealer for the session, starting at s.Seq. It does not
// keep s or its slices.
func NewSealer(s *Session) (*Sealer, error) {
	sl := new(Sealer)
	if err := sl.p.init(s); err != nil {
		return nil, err
	}
	return sl, nil
}

// Seq returns the sequence number of the next record Seal will produce.
func (s *Sealer) Seq() uint64 { return s.p.seq }

// Overhead returns how many bytes a record adds to its payload: the header,
// the TLS 1.2 AES-GCM explicit nonce, the tag and the TLS 1.3 inner content
// type.
func (s *Sealer) Overhead() int { return s.p.overhead() }

// PayloadOffset returns where a record's payload starts: after the header
// and, for TLS 1.2 AES-GCM, the explicit nonce. Seal seals in place when the
// payload already sits at that offset of the new record.
func (s *Sealer) PayloadOffset() int {
	if s.p.explicit {
		return HeaderLen + explicitNonceLen
	}
	return HeaderLen
}

func (p *protection) overhead() int {
	switch {
	case p.version == VersionTLS13:
		return HeaderLen + 1 + tagLen
	case p.explicit:
		return HeaderLen + explicitNonceLen + tagLen
	}
	return HeaderLen + tagLen
}

// Seal appends one whole protected record of type typ carrying payload,
// header included, to dst and returns the extended slice. len(payload) must
// not exceed MaxPlaintext. TLS 1.3 records get the inner content type and no
// padding. Seal does not allocate when dst has room for
// len(payload)+Overhead() more bytes.
//
// payload must not overlap the spare capacity of dst, except that it may sit
// exactly where the record carries it, at
// dst[len(dst)+PayloadOffset():][:len(payload)]: then Seal encrypts in place
// and does not copy the payload, which a TLS 1.3 record otherwise needs.
//
// Seal fails with an *Error wrapping EMSGSIZE for an oversized payload,
// EINVAL for a content type the version cannot protect, and ErrSeqOverflow
// once the record with sequence number 2^64-1 has been sealed.
func (s *Sealer) Seal(dst []byte, typ ContentType, payload []byte) ([]byte, error) {
	p := &s.p
	switch {
	case p.done:
		return dst, errorf("seal", AlertInternalError, ErrSeqOverflow)
	case len(payload) > MaxPlaintext:
		return dst, errorf("seal", AlertInternalError, syscall.EMSGSIZE)
	case !typ.valid() || p.version == VersionTLS13 && typ == TypeChangeCipherSpec:
		return dst, errorf("seal", AlertInternalError, syscall.EINVAL)
	}
	n := len(payload)
	ret, out := sliceForAppend(dst, n+p.overhead())
	bodyLen := len(out) - HeaderLen
	out[0] = byte(typ)
	out[1], out[2] = 3, 3
	out[3], out[4] = byte(bodyLen>>8), byte(bodyLen)
	switch {
	case p.version == VersionTLS13:
		out[0] = byte(TypeApplicationData)
		if n > 0 && &payload[0] != &out[HeaderLen] {
			copy(out[HeaderLen:], payload)
		}
		out[HeaderLen+n] = byte(typ)
		p.aead.Seal(out[HeaderLen:HeaderLen], p.setNonce(nil), out[HeaderLen:HeaderLen+n+1], out[:HeaderLen])
	case p.explicit:
		explicit := out[HeaderLen : HeaderLen+explicitNonceLen]
		binary.BigEndian.PutUint64(explicit, p.seq)
		body := out[HeaderLen+explicitNonceLen:]
		p.aead.Seal(body[:0], p.setNonce(explicit), payload, p.setAD(typ, n))
	default:
		p.aead.Seal(out[HeaderLen:HeaderLen], p.setNonce(nil), payload, p.setAD(typ, n))
	}
	p.advance()
	return ret, nil
}

// sliceForAppend extends in by n bytes, reallocating if needed, and returns
// the whole slice and the new tail.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}

// Opener authenticates and decrypts the records of one direction, as the
// kernel does after TLS_RX or TCP_RXTLS_ENABLE. It keeps its own copy of the
// session's keys. An Opener is not safe for concurrent use.
type Opener struct {
	p protection
}

// NewOpener returns an Opener for the session, expecting sequence number
// s.Seq next. It does not keep s or its slices.
func NewOpener(s *Session) (*Opener, error) {
	o := new(Opener)
	if err := o.p.init(s); err != nil {
		return nil, err
	}
	return o, nil
}

// Seq returns the sequence number the next record must carry.
func (o *Opener) Seq() uint64 { return o.p.seq }

// Version returns the protocol version of the Opener's session, the value to
// pass to ParseHeader.
func (o *Opener) Version() uint16 { return o.p.version }

// Open checks, authenticates and decrypts one whole record rec, header
// included, in place, and returns its content type and plaintext, which
// aliases rec. For TLS 1.3 it removes the padding and returns the inner
// content type. The sequence number advances only when Open succeeds; a
// failed record leaves rec's contents unspecified.
//
// Errors are *Error values (see Error for the classes): header errors from
// ParseHeader, EMSGSIZE when len(rec) disagrees with the header or the body
// is too long for the AEAD, EBADMSG with bad_record_mac when the body is too
// short for the AEAD or authentication fails, EBADMSG with
// unexpected_message for a TLS 1.3 record without a valid inner content type
// (all zeros or empty), and ErrSeqOverflow after the record with sequence
// number 2^64-1.
func (o *Opener) Open(rec []byte) (ContentType, []byte, error) {
	return o.open(nil, rec)
}

// open is Open, except that the record is decrypted into dst, which must not
// overlap rec, when dst has room for its whole decrypted body (for TLS 1.3
// the payload, the inner content type and any padding), and in place
// otherwise.
func (o *Opener) open(dst, rec []byte) (ContentType, []byte, error) {
	p := &o.p
	if p.done {
		return 0, nil, errorf("open", AlertInternalError, ErrSeqOverflow)
	}
	if len(rec) < HeaderLen {
		return 0, nil, errorf("open", AlertDecodeError, syscall.EMSGSIZE)
	}
	h, err := ParseHeader(rec, p.version)
	if err != nil {
		return 0, nil, err
	}
	if HeaderLen+h.Length != len(rec) {
		return 0, nil, errorf("open", AlertDecodeError, syscall.EMSGSIZE)
	}
	body := rec[HeaderLen:]
	// Largest body: the overhead (without the header) plus MaxPlaintext
	// bytes of payload. Smallest: the explicit nonce and the tag; a shorter
	// one cannot authenticate, and crypto/tls and Linux answer it with
	// bad_record_mac and EBADMSG.
	minBody := tagLen
	if p.explicit {
		minBody += explicitNonceLen
	}
	if len(body) < minBody {
		return 0, nil, errorf("open", AlertBadRecordMAC, syscall.EBADMSG)
	} else if len(body) > p.overhead()-HeaderLen+MaxPlaintext {
		return 0, nil, errorf("open", AlertRecordOverflow, syscall.EMSGSIZE)
	}
	var (
		typ = h.Type
		pt  []byte
	)
	// out is where the plaintext of the ciphertext ct goes.
	out := func(ct []byte) []byte {
		if len(ct)-tagLen <= len(dst) {
			return dst[:0]
		}
		return ct[:0]
	}
	switch {
	case p.version == VersionTLS13:
		pt, err = p.aead.Open(out(body), p.setNonce(nil), body, rec[:HeaderLen])
	case p.explicit:
		ct := body[explicitNonceLen:]
		pt, err = p.aead.Open(out(ct), p.setNonce(body[:explicitNonceLen]), ct, p.setAD(typ, len(ct)-tagLen))
	default:
		pt, err = p.aead.Open(out(body), p.setNonce(nil), body, p.setAD(typ, len(body)-tagLen))
	}
	if err != nil {
		return 0, nil, errorf("open", AlertBadRecordMAC, syscall.EBADMSG)
	}
	if p.version == VersionTLS13 {
		i := len(pt) - 1
		for i >= 0 && pt[i] == 0 {
			i--
		}
		if i < 0 {
			return 0, nil, errorf("open", AlertUnexpectedMessage, syscall.EBADMSG)
		}
		typ = ContentType(pt[i])
		if !typ.valid() || typ == TypeChangeCipherSpec {
			return 0, nil, errorf("open", AlertUnexpectedMessage, syscall.EBADMSG)
		}
		pt = pt[:i]
	}
	p.advance()
	return typ, pt, nil
}
