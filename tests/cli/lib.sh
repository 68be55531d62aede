# lib.sh: helpers for the end-to-end tests. Source it; it sets -eu, makes a
# scratch directory on the test mount and removes it on exit.
# PFS_TEST_BACKEND (btrfs or portable) picks the backend of every store the
# test makes with pachctl init (through PFS_BACKEND); portable stores go to
# $PFS_TEST_ROOT_PORTABLE (an ext4 mount) when that is set.
set -eu -o pipefail
BACKEND=${PFS_TEST_BACKEND:-btrfs}
export PFS_BACKEND=$BACKEND
if [ "$BACKEND" = portable ] && [ -n "${PFS_TEST_ROOT_PORTABLE:-}" ]; then
  PFS_TEST_ROOT=$PFS_TEST_ROOT_PORTABLE
fi
if [ -z "${PFS_TEST_ROOT:-}" ]; then
  if [ "${PFS_REQUIRE_BTRFS:-}" = 1 ]; then echo "PFS_TEST_ROOT not set (run scripts/test.sh)" >&2; exit 1; fi
  echo "skipped: PFS_TEST_ROOT (a btrfs mount) is not set; run scripts/test.sh" >&2
  exit 77
fi
PACHCTL=${PACHCTL:?}
T=$(mktemp -d "$PFS_TEST_ROOT/cli.XXXXXX")
LOCAL=$(mktemp -d)
# Stores stay until scripts/test.sh unmounts the test file system; local
# scratch files go now.
cleanup() { rm -rf "$LOCAL"; }
trap cleanup EXIT
export PFS_STORE=$T/store
FAILS=0
CHECKS=0

pachctl() { "$PACHCTL" "$@"; }

# PFS_TEST_REMOTE=1: the same tests against servers. Every command but init
# (and those on a directory that holds no store) goes through
# `pachctl --address` to a `pachctl serve` of the store it names, started on
# first use on a free loopback port and stopped at exit; outputs and exit
# statuses must be the same as locally.
if [ "${PFS_TEST_REMOTE:-}" = 1 ]; then
  # Commands often run in $(...) subshells, so the servers are registered in
  # files: $LOCAL/servers/<n>.store, .url and .pid.
  mkdir -p "$LOCAL/servers"
  stop_servers() {
    local f pid
    for f in "$LOCAL"/servers/*.pid; do
      [ -e "$f" ] || continue
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    done
  }
  cleanup() { stop_servers; rm -rf "$LOCAL"; }
  # server_for STORE: sets URL to a server of STORE, starting one if needed.
  server_for() {
    local store=$1 f n log i
    for f in "$LOCAL"/servers/*.store; do
      [ -e "$f" ] || continue
      if [ "$(cat "$f")" = "$store" ]; then URL=$(cat "${f%.store}.url"); return; fi
    done
    n=$(mktemp -u "$LOCAL/servers/XXXXXX")
    log=$n.log
    # Its own session, and no pipe of a $(...) held open.
    setsid "$PACHCTL" --store "$store" serve --listen 127.0.0.1:0 -q </dev/null >/dev/null 2>"$log" &
    echo $! > "$n.pid"
    for i in $(seq 200); do
      URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" || true)
      [ -n "$URL" ] && break
      sleep 0.05
    done
    [ -n "$URL" ] || return 1  # a store that cannot be opened: the caller runs locally
    echo "$URL" > "$n.url"
    echo "$store" > "$n.store"
  }
  pachctl() {
    local store=${PFS_STORE:-} args=("$@")
    if [ "${1:-}" = --store ] || [ "${1:-}" = -s ]; then store=$2; args=("${@:3}"); fi
    case "${args[0]:-}" in init|serve|help|--version|"") "$PACHCTL" "$@"; return ;; esac
    if [ ! -e "$store/pfs-store.json" ]; then "$PACHCTL" "$@"; return; fi
    if ! server_for "$store"; then "$PACHCTL" "$@"; return; fi
    "$PACHCTL" --address "$URL" "${args[@]}"
  }
fi

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { CHECKS=$((CHECKS + 1)); }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
  if [ "$2" == "$3" ]; then ok; else fail "$1: expected [$2], got [$3]"; fi
}
# expect_status WANT CMD...: runs CMD, checks its exit status, keeps stderr in $ERR
expect_status() {
  local want=$1; shift
  local got=0
  OUT=$("$@" 2>"$T/stderr") || got=$?
  ERR=$(cat "$T/stderr")
  if [ "$got" == "$want" ]; then ok; else fail "'$*': exit $got, wanted $want (stderr: $ERR)"; fi
}
# expect_contains WHAT NEEDLE HAYSTACK
expect_contains() {
  case "$3" in *"$2"*) ok ;; *) fail "$1: [$2] not in [$3]" ;; esac
}
finish() {
  echo "$CHECKS passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}
