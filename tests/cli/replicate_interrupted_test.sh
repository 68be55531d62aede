#!/usr/bin/env bash
# Replication interrupted, end to end, with both backends at once: a
# receive, a push and a clone killed mid-way (SIGKILL) leave a store that
# fsck finds without problems, and a retry completes it into a copy of the
# source, equal commit for commit and file for file.
#
# Needs a btrfs directory ($PFS_TEST_ROOT) and a non-btrfs one
# ($PFS_TEST_ROOT_PORTABLE), as scripts/test.sh sets them; without them, as
# root, it makes its own loop-mounted file systems (scripts/btrfs-scratch.sh)
# and removes them at exit.
set -eu -o pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$HERE/../.." && pwd)}
OWN_SCRATCH=0
if [ -z "${PFS_TEST_ROOT:-}" ] || [ -z "${PFS_TEST_ROOT_PORTABLE:-}" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if [ "${PFS_REQUIRE_BTRFS:-}" = 1 ]; then
      echo "PFS_TEST_ROOT or PFS_TEST_ROOT_PORTABLE not set, and not root (run scripts/test.sh)" >&2
      exit 1
    fi
    echo "skipped: needs PFS_TEST_ROOT (btrfs) and PFS_TEST_ROOT_PORTABLE (ext4), or root to make them" >&2
    exit 77
  fi
  # shellcheck source=../../scripts/btrfs-scratch.sh
  source "$SOURCE_ROOT/scripts/btrfs-scratch.sh"
  OWN_SCRATCH=1
  if [ -z "${PFS_TEST_ROOT:-}" ]; then
    SCRATCH_SIZE=${SCRATCH_SIZE:-6G} scratch_setup
    export PFS_TEST_ROOT=$SCRATCH
  fi
  if [ -z "${PFS_TEST_ROOT_PORTABLE:-}" ]; then
    scratch_setup_ext4
    export PFS_TEST_ROOT_PORTABLE=$SCRATCH_EXT4
  fi
fi
export PFS_TEST_BACKEND=btrfs   # lib.sh's $T is then on the btrfs mount
# shellcheck source=lib.sh
source "$HERE/lib.sh"
unset PFS_BACKEND PFS_STORE     # every store below is named, with its backend

# Background processes this test started (killed by PID at exit).
PIDS=()
on_exit() {
  local pid
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  cleanup
  if [ "$OWN_SCRATCH" = 1 ]; then scratch_cleanup; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

source "$HERE/replicate_lib.sh"
# remove_store DIR: a store and its subvolumes (big ones only: the rest stay
# until the test file system goes, as in lib.sh).
remove_store() {
  if [ "$(fs_type "$1")" = btrfs ]; then
    find "$1" -mindepth 1 -depth -type d -inum 256 -print0 |
      xargs -0r btrfs subvolume delete >/dev/null 2>&1 || true
  fi
  rm -rf "$1" 2>/dev/null || true
}
declare -A BACKEND_OF=([b]=btrfs [p]=portable)

# ---- transfers killed mid-way, then retried --------------------------------------------
# Big sources: four commits of 48 MiB each (a few seconds to copy).
section "interrupted transfers"
for i in 1 2 3 4; do head -c $((48 << 20)) /dev/urandom > "$LOCAL/huge$i"; done
declare -A HUGE=([b]=$BT/huge [p]=$PT/huge)
for s in b p; do
  new_store "${BACKEND_OF[$s]}" "${HUGE[$s]}"
  for i in 1 2 3 4; do
    pf "${HUGE[$s]}" put-file "huge$i.bin" "$LOCAL/huge$i" >/dev/null
    pf "${HUGE[$s]}" commit -m "huge $i" >/dev/null
  done
done
rm -f "$LOCAL"/huge?
commit_count() { pf "$1" --json list-commit --all 2>/dev/null | jq length 2>/dev/null || echo 0; }

# kill_receive STORE STREAM BYTES ARGS...: `pachctl receive ARGS` reads the
# first BYTES of STREAM from a pipe that stays open; once it has read them
# it is killed with SIGKILL.
kill_receive() {
  local s=$1 stream=$2 n=$3 rpid wpid i st=0
  shift 3
  rm -f "$LOCAL/fifo"
  mkfifo "$LOCAL/fifo"
  head -c "$n" "$stream" > "$LOCAL/part"
  "$PACHCTL" --store "$s" receive "$@" <"$LOCAL/fifo" >/dev/null 2>"$LOCAL/killed.err" &
  rpid=$!
  PIDS+=("$rpid")
  ( cat "$LOCAL/part"; exec sleep 300 ) >"$LOCAL/fifo" &
  wpid=$!
  PIDS+=("$wpid")
  # cat is done (the rest of BYTES is in the pipe's 64 KiB) when it is sleep.
  for i in $(seq 400); do [ "$(cat /proc/$wpid/comm 2>/dev/null)" = sleep ] && break; sleep 0.05; done
  sleep 0.5
  if kill -0 "$rpid" 2>/dev/null; then ok; else fail "receive ended before it was killed: $(cat "$LOCAL/killed.err")"; fi
  kill -9 "$rpid" 2>/dev/null || true
  wait "$rpid" 2>/dev/null || st=$?
  expect_eq "receive killed by SIGKILL" 137 "$st"
  kill "$wpid" 2>/dev/null || true
  wait "$wpid" 2>/dev/null || true
}
# A receive killed mid-stream; then push: it completes, the store is the
# source's.
for k in bp pb; do
  src=${HUGE[${k:0:1}]}
  dst=$(dir_of "${BACKEND_OF[${k:1:1}]}")/huge-recv
  new_store "${BACKEND_OF[${k:1:1}]}" "$dst"
  pf "$src" send "$(id_by_message "$src" "huge 1")" > "$LOCAL/huge.stream" || fail "send huge 1 ($k)"
  before=$(commits_text "$dst")
  kill_receive "$dst" "$LOCAL/huge.stream" $((20 << 20)) -b killed
  no_problems "$dst" "receive killed ($k)"
  expect_eq "receive killed ($k): commits as they were" "$before" "$(commits_text "$dst")"
  expect_eq "receive killed ($k): no branch made" "" "$(head_of "$dst" killed)"
  rm -f "$LOCAL/huge.stream"
  expect_status 0 pf "$src" push "$dst"
  same_stores "$src" "$dst" "receive killed ($k), then push" repair
done
# pachctl push killed by PID once a commit has arrived; then push again.
for k in bp pb; do
  src=${HUGE[${k:0:1}]}
  dst=$(dir_of "${BACKEND_OF[${k:1:1}]}")/huge-push
  new_store "${BACKEND_OF[${k:1:1}]}" "$dst"
  "$PACHCTL" --store "$src" push "$dst" >/dev/null 2>"$LOCAL/push.err" &
  ppid=$!
  PIDS+=("$ppid")
  for i in $(seq 3000); do [ "$(commit_count "$dst")" -ge 1 ] && break; sleep 0.02; done
  kill -9 "$ppid" 2>/dev/null && ok || fail "push $k: it ended before it was killed"
  st=0
  wait "$ppid" 2>/dev/null || st=$?
  expect_eq "push $k: killed by SIGKILL" 137 "$st"
  n=$(commit_count "$dst")
  [ "$n" -ge 1 ] && [ "$n" -lt 4 ] && ok || fail "push $k: killed with $n of 4 commits there"
  [ "$(head_of "$dst" master)" != "$(head_of "$src" master)" ] && ok ||
    fail "push $k: master already moved when the push was killed"
  no_problems "$dst" "push $k killed"
  there=$(ids_of "$dst")
  expect_status 0 pf "$src" --json push "$dst"
  expect_eq "push $k again: sends only what is missing" \
    "$(comm -23 <(ids_of "$src") <(echo "$there") | tr '\n' ' ')" \
    "$(jq -r '.commits[]' <<<"$OUT" | sort | tr '\n' ' ')"
  same_stores "$src" "$dst" "push $k killed, then again" repair
done
# A clone (portable to btrfs) killed by PID, then finished with pull.
src=${HUGE[p]}
dst=$BT/huge-clone
"$PACHCTL" clone "$src" "$dst" >/dev/null 2>"$LOCAL/clone.err" &
cpid=$!
PIDS+=("$cpid")
for i in $(seq 3000); do [ "$(commit_count "$dst")" -ge 1 ] && break; sleep 0.02; done
kill -9 "$cpid" 2>/dev/null && ok || fail "clone pb: it ended before it was killed"
wait "$cpid" 2>/dev/null || true
[ "$(commit_count "$dst")" -lt 4 ] && ok || fail "clone pb: all 4 commits there when it was killed"
no_problems "$dst" "clone pb killed"
expect_status 4 "$PACHCTL" clone "$src" "$dst"
expect_contains "clone pb again: the way out" "pull" "$ERR"
expect_status 0 pf "$dst" pull "$src"
same_stores "$src" "$dst" "clone pb killed, then pull" repair
for s in b p; do
  remove_store "${HUGE[$s]}"
  for n in huge-recv huge-push huge-clone; do remove_store "$(dir_of "${BACKEND_OF[$s]}")/$n"; done
done

finish
