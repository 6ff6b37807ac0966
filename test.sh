#!/usr/bin/env bash
# The whole test suite of ktls, from a fresh Debian machine (as root):
#
#   ./test.sh            host checks and tests, then the kernel lab on every kernel
#   ./test.sh -host      host only (no qemu)
#
# It installs what it needs when missing (qemu-system-x86, kmod; staticcheck via the
# Go module proxy), checks formatting, vet, staticcheck and the FreeBSD/macOS builds,
# runs `go test -race` and BoringSSL's test runner (scripts/bogo.sh) on the host, then
# `ktlslab test`, the end-to-end checks and the runner's record-layer tests on the 5.10, 6.1,
# 6.12 and 7.x kernels. Tests that need kernel TLS are named TestKernel*; on a host without kTLS
# they are left to the lab explicitly (-skip), and in the lab a skip is a failure.
set -uo pipefail
cd "$(dirname "$0")"

lab=1
[ "${1:-}" = "-host" ] && lab=0

export GOFLAGS=${GOFLAGS:-}
start=$(date +%s)
step() { printf '\n==> %s (%ds)\n' "$*" $(($(date +%s) - start)); }
fail=0
failed() { echo "FAILED: $*"; fail=1; }

step "tools"
need=()
if [ "$lab" = 1 ]; then
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
	command -v depmod >/dev/null || need+=(kmod)
	command -v dpkg-deb >/dev/null || need+=(dpkg)
	# ktlslab builds the TLS module of 5.10 (Debian 11 ships it without CONFIG_TLS).
	command -v make >/dev/null || need+=(make)
	command -v gcc >/dev/null || need+=(gcc)
	dpkg -s libelf1 >/dev/null 2>&1 || need+=(libelf1)
fi
command -v openssl >/dev/null || need+=(openssl)  # also scripts/bogo.sh
command -v curl >/dev/null || need+=(curl)        # the lab; cmd/ktls's and ktlshttp's curl tests
command -v xz >/dev/null || need+=(xz-utils)      # scripts/bogo.sh
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)  # internal/nginxref, ktls bench --run servers
command -v systemd-socket-activate >/dev/null || need+=(systemd)  # cmd/ktls TestServeSystemdSocketActivate
command -v haproxy >/dev/null || need+=(haproxy)   # cmd/ktls: TestHAProxy*
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing: ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
		exit 1
	fi
	echo "installing ${need[*]}"
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
		echo "apt-get install ${need[*]} failed" >&2
		exit 1
	}
fi
staticcheck=$(go env GOPATH)/bin/staticcheck
if [ ! -x "$staticcheck" ]; then
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 || failed "installing staticcheck"
fi

step "gofmt, go vet, staticcheck"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || failed "gofmt: $unformatted"
go vet ./... || failed "go vet"
[ -x "$staticcheck" ] && { "$staticcheck" ./... || failed "staticcheck"; }

step "cross builds (freebsd, darwin)"
for os in freebsd darwin; do
	GOOS=$os GOARCH=amd64 go build ./... || failed "GOOS=$os go build"
	GOOS=$os GOARCH=amd64 go vet ./... || failed "GOOS=$os go vet"
done

step "host tests (go test -race)"
skip=()
if ! grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null && ! modprobe -q tls 2>/dev/null; then
	echo "this host kernel has no kernel TLS: TestKernel* run in the lab below"
	skip=(-skip '^TestKernel')
fi
# The full log is kept (in .test-logs/, ignored by git) so that a failure
# can be read afterwards; only the newest ten are kept.
mkdir -p .test-logs
hostlog=.test-logs/host-$(date -u +%Y%m%dT%H%M%SZ).log
ls -1t .test-logs/host-*.log 2>/dev/null | tail -n +10 | xargs -r rm -f
go test -race -count=1 -v "${skip[@]}" ./... >"$hostlog" 2>&1
rc=$?
grep -E '^(ok|FAIL|\?|panic:|--- FAIL|    --- FAIL)' "$hostlog"
if [ $rc -ne 0 ]; then
	# The output of each failing test: go test -v prints a test's lines
	# after its "=== RUN/NAME/CONT" header, up to the next header.
	awk '
		NR == FNR { if (match($0, /^ *--- FAIL: [^ ]+/)) { f = substr($0, RSTART, RLENGTH); sub(/^ *--- FAIL: /, "", f); fail[f] = 1 } next }
		/^=== (RUN|NAME|CONT|PAUSE)/ { show = ($3 in fail); n = 0 }
		/^panic:/ { show = 1; n = 0 }
		show && n++ < 300 { print }
	' "$hostlog" "$hostlog"
	failed "host tests"
fi
hp=$(grep -cE '^ *--- PASS' "$hostlog")
hf=$(grep -cE '^ *--- FAIL' "$hostlog")
hs=$(grep -cE '^ *--- SKIP' "$hostlog")
echo "host: $hp passed, $hf failed, $hs skipped; full log: $hostlog"

step "BoGo on the host (scripts/bogo.sh host: BoringSSL's runner, user-space engine)"
bogolog=$(mktemp)
scripts/bogo.sh host 2>&1 | tee "$bogolog"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed "bogo host"
read -r bp bf bs < <(awk '/^bogo [^:]+: [0-9]+ passed/ {p+=$(NF-5); f+=$(NF-3); s+=$(NF-1)} END {print p+0, f+0, s+0}' "$bogolog")
[ "$bp" -gt 0 ] || failed "bogo host: no tests counted"
hp=$((hp + bp)) hf=$((hf + bf)) hs=$((hs + bs))
rm -f "$bogolog"

if [ "$lab" = 1 ]; then
	step "kernel lab (all kernels)"
	go run ./internal/cmd/ktlslab kernels || failed "ktlslab kernels"
	lablog=$(mktemp)
	go run ./internal/cmd/ktlslab test -require ./... 2>&1 | tee "$lablog"
	[ "${PIPESTATUS[0]}" -eq 0 ] || failed "ktlslab test"
	nk=$(grep -cE '^kernel [^ ]+: [0-9]+ passed' "$lablog")
	[ "$nk" -ge 4 ] || failed "ktlslab test: $nk kernels reported, want 4"
	read -r lp lf ls < <(awk '/^kernel [^ ]+: [0-9]+ passed/ {p+=$3; f+=$5; s+=$7} END {print p+0, f+0, s+0}' "$lablog")
	hp=$((hp + lp)) hf=$((hf + lf)) hs=$((hs + ls))
	rm -f "$lablog"

	step "end to end (scripts/e2e.sh: curl, openssl, ktls get, proxy on the host and on 7.x)"
	e2elog=$(mktemp)
	scripts/e2e.sh 2>&1 | tee "$e2elog"
	[ "${PIPESTATUS[0]}" -eq 0 ] || failed "e2e"
	read -r ep ef < <(awk '/^e2e: [0-9]+ passed, [0-9]+ failed/ {p=$2; f=$4} END {print p+0, f+0}' "$e2elog")
	[ "$ep" -gt 0 ] || failed "e2e: no checks counted"
	hp=$((hp + ep)) hf=$((hf + ef))
	rm -f "$e2elog"

	step "BoGo in the lab (scripts/bogo.sh lab: record-layer tests, kernel engine, every kernel)"
	bogolog=$(mktemp)
	scripts/bogo.sh lab 2>&1 | tee "$bogolog"
	[ "${PIPESTATUS[0]}" -eq 0 ] || failed "bogo lab"
	nk=$(grep -cE '^bogo kernel [^:]+: [0-9]+ passed' "$bogolog")
	[ "$nk" -ge 4 ] || failed "bogo lab: $nk kernels reported, want 4"
	read -r bp bf bs < <(awk '/^bogo kernel [^:]+: [0-9]+ passed/ {p+=$(NF-5); f+=$(NF-3); s+=$(NF-1)} END {print p+0, f+0, s+0}' "$bogolog")
	hp=$((hp + bp)) hf=$((hf + bf)) hs=$((hs + bs))
	rm -f "$bogolog"
fi

step "done"
echo "total: $hp passed, $hf failed, $hs skipped"
if [ $fail -ne 0 ]; then
	echo "test.sh: FAILED"
	exit 1
fi
echo "test.sh: all passed"
