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
