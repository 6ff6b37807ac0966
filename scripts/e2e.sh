#!/usr/bin/env bash
# End-to-end check of the ktls command with real peers (curl, openssl s_client, a Go TLS
# client) against `ktls serve`, `ktls get` and `ktls proxy`:
#
#   scripts/e2e.sh           on the host (user-space engine), then in the kernel lab (7.x kernel)
#   scripts/e2e.sh -host     host only
#
# The lab part boots the 7.x kernel once with internal/e2e's "guest" driver as its program
# (serve on 8443, proxy on 8444 to an echo backend, a control port on 9999), forwarded to free
# 127.0.0.1 ports on the host. One line per check: "e2e: PASS name" or "e2e: FAIL name: why",
# then "e2e: N passed, M failed"; the exit status is non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

lab=1
[ "${1:-}" = "-host" ] && lab=0
size=$((50 << 20))

for t in curl openssl sha256sum; do
	command -v $t >/dev/null || { echo "e2e: $t is missing" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failedn=0
pass() { echo "e2e: PASS $1"; passed=$((passed + 1)); }
fail() { echo "e2e: FAIL $1: $2"; failedn=$((failedn + 1)); }
t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0))s"; }

freeport() { "$tmp/e2e" freeport; }

# waitfor SECONDS CMD...: retries CMD every 0.5 s.
waitfor() {
	local i n=$(($1 * 2))
	shift
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}

echo "e2e: building ktls and the e2e helper"
CGO_ENABLED=0 go build -o "$tmp/ktls" ./cmd/ktls || { echo "e2e: build ./cmd/ktls failed"; exit 1; }
CGO_ENABLED=0 go build -o "$tmp/e2e" ./internal/e2e || { echo "e2e: build ./internal/e2e failed"; exit 1; }
if [ $lab = 1 ]; then # built, not go run: a signal must reach ktlslab, which stops qemu
	go build -o "$tmp/ktlslab" ./internal/cmd/ktlslab || { echo "e2e: build ./internal/cmd/ktlslab failed"; exit 1; }
fi

# Certificate for localhost and 127.0.0.1, its public key pin, the files to serve.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null ||
	{ echo "e2e: openssl req failed"; exit 1; }
pin="sha256//$(openssl x509 -in "$tmp/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der |
	openssl dgst -sha256 -binary | base64)"
mkdir "$tmp/www"
head -c $size /dev/urandom >"$tmp/www/big.bin"
echo "<html><body>e2e-index-page</body></html>" >"$tmp/www/index.html"
bigsum=$(sha256sum <"$tmp/www/big.bin" | cut -d' ' -f1)
rstart=12345678 rlen=$((7 << 20))
rangesum=$(tail -c +$((rstart + 1)) "$tmp/www/big.bin" | head -c $rlen | sha256sum | cut -d' ' -f1)

# serve_checks WHERE PORT LOG MODE [PREFIX]: curl, openssl s_client and the log (its lines
# starting with PREFIX) against a serve on PORT.
serve_checks() {
	local where=$1 port=$2 log=$3 mode=$4 pfx=${5:-} url="https://localhost:$2"
	local c=(curl -sS --fail --max-time 240 --resolve "localhost:$port:127.0.0.1" --cacert "$tmp/cert.pem" --pinnedpubkey "$pin")
	local v sum got
	for v in 1.1 2; do
		got=$("${c[@]}" --http$v -o "$tmp/got.bin" -w '%{http_version} %{size_download} %{speed_download}' "$url/big.bin" 2>&1)
		sum=$(sha256sum <"$tmp/got.bin" | cut -d' ' -f1)
		read -r hv n speed <<<"$got"
		if [ "$sum" = "$bigsum" ] && [ "$hv" = "${v%.1}" -o "$hv" = "$v" ]; then
			pass "$where curl --http$v 50MiB sha256 ($(awk -v s="$speed" 'BEGIN{printf "%.1f MB/s", s/1e6}'))"
		else
			fail "$where curl --http$v 50MiB" "got '$got' sha256 $sum"
		fi
		got=$("${c[@]}" --http$v -r $rstart-$((rstart + rlen - 1)) -o "$tmp/got.bin" -w '%{http_code} %{http_version}' "$url/big.bin" 2>&1)
		sum=$(sha256sum <"$tmp/got.bin" | cut -d' ' -f1)
		if [ "$sum" = "$rangesum" ] && [ "${got%% *}" = 206 ]; then
			pass "$where curl --http$v Range sha256"
		else
			fail "$where curl --http$v Range" "got '$got' sha256 $sum"
		fi
		rm -f "$tmp/got.bin"
	done
	got=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
		timeout 60 openssl s_client -connect "127.0.0.1:$port" -servername localhost -quiet \
			-CAfile "$tmp/cert.pem" -verify_return_error 2>"$tmp/s_client.err")
	if grep -q '^HTTP/1.1 200' <<<"$got" && grep -q e2e-index-page <<<"$got"; then
		pass "$where openssl s_client GET /"
	else
		fail "$where openssl s_client" "$(head -c 300 <<<"$got") $(tail -3 "$tmp/s_client.err")"
	fi
	# Five connections: two per curl version, one s_client.
	local conns want bad
	waitfor 10 test "$(grep -c "^${pfx}.*msg=connection" "$log")" -ge 5
	conns=$(grep "^${pfx}.*msg=connection" "$log")
	want=$(grep -cE "tx=$mode rx=$mode" <<<"$conns")
	bad=$(grep -vE "tx=$mode rx=$mode" <<<"$conns" | grep -c .)
	if [ "$want" -ge 5 ] && [ "$bad" -eq 0 ]; then
		pass "$where serve log: every connection in mode $mode ($(grep -oE 'tx=[a-z-]+ rx=[a-z-]+' <<<"$conns" | sort | uniq -c | xargs))"
	else
		fail "$where serve log" "$want connections match tx=$mode rx=$mode, $bad do not: $(head -c 600 <<<"$conns")"
	fi
}

# proxy_check WHERE PORT LOG SPLICE [PREFIX]: a 50 MiB stream each way through the proxy on PORT.
proxy_check() {
	local where=$1 port=$2 log=$3 splice=$4 pfx=${5:-} out
	if out=$("$tmp/e2e" stream -addr "127.0.0.1:$port" -ca "$tmp/cert.pem" -name localhost -size $size 2>&1); then
		pass "$where proxy 50MiB each way: $out"
	else
		fail "$where proxy 50MiB each way" "$out"
	fi
	local closed modes="tx=user rx=user"
	[ "$splice" = true ] && modes="tx=kernel-[a-z]+ rx=kernel-[a-z]+"
	# The stream's line (the readiness probe made one too, a handshake error).
	waitfor 20 grep -q "^${pfx}.*msg=connection .*from_client=$size " "$log"
	closed=$(grep "^${pfx}.*msg=connection .*from_client=$size " "$log" | tail -1)
	if grep -qE "end=clean from_client=$size to_client=$size .*$modes" <<<"$closed"; then
		pass "$where proxy log: end=clean, $modes (spliced: $splice)"
	else
		fail "$where proxy log" "want end=clean from_client=to_client=$size $modes: ${closed:-no connection line}"
	fi
}

# check_json WHERE FILE WANT: ktls check --json says available (true, with a suite table) or
# not (false, with a reason).
check_json() {
	local r
	if r=$("$tmp/e2e" checkjson "$2" "$3" 2>&1); then
		pass "$1 ktls check --json: $r"
	else
		fail "$1 ktls check --json" "$r $(head -c 300 "$2")"
	fi
}

# ---- host: the user-space engine ----
hostpart() {
	local sp pp bp
	sp=$(freeport)
	"$tmp/ktls" serve --addr "127.0.0.1:$sp" --cert "$tmp/cert.pem" --key "$tmp/key.pem" --log-level debug "$tmp/www" 2>"$tmp/host-serve.log" &
	pids+=($!)
	if ! waitfor 20 curl -s --cacert "$tmp/cert.pem" --resolve "localhost:$sp:127.0.0.1" -o /dev/null "https://localhost:$sp/"; then
		fail "host serve" "did not start: $(tail -5 "$tmp/host-serve.log")"
		return
	fi
	serve_checks host "$sp" "$tmp/host-serve.log" user

	local out sum
	if out=$("$tmp/ktls" get --ca "$tmp/cert.pem" -v -o "$tmp/get.bin" "https://127.0.0.1:$sp/big.bin" 2>&1); then
		sum=$(sha256sum <"$tmp/get.bin" | cut -d' ' -f1)
		if [ "$sum" = "$bigsum" ]; then pass "host ktls get 50MiB sha256"; else fail "host ktls get" "sha256 $sum"; fi
	else
		fail "host ktls get" "$out"
	fi
	rm -f "$tmp/get.bin"

	pp=$(freeport) bp=$(freeport)
	"$tmp/e2e" echo "127.0.0.1:$bp" &
	pids+=($!)
	"$tmp/ktls" proxy --listen "127.0.0.1:$pp" --to "127.0.0.1:$bp" --cert "$tmp/cert.pem" --key "$tmp/key.pem" --log-level debug 2>"$tmp/host-proxy.log" &
	pids+=($!)
	waitfor 20 "$tmp/e2e" dial "127.0.0.1:$pp"
	proxy_check host "$pp" "$tmp/host-proxy.log" false

	"$tmp/ktls" check --json >"$tmp/host-check.json" 2>&1
	check_json host "$tmp/host-check.json" false
}

# ---- lab: the kernel engine on the 7.x kernel ----
# ctl PORT CMD...: one command to the guest's control port; its answer on stdout.
ctl() {
	local port=$1
	shift
	"$tmp/e2e" ctl "127.0.0.1:$port" "$@"
}

labpart() {
	local sp pp cp lablog="$tmp/lab.log"
	sp=$(freeport) pp=$(freeport) cp=$(freeport)
	"$tmp/ktlslab" run -kernel 7 -timeout 8m \
		-forward "127.0.0.1:$sp:8443" -forward "127.0.0.1:$pp:8444" -forward "127.0.0.1:$cp:9999" \
		-file "$tmp/ktls:/e2e/ktls" -file "$tmp/www:/e2e/www" -file "$tmp/cert.pem:/e2e/cert.pem" -file "$tmp/key.pem:/e2e/key.pem" \
		-- "$tmp/e2e" guest -ktls /e2e/ktls -www /e2e/www -cert /e2e/cert.pem -key /e2e/key.pem >"$lablog" 2>"$tmp/lab.err" &
	local labpid=$!
	pids+=($labpid)
	local i up=0
	for ((i = 0; i < 360; i++)); do
		if [ "$(ctl "$cp" ping 2>/dev/null)" = pong ]; then up=1; break; fi
		kill -0 $labpid 2>/dev/null || break
		sleep 0.5
	done
	if [ $up = 0 ]; then
		fail "lab boot" "the guest did not answer: $(tail -20 "$tmp/lab.err") $(tail -20 "$lablog")"
		return
	fi
	echo "e2e: lab guest up after $(elapsed)"

	ctl "$cp" check --json | sed '/^exit=/d' >"$tmp/lab-check.json"
	check_json lab "$tmp/lab-check.json" true
	ctl "$cp" stat >"$tmp/stat0"

	serve_checks lab "$sp" "$lablog" 'kernel-[a-z]+' 'serve: '

	local out sum
	out=$(ctl "$cp" get --ca /e2e/cert.pem -v -o /tmp/get.bin "https://localhost:8443/big.bin")
	sum=$(ctl "$cp" sha256 /tmp/get.bin)
	if [ "$sum" = "$bigsum" ] && grep -q 'exit=0' <<<"$out"; then
		pass "lab ktls get (in the guest) 50MiB sha256: $(grep -oE 'tx=[a-z-]+ rx=[a-z-]+' <<<"$out" | head -1), $(grep -i splice <<<"$out" | head -1)"
	else
		fail "lab ktls get" "sha256 $sum: $out"
	fi

	proxy_check lab "$pp" "$lablog" true 'proxy: '

	ctl "$cp" stat >"$tmp/stat1"
	local moved
	if moved=$("$tmp/e2e" statdiff "$tmp/stat0" "$tmp/stat1" 2>&1); then
		pass "lab ktls stat counters moved: $moved"
	else
		fail "lab ktls stat" "$moved; before: $(xargs <"$tmp/stat0"); after: $(xargs <"$tmp/stat1")"
	fi

	ctl "$cp" quit >/dev/null
	local rc=0
	wait $labpid || rc=$?
	if [ $rc -eq 0 ]; then pass "lab run ended cleanly"; else fail "lab run" "exit status $rc: $(tail -20 "$tmp/lab.err")"; fi
}

hostpart
echo "e2e: host part done after $(elapsed)"
if [ $lab = 1 ]; then
	labpart
	echo "e2e: lab part done after $(elapsed)"
fi
echo "e2e: $passed passed, $failedn failed"
[ $failedn -eq 0 ]
