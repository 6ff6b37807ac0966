package ktls

import (
	"expvar"
	"os"
	"sync/atomic"
)

// Package-level switches, the counterparts of FreeBSD's kern.ipc.tls.enable
// and kern.ipc.tls.cbc_enable. They are read at each hand-off, so changing
// them affects new connections only.
var (
	kernelEnabled atomic.Bool
	cbcEnabled    atomic.Bool
)

func init() {
	kernelEnabled.Store(envBool("KTLS_ENABLE", true))
	cbcEnabled.Store(envBool("KTLS_CBC_ENABLE", false))
	expvar.Publish("ktls", expvar.Func(func() any { return Stats() }))
}

// envBool reads a boolean switch from the environment: "0", "false", "no"
// or "off" is false, "1", "true", "yes" or "on" is true, anything else (or
// nothing) is def.
func envBool(name string, def bool) bool {
	switch os.Getenv(name) {
	case "0", "false", "no", "off":
		return false
	case "1", "true", "yes", "on":
		return true
	}
	return def
}

// SetKernelEnabled turns the use of kernel TLS by new connections on or off,
// like FreeBSD's sysctl kern.ipc.tls.enable. It starts on, or as the
// environment variable KTLS_ENABLE says ("0" or "1"). While it is off, the
// policy OffloadAuto puts directions in the user-space record layer
// (counted as a fallback with reason "disabled") and OffloadKernel fails
// the handshake. Connections already handed off are not affected.
func SetKernelEnabled(on bool) { kernelEnabled.Store(on) }

// KernelEnabled reports the switch SetKernelEnabled sets.
func KernelEnabled() bool { return kernelEnabled.Load() }

// SetCBCEnabled allows or forbids offloading connections that negotiated
// a CBC (MAC-then-encrypt) cipher suite, like FreeBSD's sysctl
// kern.ipc.tls.cbc_enable. It starts off, or as the environment variable
// KTLS_CBC_ENABLE says. Neither the Linux kernel nor this package's record
// layer carries CBC suites, so today such connections stay on crypto/tls
// either way; the switch decides the fallback reason counted ("cbc" while
// off, "cipher" while on).
func SetCBCEnabled(on bool) { cbcEnabled.Store(on) }

// CBCEnabled reports the switch SetCBCEnabled sets.
func CBCEnabled() bool { return cbcEnabled.Load() }

// ModeCounts counts connections by the Mode of one direction.
type ModeCounts struct {
	None         uint64 `json:"none"`         // on crypto/tls
	User         uint64 `json:"user"`         // user-space record layer
	Kernel       uint64 `json:"kernel_sw"`    // kernel, software crypto
	KernelDevice uint64 `json:"kernel_ifnet"` // kernel, NIC crypto
	KernelTOE    uint64 `json:"kernel_toe"`   // NIC / TOE records
}

// Fallbacks counts hand-offs where a direction did not go where its policy
// would have put it, by reason.
type Fallbacks struct {
	// Off: the policy OffloadOff kept the connection on crypto/tls.
	Off uint64 `json:"off"`
	// Disabled: SetKernelEnabled(false) kept a direction out of the kernel.
	Disabled uint64 `json:"disabled"`
	// Cipher: the suite is not carried by any engine (kept on crypto/tls).
	Cipher uint64 `json:"cipher"`
	// CBC: a CBC suite while SetCBCEnabled is off (kept on crypto/tls).
	CBC uint64 `json:"cbc"`
	// Secrets: the sessions could not be derived from the key log (kept on
	// crypto/tls).
	Secrets uint64 `json:"secrets"`
	// Unsupported: the kernel has no TLS, or refused to attach or take a
	// direction's session (the direction went to user space).
	Unsupported uint64 `json:"unsupported"`
	// Rekey: a TLS 1.3 direction under OffloadAuto stayed in user space
	// because the kernel cannot follow a KeyUpdate (Linux before 6.14).
	Rekey uint64 `json:"rekey"`
}

// BadRecords counts received records refused as bad, by class (the errno
// the record layer or the kernel reports).
type BadRecords struct {
	// MAC: authentication failed, or the record is too short to
	// authenticate (EBADMSG, alert bad_record_mac); Linux's
	// TlsDecryptError counts the former.
	MAC uint64 `json:"bad_mac"`
	// Overflow: a record too long (EMSGSIZE, alert record_overflow).
	Overflow uint64 `json:"overflow"`
	// Invalid: a bad header, type or version (EINVAL, alert
	// unexpected_message or protocol_version).
	Invalid uint64 `json:"invalid"`
	// Truncated: the stream ended inside a record. The end of the stream
	// between records without close_notify, which many clients do after
	// their last response, is counted apart
	// (Statistics.EOFWithoutCloseNotify).
	Truncated uint64 `json:"truncated"`
}

// ControlRecords counts records other than application data received
// after the hand-off, by what they carried.
type ControlRecords struct {
	CloseNotify    uint64 `json:"close_notify"`    // alert close_notify
	Alerts         uint64 `json:"alerts"`          // other alerts
	TicketsStored  uint64 `json:"tickets_stored"`  // NewSessionTicket stored in the client's cache
	TicketsDropped uint64 `json:"tickets_dropped"` // NewSessionTicket without a cache (or on a server)
	KeyUpdates     uint64 `json:"key_updates"`     // KeyUpdate messages
	Unexpected     uint64 `json:"unexpected"`      // refused with unexpected_message
	// TooManyIgnored: connections ended (unexpected_message) after more
	// than 16 records in a row that carried nothing (see Conn.Read).
	TooManyIgnored uint64 `json:"too_many_ignored"`
}

// Statistics is a snapshot of the package's counters, modelled on FreeBSD's
// kern.ipc.tls.* sysctls and Linux's /proc/net/tls_stat. Current* are
// gauges (a connection leaves them when it is closed); the rest only grow.
// Stats returns it; it is also published with expvar under the name "ktls",
// and package ktlsprom exports it to Prometheus.
type Statistics struct {
	// KernelEnabled and CBCEnabled are the switches (kern.ipc.tls.enable,
	// kern.ipc.tls.cbc_enable).
	KernelEnabled bool `json:"enable"`
	CBCEnabled    bool `json:"cbc_enable"`

	// Handshakes counts handshakes handed off (successful hand-offs,
	// whatever the modes); HandshakeErrors counts failed handshakes or
	// hand-offs.
	Handshakes      uint64 `json:"handshakes"`
	HandshakeErrors uint64 `json:"handshake_errors"`

	// CurrentTX and CurrentRX count open connections by each direction's
	// mode (TlsCurrTxSw, TlsCurrRxSw, TlsCurrTxDevice...); TotalTX and
	// TotalRX count all connections handed off (TlsTxSw, TlsRxSw...).
	CurrentTX ModeCounts `json:"current_tx"`
	CurrentRX ModeCounts `json:"current_rx"`
	TotalTX   ModeCounts `json:"total_tx"`
	TotalRX   ModeCounts `json:"total_rx"`

	// RecordsTX, RecordsRX, BytesTX and BytesRX count the records and
	// plaintext bytes this package moved after the hand-off (not those of
	// connections left on crypto/tls). Records sent by the kernel from a
	// plain write, sendfile or splice are counted as the full-size records
	// the kernel makes of them.
	RecordsTX uint64 `json:"records_tx"`
	RecordsRX uint64 `json:"records_rx"`
	BytesTX   uint64 `json:"bytes_tx"`
	BytesRX   uint64 `json:"bytes_rx"`

	Fallbacks  Fallbacks  `json:"fallbacks"`
	BadRecords BadRecords `json:"bad_records"`

	// RekeysTX and RekeysRX count TLS 1.3 key updates of each direction
	// (Linux's TlsTxRekeyOk / TlsRxRekeyOk); RekeyErrors counts KeyUpdates
	// that could not be followed (TlsTxRekeyError / TlsRxRekeyError).
	RekeysTX    uint64 `json:"rekeys_tx"`
	RekeysRX    uint64 `json:"rekeys_rx"`
	RekeyErrors uint64 `json:"rekey_errors"`
	// KeyLimitExceeded counts connections whose AES-GCM sending key
	// protected more than 2^24 records without a KeyUpdate (RFC 8446
	// section 5.5 allows 2^24.5): TLS 1.2, which has no KeyUpdate, and
	// TLS 1.3 in a kernel that cannot re-key (Linux before 6.14, with
	// Config.KernelWithoutRekey). The connection goes on.
	KeyLimitExceeded uint64 `json:"key_limit_exceeded"`

	// EOFWithoutCloseNotify counts connections whose peer ended the
	// stream between records without close_notify (Read returns
	// ErrTruncated). HTTP clients often do so after their last response.
	EOFWithoutCloseNotify uint64 `json:"eof_without_close_notify"`

	// KernelOptionsRefused counts kernel options asked for by
	// Config.ZerocopySendfile or Config.ExpectNoPad that the kernel
	// refused (ENOPROTOOPT: Linux before 5.19 or 6.0, FreeBSD); the
	// connection went on without them.
	KernelOptionsRefused uint64 `json:"kernel_options_refused"`

	Control ControlRecords `json:"control"`
}

// counters are the live values behind Statistics.
var counters struct {
	handshakes, handshakeErrors        atomic.Uint64
	current, total                     [2][5]atomic.Uint64 // [direction][mode]
	recordsTX, recordsRX               atomic.Uint64
	bytesTX, bytesRX                   atomic.Uint64
	fbOff, fbDisabled, fbCipher, fbCBC atomic.Uint64
	fbSecrets, fbUnsupported, fbRekey  atomic.Uint64
	badMAC, badOverflow, badInvalid    atomic.Uint64
	badTruncated, eofNoCloseNotify     atomic.Uint64
	keyLimitExceeded, tooManyIgnored   atomic.Uint64
	rekeysTX, rekeysRX, rekeyErrors    atomic.Uint64
	closeNotify, alerts                atomic.Uint64
	ticketsStored, ticketsDropped      atomic.Uint64
	keyUpdates, unexpected             atomic.Uint64
	kernelOptionsRefused               atomic.Uint64
}

// Stats returns a snapshot of the package's counters.
func Stats() Statistics {
	c := &counters
	modes := func(a *[5]atomic.Uint64) ModeCounts {
		return ModeCounts{a[ModeNone].Load(), a[ModeUser].Load(), a[ModeKernel].Load(), a[ModeKernelDevice].Load(), a[ModeKernelTOE].Load()}
	}
	return Statistics{
		KernelEnabled:   KernelEnabled(),
		CBCEnabled:      CBCEnabled(),
		Handshakes:      c.handshakes.Load(),
		HandshakeErrors: c.handshakeErrors.Load(),
		CurrentTX:       modes(&c.current[0]),
		CurrentRX:       modes(&c.current[1]),
		TotalTX:         modes(&c.total[0]),
		TotalRX:         modes(&c.total[1]),
		RecordsTX:       c.recordsTX.Load(),
		RecordsRX:       c.recordsRX.Load(),
		BytesTX:         c.bytesTX.Load(),
		BytesRX:         c.bytesRX.Load(),
		Fallbacks: Fallbacks{
			Off: c.fbOff.Load(), Disabled: c.fbDisabled.Load(), Cipher: c.fbCipher.Load(), CBC: c.fbCBC.Load(),
			Secrets: c.fbSecrets.Load(), Unsupported: c.fbUnsupported.Load(), Rekey: c.fbRekey.Load(),
		},
		BadRecords: BadRecords{
			MAC: c.badMAC.Load(), Overflow: c.badOverflow.Load(), Invalid: c.badInvalid.Load(), Truncated: c.badTruncated.Load(),
		},
		RekeysTX:              c.rekeysTX.Load(),
		RekeysRX:              c.rekeysRX.Load(),
		RekeyErrors:           c.rekeyErrors.Load(),
		KeyLimitExceeded:      c.keyLimitExceeded.Load(),
		EOFWithoutCloseNotify: c.eofNoCloseNotify.Load(),
		KernelOptionsRefused:  c.kernelOptionsRefused.Load(),
		Control: ControlRecords{
			CloseNotify: c.closeNotify.Load(), Alerts: c.alerts.Load(),
			TicketsStored: c.ticketsStored.Load(), TicketsDropped: c.ticketsDropped.Load(),
			KeyUpdates: c.keyUpdates.Load(), Unexpected: c.unexpected.Load(),
			TooManyIgnored: c.tooManyIgnored.Load(),
		},
	}
}

// modeIndex clamps m to the counters' range.
func modeIndex(m Mode) int {
	if m < ModeNone || m > ModeKernelTOE {
		return int(ModeNone)
	}
	return int(m)
}

// countOpen counts a connection handed off with the given modes.
func countOpen(tx, rx Mode) {
	counters.handshakes.Add(1)
	counters.current[0][modeIndex(tx)].Add(1)
	counters.current[1][modeIndex(rx)].Add(1)
	counters.total[0][modeIndex(tx)].Add(1)
	counters.total[1][modeIndex(rx)].Add(1)
}

// countClose removes a closed connection from the gauges.
func countClose(tx, rx Mode) {
	counters.current[0][modeIndex(tx)].Add(^uint64(0))
	counters.current[1][modeIndex(rx)].Add(^uint64(0))
}

// recordsOf is the number of full-size records n plaintext bytes make.
func recordsOf(n int64) uint64 {
	return uint64((n + 16383) / 16384)
}
