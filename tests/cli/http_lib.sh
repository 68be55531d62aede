# http_lib.sh: helpers of the end-to-end tests that start servers and drive
# them with curl. Source it after lib.sh. Servers listen on 127.0.0.1 only
# and are stopped by PID when the test exits (also on failure).
SERVERS=()
cleanup_servers() {
  local pid
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVERS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'cleanup_servers; rm -rf "$LOCAL"' EXIT

# serve STORE LOG [OPTIONS...]: starts a server on a free loopback port (its
# own session, so that no signal meant for the test reaches it; still this
# shell's child, so `wait $SPID` works), sets H (its URL) and SPID.
serve() {
  local store=$1 log=$2 i
  shift 2
  setsid "$PACHCTL" --store "$store" serve --listen 127.0.0.1:0 "$@" </dev/null >/dev/null 2>"$log" &
  SPID=$!
  SERVERS+=("$SPID")
  H=
  for i in $(seq 200); do
    H=$(grep -so 'http://127\.0\.0\.1:[0-9]*' "$log" || true)
    [ -n "$H" ] && return 0
    sleep 0.05
  done
  echo "server did not start: $(cat "$log")" >&2
  exit 1
}
# req METHOD URL [curl args...]: sets CODE and BODY.
req() {
  local m=$1 u=$2
  shift 2
  BODY=$(curl -sS -X "$m" -o - -w '\n%{http_code}' "$@" "$u")
  CODE=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
}
# expect_error WHAT STATUS CODE-NAME METHOD URL [curl args...]
expect_error() {
  local what=$1 status=$2 name=$3
  shift 3
  req "$@"
  expect_eq "$what: status" "$status" "$CODE"
  expect_eq "$what: code" "$name" "$(jq -r .code <<<"$BODY" 2>/dev/null)"
  [ -n "$(jq -r .error <<<"$BODY" 2>/dev/null)" ] && ok || fail "$what: no error message in [$BODY]"
}
