#!/usr/bin/env bash
# BoringSSL's test runner (BoGo) against ktls (see internal/bogo/README.md):
#
#   scripts/bogo.sh host           the whole suite, user-space engine, on the host
#   scripts/bogo.sh lab [KERNEL]   the record-layer tests, kernel engine, in the lab on every
#                                  kernel (or those matching KERNEL, as ktlslab -kernel)
#   scripts/bogo.sh off            the whole suite with crypto/tls carrying every record
#   scripts/bogo.sh go             crypto/tls's own shim (Go's bogo_shim_test.go) for comparison
#   scripts/bogo.sh corrupt        the host run with KTLS_BOGO_CORRUPT=1: must fail
#
# Each run ends with "bogo ENGINE: N passed, M failed, K skipped" and exits non-zero when a test
# failed. The runner comes from Debian's source package android-platform-external-boringssl
# (pinned below, checksum checked), fetched with a private apt configuration that reuses the
# host's Debian mirror; its ssl/test/runner is built with go test -c into the cache
# ($KTLS_BOGO_CACHE, else ~/.cache/ktls-bogo). The Go module github.com/google/boringssl at
# Go's pin is not served by the module proxy reachable here.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

pkg=android-platform-external-boringssl
ver=13.0.0+r24-2 # BoringSSL 1530333b25589ee4d4d52b10e78ee55dd82f6dcd
stamp="$ver ca" # what the cache holds: bump it when fetch changes
orig=${pkg}_13.0.0+r24.orig.tar.xz
sha=583b7aeee1fca68b8244d086cea6fca23bd19d517bd63f0b9de714e048f92a7d
cache=${KTLS_BOGO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-bogo}

# The tests the lab runs on each kernel: those whose records go through the kernel after the
# hand-off. Application data both ways with every AES-GCM and ChaCha20-Poly1305 suite in TLS
# 1.2 and 1.3 (-client, -server, -LargeRecord, -BadRecord), KeyUpdate both ways, alerts sent
# and received, close_notify both ways, empty and padded records, largest records, keying
# material export, tls-unique and renegotiation refusal. Handshake tests are left to the host
# run: the handshake is crypto/tls's in both engines. SendEmptyRecords (33 empty records must
# fail) is left out: Linux passes over empty application data records itself, without a limit
# (README, "records that carry nothing"); the host run checks ktls's own limit.
labtests='TLS-TLS12-*GCM*;TLS-TLS12-*CHACHA20*;TLS-TLS13-*GCM*;TLS-TLS13-*CHACHA20*;KeyUpdate-*;TooManyKeyUpdates;Shutdown-*;Unclean-Shutdown*;ShimSendAlert-*;Send*Alert*;SendPostHandshakeChangeCipherSpec-TLS13;TLS13-EmptyRecords;TLS13-RecordPadding;LargePlaintext*;LargeCiphertext;SendInvalidRecordType;DoubleAlert;FragmentAlert;Alert;ExportKeyingMaterial-*TLS1[23];TLSUnique-*;Renegotiate-*'

die() { echo "bogo: $*" >&2; exit 1; }

# fetch unpacks the runner into $cache/src and builds $cache/runner.test and the
# certificates $cache/res, once.
fetch() {
	[ -x "$cache/runner.test" ] && [ -f "$cache/res/.ok" ] && [ "$(cat "$cache/version" 2>/dev/null)" = "$stamp" ] && return 0
	rm -rf "$cache" && mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/apt/none" "$cache/dl" || die "mkdir $cache"
	# The host's Debian mirror (deb822 URIs: or one-line deb entries), security archive excluded.
	mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && !/security/ {print $2; exit}')
	[ -n "$mirror" ] || mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" && !/security/ {for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; exit}}')
	[ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list*"
	echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" >"$cache/apt/sources.list"
	apt=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o "Dir::Etc::SourceParts=$cache/apt/none"
		-o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache" -o "APT::Sandbox::User=root")
	apt-get -qq "${apt[@]}" update || die "apt-get update (deb-src)"
	(cd "$cache/dl" && apt-get -qq "${apt[@]}" source --download-only "$pkg=$ver") || die "apt-get source $pkg=$ver"
	echo "$sha  $cache/dl/$orig" | sha256sum -c --quiet || die "$orig: checksum mismatch"
	mkdir -p "$cache/src" && tar -xJf "$cache/dl/$orig" -C "$cache/src" --strip-components=2 --wildcards \
		'*/src/go.mod' '*/src/go.sum' '*/src/ssl/test/runner/*' '*/src/util/testresult/*' || die "tar $orig"
	rm -rf "$cache/dl" "$cache/apt"
	(cd "$cache/src" && CGO_ENABLED=0 go test -c -o "$cache/runner.test" ./ssl/test/runner) || die "building the runner"
	# The runner's certificates expired long ago (2014-2019, the RSA chain in 2026) and
	# crypto/tls's clients drop cached sessions whose certificate expired, so resumption tests
	# would fail. Issue each anew for its own key, for ten years, from a CA of our own (res/ca.pem,
	# which crypto/tls's own shim is told to trust), for the name "test" the shims expect;
	# rsa_chain_cert.pem keeps its second certificate.
	mkdir -p "$cache/res" && cp "$cache/src/ssl/test/runner/"*.pem "$cache/res/" || die "certificates"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$cache/res/ca.key" \
		-out "$cache/res/ca.pem" -subj /CN=ktls-bogo-ca -days 3650 2>/dev/null || die "CA"
	printf 'subjectAltName=DNS:test\n' >"$cache/res/ext"
	serial=1
	for c in "$cache/res/"*cert.pem; do
		k=${c%cert.pem}key.pem
		[ "$(basename "$c")" = cert.pem ] && k=$cache/res/key.pem
		openssl req -new -key "$k" -subj /CN=test 2>/dev/null |
			openssl x509 -req -CA "$cache/res/ca.pem" -CAkey "$cache/res/ca.key" -set_serial $((serial++)) \
				-days 3650 -extfile "$cache/res/ext" -out "$c.new" 2>/dev/null || die "issuing $c"
		awk '/BEGIN CERTIFICATE/ {n++} n >= 2' "$c" >>"$c.new" && mv "$c.new" "$c"
	done
	rm -f "$cache/res/ca.key" "$cache/res/ext"
	touch "$cache/res/.ok" && echo "$stamp" >"$cache/version"
}

# shim builds the shim statically into $cache/shim.
shim() {
	CGO_ENABLED=0 go build -o "$cache/shim" ./internal/bogo/shim || die "building the shim"
}

run() { # run ENGINE [driver flags]: the driver on the host
	local engine=$1
	shift
	go run ./internal/bogo/run -runner "$cache/runner.test" -shim "$cache/shim" -resources "$cache/res" \
		-config "$root/internal/bogo/config.json" -engine "$engine" "$@"
}

command -v openssl >/dev/null || die "openssl is missing"
fetch
case "${1:-host}" in
host | off)
	shim && run "$([ "${1:-host}" = host ] && echo user || echo off)"
	;;
corrupt)
	shim && KTLS_BOGO_CORRUPT=1 run user
	;;
lab)
	shim
	rc=0
	releases=$(go run ./internal/cmd/ktlslab kernels ${2:+-kernel "$2"} | awk '{print $1}')
	[ -n "$releases" ] || die "no kernels"
	for r in $releases; do
		go run ./internal/cmd/ktlslab run -kernel "$r" -timeout 15m \
			-file "$cache/runner.test:/bogo/runner.test" -file "$cache/shim:/bogo/shim" \
			-file "$cache/res:/bogo/res" -file "$root/internal/bogo/config.json:/bogo/config.json" \
			-- ./internal/bogo/run -runner /bogo/runner.test -shim /bogo/shim -resources /bogo/res \
			-config /bogo/config.json -engine kernel -test "$labtests" || rc=1
	done
	exit $rc
	;;
go)
	# crypto/tls's own shim: its test binary in -bogo-mode, behind a relay that drops the 8-byte
	# shim ID it sends first (this runner revision predates shim IDs) and adds -trust-cert.
	go test -c -o "$cache/crypto-tls.test" crypto/tls || die "go test -c crypto/tls"
	go build -o "$cache/goshim" ./internal/bogo/goshim || die "building goshim"
	KTLS_BOGO_TRUST=$cache/res/ca.pem go run ./internal/bogo/run -runner "$cache/runner.test" -shim "$cache/goshim" -resources "$cache/res" \
		-config "$(go env GOROOT)/src/crypto/tls/bogo_config.json" -only-disabled -engine go
	;;
*)
	die "usage: scripts/bogo.sh [host|lab [KERNEL]|off|go|corrupt]"
	;;
esac
