#!/usr/bin/env bash
# pachctl serve against a hostile client on the network: bad escapes and
# UTF-8, strict framing, no token where it is needed, idle, slowloris and
# greedy keep-alive clients, connection caps, and a fuzzer. One bad request
# must not crash it, slow or idle clients must not stall it (each pressure
# test asserts that normal requests are served while it lasts), and framing
# errors must not write anything. Checks are named after what broke.
# The attacks are made by tests/tools/http_attack.cc ($HTTP_ATTACK).
# Servers listen on 127.0.0.1 (one, briefly, on 0.0.0.0) and are stopped by
# PID at exit. HTTP_FUZZ_COUNT (default 100000) and HTTP_FUZZ_SEED set the fuzz run.
source "$(dirname "$0")/lib.sh"
A=${HTTP_ATTACK:?HTTP_ATTACK: the path of the http_attack tool}
# Absolute: the fuzzed server runs in a directory of its own.
case $A in /*) ;; *) A=$PWD/$A ;; esac
case $PACHCTL in /*) ;; *) PACHCTL=$PWD/$PACHCTL ;; esac

source "$(dirname "$0")/http_lib.sh"  # SERVERS, cleanup at exit, req, expect_error

# serve STORE LOG [OPTIONS...]: starts a server on 127.0.0.1:0 (its own
# session, so that no signal meant for the test reaches it); sets H (its
# URL), PORT and SPID. Fails the check and returns 1 if it does not start.
serve() { serve_on 127.0.0.1:0 "$@"; }
serve_on() {
  local listen=$1 store=$2 log=$3 i
  shift 3
  setsid "$PACHCTL" --store "$store" serve --listen "$listen" "$@" </dev/null >/dev/null 2>"$log" &
  SPID=$!
  SERVERS+=("$SPID")
  H= PORT=
  for i in $(seq 200); do
    PORT=$(grep -so 'http://[0-9.]*:[0-9]*' "$log" | head -1 | sed 's/.*://' || true)
    if [ -n "$PORT" ]; then
      H=http://127.0.0.1:$PORT
      return 0
    fi
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.05
  done
  fail "server (serve --listen $listen $*) did not start: $(cat "$log")"
  return 1
}
# stop_server: SIGTERM to the last server, then waits for it (10 s at most).
stop_server() {
  local i
  [ "$SPID" = "${MAIN_PID:-}" ] && MAIN_PID=
  kill "$SPID" 2>/dev/null || return 0
  for i in $(seq 200); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
}
# alive WHAT: the server process is still there and answers /health.
alive() {
  if kill -0 "$SPID" 2>/dev/null; then ok; else fail "$1: the server process died"; return; fi
  expect_eq "$1: /health still answers" "200" \
    "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$H/health" || true)"
}
# main_server: the default server of $PFS_STORE, started again if a check killed it.
main_server() {
  if [ -n "${MAIN_PID:-}" ] && kill -0 "$MAIN_PID" 2>/dev/null; then
    SPID=$MAIN_PID PORT=$MAIN_PORT H=http://127.0.0.1:$MAIN_PORT
    return 0
  fi
  [ -n "${MAIN_PID:-}" ] && fail "the server died before: $(tail -3 "$T/main.log"); starting another"
  serve "$PFS_STORE" "$T/main.log" -q || exit 1
  MAIN_PID=$SPID MAIN_PORT=$PORT
}

# raw TIMEOUT [--half-close]: sends stdin's bytes to the server as they are;
# sets RAW_RC (0: the server closed the connection, 3: still open at the
# timeout, 4: no connection), STATUS (of the first response), HEADERS (its
# header lines, CRs removed), RBODY (what follows them), NRESP (status lines
# in all), FIRST_MS and ELAPSED_MS (first byte, close or timeout).
raw() {
  local t=$1
  shift
  RAW_RC=0
  "$A" raw 127.0.0.1 "$PORT" --timeout "$t" "$@" >"$LOCAL/raw.out" 2>"$LOCAL/raw.err" || RAW_RC=$?
  STATUS=$(head -1 "$LOCAL/raw.out" | tr -d '\r\0' | awk '{print $2}')
  HEADERS=$(sed '/^\r$/q' "$LOCAL/raw.out" | tr -d '\r\0')
  RBODY=$(sed '1,/^\r$/d' "$LOCAL/raw.out" | tr -d '\0')
  NRESP=$(grep -ac '^HTTP/1\.[01] [0-9][0-9][0-9]' "$LOCAL/raw.out" || true)
  FIRST_MS=$(grep -o 'first_byte_ms=-\?[0-9]*' "$LOCAL/raw.err" | cut -d= -f2 || true)
  ELAPSED_MS=$(grep -o 'elapsed_ms=[0-9]*' "$LOCAL/raw.err" | cut -d= -f2 || true)
  FIRST_MS=${FIRST_MS:--1} ELAPSED_MS=${ELAPSED_MS:--1}
}
# send TIMEOUT BYTES [--half-close]: raw with BYTES as the request.
send() { printf '%s' "$2" > "$LOCAL/request"; raw "$1" "${@:3}" < "$LOCAL/request"; }
# get TARGET [HEADER-LINES]: GET TARGET (bytes as they are) with Connection: close.
get() { send 5 "GET $1 HTTP/1.1"$'\r\nHost: x\r\nConnection: close\r\n'"${2:-}"$'\r\n'; }
# no_leak WHAT TEXT: no C++ exception text in an answer.
no_leak() {
  local s
  for s in EXCEPTION_WHAT type_error '[json.exception' 'what():'; do
    case "$2" in *"$s"*) fail "$1: exception text [$s] in the answer: $2"; return ;; esac
  done
  ok
}
# json_error WHAT STATUSES CODE [MESSAGE-REGEX]: the last raw answer has a
# status in STATUSES (e.g. "400" or "400|404"), is JSON with that code (if
# CODE is not empty) and a message (matching MESSAGE-REGEX, any case).
json_error() {
  local what=$1 statuses=$2 code=$3 re=${4:-}
  if [[ "$STATUS" =~ ^($statuses)$ ]]; then ok; else fail "$what: status [$STATUS], wanted $statuses (answer: $(head -c 300 "$LOCAL/raw.out"))"; fi
  if [ -n "$code" ]; then
    expect_eq "$what: code" "$code" "$(jq -r .code <<<"$RBODY" 2>/dev/null || echo "not JSON: $RBODY")"
  fi
  local msg
  msg=$(jq -r .error <<<"$RBODY" 2>/dev/null || true)
  [ -n "$msg" ] && [ "$msg" != null ] && ok || fail "$what: no JSON error message in [$RBODY]"
  if [ -n "$re" ]; then
    grep -qiE "$re" <<<"$msg" && ok || fail "$what: the message [$msg] does not say ${re//|/ or }"
  fi
  no_leak "$what" "$HEADERS$RBODY"
}
# kv FILE KEY: a value of http_attack's key=value output.
kv() { grep -m1 "^$2=" "$1" | cut -d= -f2- || true; }
# at_most WHAT MAX VALUE / at_least WHAT MIN VALUE (numbers, decimals allowed)
at_most() { awk -v a="$3" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 <= b + 0) }' && ok || fail "$1: $3 > $2"; }
at_least() { awk -v a="$3" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }' && ok || fail "$1: $3 < $2"; }
# probe_ok WHAT N [probe options]: N normal GET /health on new connections, all answered 2xx.
probe_ok() {
  local what=$1 n=$2
  shift 2
  "$A" probe 127.0.0.1 "$PORT" --path /health --count "$n" --timeout 5 "$@" >"$LOCAL/probe.out" \
    2>"$LOCAL/probe.err" || true
  expect_eq "$what: normal requests served ($(kv "$LOCAL/probe.out" statuses), p99 $(kv "$LOCAL/probe.out" latency_p99_ms) ms)" \
    "$n" "$(kv "$LOCAL/probe.out" ok)"
}
# absent WHAT PATH [curl args...]: no file PATH on master's working state.
absent() {
  expect_eq "$1: nothing written" "404" \
    "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "${@:3}" "$H/file/$2" || true)"
}

pachctl init >/dev/null
echo "the file x" | pachctl put-file x
pachctl commit -m x >/dev/null
main_server

# ---- a bad escape aborted the server --------------------------------------------------
get "/nosuch%80"
json_error "GET /nosuch%80" "400|404" ""
alive "after GET /nosuch%80"

# ---- invalid UTF-8 and bad escapes: 400 that names what was wrong ------------------------
main_server
check_bad() {  # TARGET MESSAGE-REGEX
  get "$1"
  json_error "GET $(printf '%q' "$1")" 400 invalid_argument "$2"
  main_server
}
check_bad "/commit/%ff" 'commit|path'
check_bad "/branch/%ff" 'branch|path'
check_bad "/file/x?branch=%80aster" 'branch'
check_bad "/file/x?commit=%ff" 'commit'
check_bad "/file/x?offset=%ff" 'offset'
check_bad $'/file/a\xffb' 'path'
check_bad "/file/%zz" 'path'
check_bad "/file/a%" 'path'
check_bad "/file/a%2" 'path'
check_bad "/file/%c0%ae%c0%ae/x" 'path'
# An error under a Range header is the whole JSON, not a slice of it.
for t in "/file/x?branch=%80aster" "/file/%ff" "/file/x?commit=%ff"; do
  get "$t" $'Range: bytes=1-3\r\n'
  json_error "GET $t with Range" 400 invalid_argument
  case "$HEADERS" in *[Cc]ontent-[Rr]ange*) fail "GET $t with Range: a Content-Range on an error" ;; *) ok ;; esac
  main_server
done
alive "after the bad escapes"

# ---- a query parameter given twice ---------------------------------------------------------
get "/file/x?branch=master&branch=master"
json_error "branch given twice" 400 invalid_argument
get "/file/x?commit=master&commit=master"
json_error "commit given twice" 400 invalid_argument
send 5 $'POST /file/hostile/dup?branch=master&branch=dev HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc'
json_error "POST with branch given twice" 400 invalid_argument
absent "POST with branch given twice" hostile/dup
main_server

# ---- framing: 400, the connection closed, nothing written -----------------------------------
# framing WHAT NAME HEADER-LINES BODY: POST /file/hostile/NAME with them.
framing() {
  local what=$1 name=$2
  send 3 "POST /file/hostile/$name HTTP/1.1"$'\r\nHost: x\r\n'"$3"$'\r\n'"$4"
  json_error "$what" 400 invalid_argument
  expect_eq "$what: the server closed the connection" "0" "$RAW_RC"
  main_server
  absent "$what" "hostile/$name"
}
chunks=$'5\r\nhello\r\n0\r\n\r\n'
framing "Transfer-Encoding: gzip, chunked" te1 $'Transfer-Encoding: gzip, chunked\r\n' "$chunks"
framing "Transfer-Encoding: gzip" te2 $'Transfer-Encoding: gzip\r\n' "hello"
framing "Transfer-Encoding: identity" te3 $'Transfer-Encoding: identity\r\n' "hello"
framing "Content-Length: abc" cl1 $'Content-Length: abc\r\n' "hello"
framing "two different Content-Lengths" cl2 $'Content-Length: 5\r\nContent-Length: 6\r\n' "hello!"
framing "two equal Content-Lengths" cl3 $'Content-Length: 5\r\nContent-Length: 5\r\n' "hello"
framing "Content-Length: 5, 5" cl4 $'Content-Length: 5, 5\r\n' "hello"
framing "Content-Length: -1" cl5 $'Content-Length: -1\r\n' "hello"
framing "Content-Length then Transfer-Encoding" both1 \
  "Content-Length: ${#chunks}"$'\r\nTransfer-Encoding: chunked\r\n' "$chunks"
framing "Transfer-Encoding then Content-Length" both2 \
  $'Transfer-Encoding: chunked\r\n'"Content-Length: ${#chunks}"$'\r\n' "$chunks"
framing "a chunk longer than its size" chunk1 $'Transfer-Encoding: chunked\r\n' \
  $'5\r\nhelloEXTRA\r\n0\r\n\r\n'
framing "a chunk size that is not hex" chunk2 $'Transfer-Encoding: chunked\r\n' \
  $'zz\r\nhello\r\n0\r\n\r\n'
# Content-Length: abc must not leave the body to be read as the next request.
send 3 $'POST /file/hostile/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n'
expect_eq "a body read as a request after Content-Length: abc: responses" "1" "$NRESP"
expect_eq "a body read as a request after Content-Length: abc: status" "400" "$STATUS"
main_server
absent "smuggled request" hostile/smuggle

# ---- a request with no length has no body, and is answered at once -----------------------------
send 3 $'POST /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
[ -n "$STATUS" ] && [ "$STATUS" != 408 ] && ok ||
  fail "POST /health without a length was not answered (status [$STATUS], rc $RAW_RC)"
at_most "POST /health without a length: answered at once (ms)" 2000 "$FIRST_MS"
curl -s -XPOST "$H/file/nolen.txt" -d "no length" >/dev/null
send 3 $'POST /commit?branch=master HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
[[ "$STATUS" =~ ^2 ]] && ok || fail "POST /commit without a length: status [$STATUS] (answer: $RBODY)"
at_most "POST /commit without a length: answered at once (ms)" 2000 "$FIRST_MS"
expect_eq "POST /commit without a length: it committed" "200" \
  "$(curl -s -o /dev/null -w '%{http_code}' "$H/file/nolen.txt?commit=master")"
main_server

# ---- an upload that fails publishes nothing ---------------------------------------------------------
send 3 $'POST /file/hostile/midway HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n'
json_error "a bad chunk midway" 400 invalid_argument
main_server
absent "a bad chunk midway" hostile/midway
send 3 $'POST /file/hostile/short HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789' --half-close
main_server
absent "a client that closed before the end of its body" hostile/short
send 1 $'POST /file/hostile/gone HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789'
sleep 0.3
main_server
absent "a client that went away mid-body" hostile/gone
send 3 $'POST /file/hostile/unended HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n' --half-close
main_server
absent "a chunked upload without its last chunk" hostile/unended
expect_eq "no file under hostile/ at all" "" "$(pachctl list-file hostile 2>/dev/null || true)"
alive "after the framing errors"
stop_server

# ---- a token: 401 before the body is read ------------------------------------------------------------
TOKEN=s3cret-token-0123456789
(umask 077 && printf '%s\n' "$TOKEN" > "$LOCAL/token")
chmod 600 "$LOCAL/token"
if serve "$PFS_STORE" "$T/token.log" -q --token-file "$LOCAL/token"; then
  big=$'Host: x\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n'
  send 3 $'POST /file/hostile/tok HTTP/1.1\r\n'"$big"$'\r\n'
  json_error "a body without a token" 401 unauthorized
  expect_eq "a body without a token: no 100 Continue first" "0" \
    "$(grep -ac '^HTTP/1\.1 100' "$LOCAL/raw.out" || true)"
  send 3 $'POST /file/hostile/tok HTTP/1.1\r\nAuthorization: Bearer wrong-token-0123456789\r\n'"$big"$'\r\n'
  json_error "a body with a wrong token" 401 unauthorized
  expect_eq "a body with a wrong token: no 100 Continue first" "0" \
    "$(grep -ac '^HTTP/1\.1 100' "$LOCAL/raw.out" || true)"
  send 3 $'POST /file/hostile/tok HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n'
  json_error "a body without a token or Expect" 401 unauthorized
  at_most "a body without a token: answered before the body (ms)" 2000 "$FIRST_MS"
  expect_eq "the right token still works" "200" \
    "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$H/branch")"
  absent "the refused bodies" hostile/tok -H "Authorization: Bearer $TOKEN"
  alive "after the refused bodies"
  stop_server
fi

# ---- safe by default -----------------------------------------------------------------------------------
expect_status 2 timeout 5 "$PACHCTL" --store "$PFS_STORE" serve --listen 0.0.0.0:0 -q
expect_contains "0.0.0.0 without a token: says --insecure" "--insecure" "$ERR"
expect_contains "0.0.0.0 without a token: says token" "token" "$(tr 'A-Z' 'a-z' <<<"$ERR")"
if serve_on 0.0.0.0:0 "$PFS_STORE" "$T/insecure.log" -q --insecure; then
  grep -qi warning "$T/insecure.log" && ok || fail "--insecure: no warning on stderr: $(cat "$T/insecure.log")"
  expect_eq "--insecure: it serves" "200" "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$H/health")"
  stop_server
fi
printf '%s\n' "$TOKEN" > "$LOCAL/token644"
chmod 644 "$LOCAL/token644"
expect_status 2 timeout 5 "$PACHCTL" --store "$PFS_STORE" serve --listen 127.0.0.1:0 -q \
  --token-file "$LOCAL/token644"
expect_contains "a token file others can read: says chmod 600" "chmod 600" "$ERR"
(umask 077 && printf 'short-token\n' > "$LOCAL/short")
expect_status 2 timeout 5 "$PACHCTL" --store "$PFS_STORE" serve --listen 127.0.0.1:0 -q \
  --token-file "$LOCAL/short"
if serve "$PFS_STORE" "$T/loopback.log" -q; then
  ok  # loopback needs no token
  stop_server
fi

# ---- limits ---------------------------------------------------------------------------------------------
main_server
somax=$(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo 4096)
if command -v ss >/dev/null; then  # Send-Q of a listening socket: its backlog
  backlog=$(ss -ltnH "sport = :$PORT" | awk '{print $3}' | head -1)
  at_least "listen backlog" "$(( somax < 1024 ? somax : 1024 ))" "$backlog"
else
  fail "listen backlog: no ss to read it with (install iproute2)"
fi
# A header or a URI too large.
printf 'GET /health HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n' "$(head -c 1048576 /dev/zero | tr '\0' a)" \
  > "$LOCAL/request"
raw 5 < "$LOCAL/request"
json_error "a 1 MiB header" 431 invalid_argument
main_server
# 12 KiB: over the usual 8 KiB for a URI, under the usual 16 KiB for all headers.
printf 'GET /file/%s HTTP/1.1\r\nHost: x\r\n\r\n' "$(head -c 12288 /dev/zero | tr '\0' a)" > "$LOCAL/request"
raw 5 < "$LOCAL/request"
json_error "a 12 KiB URI" 414 invalid_argument
main_server
# Longer than all headers may be: either answer, as JSON, and the connection closed.
printf 'GET /file/%s HTTP/1.1\r\nHost: x\r\n\r\n' "$(head -c 262144 /dev/zero | tr '\0' a)" > "$LOCAL/request"
raw 5 < "$LOCAL/request"
json_error "a 256 KiB URI" "414|431" invalid_argument
expect_eq "a 256 KiB URI: closed" "0" "$RAW_RC"
main_server

# Idle connections stall it.
"$A" idle 127.0.0.1 "$PORT" 1000 --hold 6 --from 127.0.1 >"$LOCAL/idle.out" 2>"$LOCAL/idle.err" &
IPID=$!
sleep 2
probe_ok "idle connections stall it" 20 --interval 100
wait "$IPID" || fail "http_attack idle failed: $(cat "$LOCAL/idle.err")"
expect_eq "idle connections stall it: all 1000 connected" "1000" "$(kv "$LOCAL/idle.out" connected)"
alive "after 1000 idle connections"

# Keep-alive clients starve others.
head -c 4096 /dev/urandom > "$LOCAL/small"
curl -s -XPOST "$H/file/small" --data-binary @"$LOCAL/small" >/dev/null
"$A" keepalive 127.0.0.1 "$PORT" 200 --seconds 10 --path /file/small >"$LOCAL/ka.out" 2>"$LOCAL/ka.err" &
KPID=$!
sleep 3
probe_ok "keep-alive clients starve others" 10 --interval 200
wait "$KPID" || fail "http_attack keepalive failed: $(cat "$LOCAL/ka.err")"
expect_eq "keep-alive clients starve others: clients with no answer" "0" "$(kv "$LOCAL/ka.out" starved)"
expect_eq "keep-alive clients starve others: answers not 2xx" "0" "$(kv "$LOCAL/ka.out" non2xx)"
at_least "keep-alive clients starve others: requests" 200 "$(kv "$LOCAL/ka.out" requests)"
echo "keep-alive: $(tr '\n' ' ' < "$LOCAL/ka.out")" >&2
alive "after 200 keep-alive clients"
stop_server

# Slowloris holds it; a header that never ends gets 408 in about --header-timeout.
if serve "$PFS_STORE" "$T/slow.log" -q --header-timeout 2; then
  "$A" slowloris 127.0.0.1 "$PORT" 300 --hold 8 --interval 0.5 --from 127.0.1 >"$LOCAL/slow.out" \
    2>"$LOCAL/slow.err" &
  LPID=$!
  sleep 0.5
  probe_ok "slowloris holds it" 10 --interval 100
  wait "$LPID" || fail "http_attack slowloris failed: $(cat "$LOCAL/slow.err")"
  expect_eq "slowloris holds it: connections closed by the server" "300" "$(kv "$LOCAL/slow.out" closed_by_server)"
  expect_eq "slowloris holds it: closed with a 408" "300" "$(kv "$LOCAL/slow.out" answered_408)"
  at_least "slowloris holds it: first close (ms)" 1000 "$(kv "$LOCAL/slow.out" close_min_ms)"
  at_most "slowloris holds it: last close (ms)" 6000 "$(kv "$LOCAL/slow.out" close_max_ms)"
  send 6 $'GET /health HTTP/1.1\r\nHost: x\r\n'
  json_error "a header that never ends" 408 timeout
  expect_eq "a header that never ends: closed" "0" "$RAW_RC"
  at_most "a header that never ends: closed after (ms)" 4500 "$ELAPSED_MS"
  send 6 ""
  expect_eq "a connection that sends nothing: closed" "0" "$RAW_RC"
  expect_eq "a connection that sends nothing: no answer" "" "$STATUS"
  at_most "a connection that sends nothing: closed after (ms)" 4500 "$ELAPSED_MS"
  alive "after slowloris"
  stop_server
fi

# An idle keep-alive connection is closed after --idle-timeout.
if serve "$PFS_STORE" "$T/idle.log" -q --idle-timeout 1; then
  send 6 $'GET /health HTTP/1.1\r\nHost: x\r\n\r\n'
  expect_eq "idle keep-alive connection: answered" "200" "$STATUS"
  expect_eq "idle keep-alive connection: closed" "0" "$RAW_RC"
  at_least "idle keep-alive connection: closed after (ms)" 500 "$ELAPSED_MS"
  at_most "idle keep-alive connection: closed after (ms)" 3500 "$ELAPSED_MS"
  stop_server
fi

# One client address takes at most --max-per-client connections.
if serve "$PFS_STORE" "$T/cap.log" -q --max-per-client 10; then
  "$A" idle 127.0.0.1 "$PORT" 20 --hold 5 >"$LOCAL/cap.out" 2>"$LOCAL/cap.err" &
  CPID=$!
  sleep 1.5
  send 3 $'GET /health HTTP/1.1\r\nHost: x\r\n\r\n'
  json_error "per-client cap: one more connection" 503 busy
  expect_contains "per-client cap: Connection: close" "connection: close" "$(tr 'A-Z' 'a-z' <<<"$HEADERS")"
  expect_eq "per-client cap: closed" "0" "$RAW_RC"
  probe_ok "per-client cap: another address is served" 5 --from 127.0.0.2
  wait "$CPID" || fail "http_attack idle failed: $(cat "$LOCAL/cap.err")"
  expect_eq "per-client cap: connections over it answered 503" "10" "$(kv "$LOCAL/cap.out" answered_503)"
  at_most "per-client cap: 503 at once (ms)" 2000 "$(kv "$LOCAL/cap.out" close_max_ms)"
  alive "after the per-client cap"
  stop_server
fi
# And all clients together at most --max-connections.
if serve "$PFS_STORE" "$T/global.log" -q --max-connections 20; then
  "$A" idle 127.0.0.1 "$PORT" 30 --hold 4 --from 127.0.1 >"$LOCAL/gcap.out" 2>"$LOCAL/gcap.err" &
  CPID=$!
  sleep 1.5
  send 3 $'GET /health HTTP/1.1\r\nHost: x\r\n\r\n'
  json_error "connection cap: one more connection" 503 busy
  wait "$CPID" || fail "http_attack idle failed: $(cat "$LOCAL/gcap.err")"
  expect_eq "connection cap: connections over it answered 503" "10" "$(kv "$LOCAL/gcap.out" answered_503)"
  alive "after the connection cap"
  stop_server
fi

# ---- a tar of a directory with a UTF-8 name crashed the server ------------------------------
# (libarchive converts names through the locale; in the C locale its pax
# writer read a NULL name: found by the fuzzer, file "été").
UT=$T/utf8
"$PACHCTL" init "$UT" >/dev/null
echo a | "$PACHCTL" --store "$UT" put-file "d/été"
echo b | "$PACHCTL" --store "$UT" put-file "d/sub/日本語 ü.txt"
if serve "$UT" "$T/utf8.log" -q; then
  expect_eq "tar of a UTF-8 name crashed the server: glob as tar" "d/été" \
    "$(curl -s "$H/file/d/*?format=tar" | tar -tf - 2>&1)"
  expect_eq "tar of a UTF-8 name crashed the server: archive" "sub/ sub/日本語 ü.txt été" \
    "$(curl -s "$H/archive/d" | tar -tf - 2>&1 | sort | xargs -d '\n')"
  alive "tar of a UTF-8 name"
  rm -rf "$LOCAL/utf8.back"
  "$PACHCTL" --address "$H" get-file -r d "$LOCAL/utf8.back" && ok || fail "remote get-file -r of UTF-8 names"
  expect_eq "remote get-file -r of UTF-8 names: bytes" "b" "$(cat "$LOCAL/utf8.back/sub/日本語 ü.txt" 2>&1)"
  stop_server
fi

# ---- fuzz: never dies, never 5xx, never writes outside its store ------------------------------------------
FZ=$T/fuzz
mkdir -p "$FZ/sentinel"
echo "keep me" > "$FZ/sentinel/file"
"$PACHCTL" --store "$FZ/store" init >/dev/null
echo seed | "$PACHCTL" --store "$FZ/store" put-file fuzz/seed
"$PACHCTL" --store "$FZ/store" commit -m seed >/dev/null
"$PACHCTL" --store "$FZ/store" branch fuzz >/dev/null
outside() { (cd "$FZ" && find . -path ./store -prune -o -printf '%p %y %s %m\n' | sort && cat sentinel/file); }
before=$(outside)
count=${HTTP_FUZZ_COUNT:-100000}
seed=${HTTP_FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))}
cd "$FZ"  # the server's working directory: anything written there shows
if serve "$FZ/store" "$T/fuzz.log" -q; then
  cd - >/dev/null
  echo "fuzz: $count requests, seed $seed (HTTP_FUZZ_SEED=$seed to repeat)" >&2
  "$A" fuzz 127.0.0.1 "$PORT" --count "$count" --seed "$seed" >"$LOCAL/fuzz.out" 2>"$LOCAL/fuzz.err" ||
    fail "http_attack fuzz failed: $(tail -5 "$LOCAL/fuzz.err")"
  echo "fuzz: $(tr '\n' ' ' < "$LOCAL/fuzz.out")" >&2
  expect_eq "fuzz: the server died" "0" "$(kv "$LOCAL/fuzz.out" server_died)"
  expect_eq "fuzz: 5xx answers" "0" "$(kv "$LOCAL/fuzz.out" status_5xx)"
  expect_eq "fuzz: exception text in answers" "0" "$(kv "$LOCAL/fuzz.out" exception_text)"
  expect_eq "fuzz: every request made" "$count" "$(kv "$LOCAL/fuzz.out" requests)"
  at_least "fuzz: some requests succeeded" 1 "$(kv "$LOCAL/fuzz.out" status_2xx)"
  if [ "$(kv "$LOCAL/fuzz.out" status_5xx)" != 0 ] || [ "$(kv "$LOCAL/fuzz.out" server_died)" != 0 ]; then
    head -c 20000 "$LOCAL/fuzz.err" >&2
    tail -5 "$T/fuzz.log" >&2
  fi
  alive "fuzz"
  stop_server
  expect_status 0 "$PACHCTL" --store "$FZ/store" fsck
else
  cd - >/dev/null
fi
expect_eq "fuzz: nothing written outside the store" "$before" "$(outside)"
expect_eq "fuzz: the store's directory holds only the store and the sentinel" "sentinel store" \
  "$(ls -A "$FZ" | xargs)"

finish
