#!/usr/bin/env bash
# http-fuzz.sh: fuzzes `pachctl serve` over the network, for longer runs than
# the test suite's (tests/cli/http_hostile_test.sh does 100,000 requests).
# Builds (ninja -C build), starts a server on a fresh portable store in a
# temporary directory on 127.0.0.1, sends it COUNT random and mutated
# requests with tests/tools/http_attack.cc, reports, stops the server and
# removes the store.
#
# Usage: scripts/http-fuzz.sh [COUNT]   (default 1000000)
#   HTTP_FUZZ_SEED  the seed (default: random; printed, to repeat a run)
#   BUILD           the build directory (default build)
#
# Exits non-zero if the server died, answered 5xx, leaked exception text, or
# left a store that pachctl fsck finds wrong; the requests that did it are
# printed (hex-escaped) from the tool's log.
set -eu -o pipefail
cd "$(dirname "$0")/.."
count=${1:-1000000}
build=${BUILD:-build}
seed=${HTTP_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
[ -d "$build" ] || meson setup "$build" >/dev/null
ninja -C "$build" pachctl/pachctl tests/http_attack >/dev/null
pachctl=$PWD/$build/pachctl/pachctl
attack=$PWD/$build/tests/http_attack

dir=$(mktemp -d "${TMPDIR:-/tmp}/pfs-http-fuzz.XXXXXX")
spid=
cleanup() {
  if [ -n "$spid" ]; then
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

store=$dir/store
PFS_BACKEND=portable "$pachctl" --store "$store" init >/dev/null
echo seed | "$pachctl" --store "$store" put-file fuzz/seed
"$pachctl" --store "$store" commit -m seed >/dev/null
"$pachctl" --store "$store" branch fuzz >/dev/null
"$pachctl" --store "$store" serve --listen 127.0.0.1:0 -q </dev/null >/dev/null 2>"$dir/server.log" &
spid=$!
port=
for _ in $(seq 200); do
  port=$(grep -so 'http://127\.0\.0\.1:[0-9]*' "$dir/server.log" | sed 's/.*://' || true)
  [ -n "$port" ] && break
  sleep 0.05
done
if [ -z "$port" ]; then
  echo "http-fuzz.sh: the server did not start: $(cat "$dir/server.log")" >&2
  exit 1
fi

echo "http-fuzz.sh: $count requests to 127.0.0.1:$port, seed $seed (HTTP_FUZZ_SEED=$seed to repeat)" >&2
status=0
"$attack" fuzz 127.0.0.1 "$port" --count "$count" --seed "$seed" --max-seconds 86400 \
  >"$dir/fuzz.out" 2>"$dir/fuzz.err" || status=$?
cat "$dir/fuzz.out"
get() { grep -m1 "^$1=" "$dir/fuzz.out" | cut -d= -f2 || true; }
problem=
[ "$status" -eq 0 ] || problem="http_attack failed (exit $status)"
[ "$(get server_died)" = 0 ] || problem="the server died"
[ "$(get status_5xx)" = 0 ] || problem="$problem${problem:+; }$(get status_5xx) answers 5xx"
[ "$(get exception_text)" = 0 ] || problem="$problem${problem:+; }exception text in $(get exception_text) answers"
if kill -0 "$spid" 2>/dev/null; then
  kill "$spid"
  wait "$spid" 2>/dev/null || true
else
  problem="$problem${problem:+; }the server process is gone"
fi
spid=
if ! "$pachctl" --store "$store" fsck >"$dir/fsck.out" 2>&1; then
  problem="$problem${problem:+; }fsck: $(tail -3 "$dir/fsck.out")"
fi
if [ -n "$problem" ]; then
  echo "http-fuzz.sh: $problem (seed $seed)" >&2
  head -c 100000 "$dir/fuzz.err" >&2
  echo "http-fuzz.sh: the server's last words: $(tail -5 "$dir/server.log")" >&2
  exit 1
fi
echo "http-fuzz.sh: no crash, no 5xx, store clean after $(get requests) requests in $(get seconds) s" >&2
