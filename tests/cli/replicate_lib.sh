# replicate_lib.sh: what the replication tests share (replicate_test.sh,
# replicate_streams_test.sh, replicate_interrupted_test.sh): the two scratch
# roots (BT on btrfs, PT on ext4), store helpers and the comparisons of two
# stores. Source it after lib.sh.
fs_type() { stat -f -c %T "$1"; }
[ "$(fs_type "$PFS_TEST_ROOT")" = btrfs ] && ok || fail "PFS_TEST_ROOT is not btrfs"
[ "$(fs_type "$PFS_TEST_ROOT_PORTABLE")" != btrfs ] && ok || fail "PFS_TEST_ROOT_PORTABLE is btrfs"
BT=$T                                                     # stores on btrfs
PT=$(mktemp -d "$PFS_TEST_ROOT_PORTABLE/replicate.XXXXXX")  # stores on ext4
dir_of() { case $1 in btrfs) echo "$BT" ;; portable) echo "$PT" ;; esac; }
section() { echo "---- $* (${SECONDS}s; $CHECKS passed, $FAILS failed so far)" >&2; }

# pf STORE ARGS...: pachctl on that store.
pf() { local s=$1; shift; "$PACHCTL" --store "$s" "$@"; }
new_store() { pf "$2" init --backend "$1" "$2" >/dev/null; }  # new_store BACKEND DIR
# NOTE: jq holds numbers as doubles and time_ns needs more than 53 bits:
# commits are compared as pachctl's JSON text, never through jq.
commits_text() { pf "$1" --json list-commit --all; }
# Branches without their creation times (those are each store's own).
branches_text() { pf "$1" --json list-branch | jq -cS 'map(del(.created, .created_ns))'; }
head_of() { pf "$1" --json list-branch | jq -r --arg b "$2" '.[] | select(.name == $b) | .head'; }
ids_of() { pf "$1" --json list-commit --all | jq -r '.[].id' | sort; }
commit_field() { pf "$1" --json inspect-commit "$2" | jq -r ".$3 // \"\""; }
# id_by_message STORE MESSAGE: the commit with that message.
id_by_message() {
  pf "$1" --json list-commit --all | jq -r --arg m "$2" '[.[] | select(.message == $m)][0].id'
}

# extract STORE COMMIT DIR: the commit's files into the new directory DIR.
extract() {
  mkdir -p "$3"
  pf "$1" get-file -c "$2" -r . "$3" 2>"$LOCAL/extract.err" ||
    { fail "get-file -r of $2 in $1: $(cat "$LOCAL/extract.err")"; return 1; }
}
# Trees of source commits are extracted once (commits never change).
CACHE=$LOCAL/cache
src_tree() {  # src_tree STORE COMMIT: prints a directory with the commit's files
  local d
  d=$CACHE/$(echo "$1" | tr / _)/$2
  [ -d "$d" ] || extract "$1" "$2" "$d" >/dev/null || true
  echo "$d"
}
# same_dirs WHAT A B: diff -r, the differences in the failure message.
same_dirs() {
  if diff -r "$2" "$3" >"$LOCAL/diff.out" 2>&1; then ok
  else fail "$1: trees differ: $(head -c 600 "$LOCAL/diff.out")"; fi
}
# same_files WHAT STORE1 COMMIT1 STORE2 COMMIT2: the two commits hold the same files.
same_files() {
  local got=$LOCAL/got.$RANDOM
  extract "$4" "$5" "$got" || return 0
  same_dirs "$1" "$(src_tree "$2" "$3")" "$got"
  rm -rf "$got"
}
# fsck_clean STORE WHAT: no problems and no leftovers.
fsck_clean() {
  local out st=0
  out=$(pf "$1" --json fsck 2>&1) || st=$?
  expect_eq "$2: fsck exit" 0 "$st"
  expect_eq "$2: fsck problems and leftovers" "true [] []" \
    "$(jq -r '"\(.ok) \(.problems | tostring) \(.leftovers | tostring)"' <<<"$out" 2>/dev/null || echo "$out")"
}
# same_stores SRC DST WHAT [repair|new]: every commit (ids, parents, merge
# parents, branches, times, messages, sizes), every branch head, every file
# of every commit equal; fsck clean on DST. With "repair" (after a kill)
# leftovers are allowed, and fsck --repair must remove them.
# With "new" only the commits not compared on DST before have their files
# compared (to keep the test fast; the last comparison of each is full).
declare -A COMPARED=()
same_stores() {
  local id
  expect_eq "$3: list-commit --all" "$(commits_text "$1")" "$(commits_text "$2")"
  expect_eq "$3: list-branch" "$(branches_text "$1")" "$(branches_text "$2")"
  for id in $(ids_of "$1"); do
    [ "${4:-}" = new ] && [ -n "${COMPARED[$2 $id]:-}" ] && continue
    same_files "$3: files of $id" "$1" "$id" "$2" "$id"
    COMPARED[$2 $id]=1
  done
  if [ "${4:-}" = repair ]; then
    no_problems "$2" "$3"
    expect_status 0 pf "$2" fsck --repair
  fi
  fsck_clean "$2" "$3"
}
# What a refused receive must leave as it was: the commits, the branches,
# the store's files (but lock files, which any command may make), and the
# directory around the store.
state_of() {
  commits_text "$1"
  branches_text "$1"
  (cd "$1" && find . -path ./locks -prune -o -print | sort)
  ls -A "$(dirname "$1")"
}
# no_problems STORE WHAT: fsck finds no problems (leftovers are allowed).
no_problems() {
  local out st=0
  out=$(pf "$1" --json fsck 2>&1) || st=$?
  expect_eq "$2: fsck finds no problems" "0 true []" \
    "$st $(jq -r '"\(.ok) \(.problems | tostring)"' <<<"$out" 2>/dev/null || echo "$out")"
  jq -r '.leftovers[] | "  leftover: \(.)"' <<<"$out" >&2 2>/dev/null || true
}
json_list() { jq -r "$1 | join(\" \")" <<<"$OUT" 2>/dev/null || echo "no JSON: [$OUT]"; }

