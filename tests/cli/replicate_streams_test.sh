#!/usr/bin/env bash
# Replication streams that are not pachctl's own, end to end, with both
# backends at once: hostile, truncated, bit-flipped and garbage streams
# refused with the store untouched and nothing written outside it; and
# interop with btrfs-progs both ways (pachctl send | btrfs receive, btrfs
# send | pachctl receive), hard links changed through one name included.
# The sources are the history of replicate_test.sh, master as it leaves it.
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
STREAM_TOOL=${STREAM_TOOL:?}

on_exit() {
  cleanup
  if [ "$OWN_SCRATCH" = 1 ]; then scratch_cleanup; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

source "$HERE/replicate_lib.sh"
# ---- the history ----------------------------------------------------------------
# Content is the same on every run and in both sources, so that the two
# backends' results can be compared file for file and sizes are stable.
seq -f 'line %08g of the big file, the same on every run' 1 26000 > "$LOCAL/big.bin"  # 1.4 MiB
[ "$(stat -c %s "$LOCAL/big.bin")" -gt $((1 << 20)) ] && ok || fail "big.bin is not over 1 MiB"
mkdir "$LOCAL/many"   # 100 small files in one directory
for i in $(seq 1 100); do echo "small file $i" > "$LOCAL/many/f$i"; done
MSG2=$'second: "quoted", ünïcode & 100%\nand a second line'
build_history() {
  local s=$1
  printf 'alpha\n' | pf "$s" put-file a.txt >/dev/null
  pf "$s" put-file big.bin "$LOCAL/big.bin" >/dev/null
  pf "$s" put-file empty.txt </dev/null >/dev/null
  printf 'deep\n' | pf "$s" put-file nested/dir/deeper/leaf.txt >/dev/null
  printf 'other\n' | pf "$s" put-file nested/dir/other.txt >/dev/null
  printf 'spaced\n' | pf "$s" put-file "with space/a file name.txt" >/dev/null
  printf 'unicode\n' | pf "$s" put-file "ünï cødé €.txt" >/dev/null
  printf 'inner\n' | pf "$s" put-file kind/inner.txt >/dev/null
  printf 'a file\n' | pf "$s" put-file sort >/dev/null
  pf "$s" put-file -r many "$LOCAL/many" >/dev/null
  pf "$s" commit -m first >/dev/null
  printf 'alpha 2\n' | pf "$s" put-file a.txt >/dev/null
  printf 'temporary\n' | pf "$s" put-file doomed.txt >/dev/null
  pf "$s" commit -m "$MSG2" >/dev/null
  pf "$s" delete-file doomed.txt >/dev/null
  pf "$s" commit -m "third: doomed.txt deleted" >/dev/null
  pf "$s" branch dev >/dev/null
  printf 'dev 1\n' | pf "$s" put-file -b dev dev/one.txt >/dev/null
  pf "$s" commit -b dev -m "dev 1" >/dev/null
  printf 'patched on dev' | pf "$s" put-file -b dev --offset 100000 big.bin >/dev/null
  pf "$s" delete-file -b dev nested/dir/deeper/leaf.txt >/dev/null
  pf "$s" commit -b dev -m "dev 2" >/dev/null
  printf 'master 4\n' | pf "$s" put-file master4.txt >/dev/null
  pf "$s" commit -m fourth >/dev/null
  pf "$s" delete-file kind >/dev/null
  printf 'now a file\n' | pf "$s" put-file kind >/dev/null
  pf "$s" delete-file sort >/dev/null
  printf 'now a directory\n' | pf "$s" put-file sort/inner.txt >/dev/null
  pf "$s" commit -m "fifth: a directory becomes a file, a file a directory" >/dev/null
  pf "$s" merge -m "merge dev" dev >/dev/null
  printf 'after the merge\n' | pf "$s" put-file after.txt >/dev/null
  pf "$s" commit -m "after the merge" >/dev/null
}
section "the sources"
SB=$BT/src SP=$PT/src
for b in btrfs portable; do
  s=$(dir_of $b)/src
  new_store $b "$s"
  build_history "$s"
  expect_eq "source $b: backend" "Backend:  $b" "$(pf "$s" status | grep '^Backend:')"
  expect_eq "source $b: commits" 9 "$(pf "$s" --json list-commit --all | jq length)"
  expect_eq "source $b: one merge commit" "merge dev" \
    "$(pf "$s" --json list-commit --all | jq -r '.[] | select(.merge_parent != null) | .message')"
  expect_eq "source $b: the message" "$MSG2" "$(commit_field "$s" "$(id_by_message "$s" "$MSG2")" message)"
  d=$LOCAL/master.$b
  extract "$s" master "$d"
  expect_eq "source $b: master's files" \
    "$(printf '%s\n' a.txt after.txt big.bin dev/one.txt empty.txt kind master4.txt nested/dir/other.txt \
       sort/inner.txt "with space/a file name.txt" "ünï cødé €.txt")" \
    "$(cd "$d" && find . -path ./many -prune -o -type f -print | sed 's|^\./||' | sort)"
  expect_eq "source $b: many files" 100 "$(find "$d/many" -type f | wc -l)"
  expect_eq "source $b: the empty file" 0 "$(stat -c %s "$d/empty.txt")"
  expect_eq "source $b: the patched big file" "patched on dev" "$(dd if="$d/big.bin" bs=1 skip=100000 count=14 status=none)"
  rm -rf "$d"
done

# more_commits STORE TAG: two commits on master (4 KiB changed inside
# big.bin, then a new file); sets NEW to their ids, oldest first.
more_commits() {
  local s=$1 tag=$2 c1 c2
  seq -f "$tag %08g" 1 1000 > "$LOCAL/lines"
  head -c 4096 "$LOCAL/lines" | pf "$s" put-file --offset 600000 big.bin >/dev/null
  c1=$(pf "$s" commit -m "$tag: 4 KiB of big.bin")
  printf '%s\n' "$tag" | pf "$s" put-file "new/$tag.txt" >/dev/null
  c2=$(pf "$s" commit -m "$tag: a new file")
  NEW="$c1 $c2"
}
# The sources' master as replicate_test.sh leaves it (its sections 2 and
# 3): these four more_commits more.
for s in "$SB" "$SP"; do
  for tag in push-1 pull-1 master-only diverge; do more_commits "$s" "$tag"; done
done
declare -A SRC_OF=([bb]=$SB [pb]=$SP)

# ---- 1. bad and hostile streams: exit 2, the store as it was, nothing outside ------------
section "bad and hostile streams"
# Outside every store: what the crafted streams aim at.
outside_state() {
  local f
  for f in /tmp/evil /etc/evil /tmp/x /tmp/a "$BT/evil" "$PT/evil"; do
    [ -e "$f" ] || [ -L "$f" ] && echo "$f exists"
  done
  stat -c '%h %s %Y' /etc/passwd
  sha256sum /etc/passwd
}
OUTSIDE=$(outside_state)
# refused STORE WHAT STREAM-FILE [PARENT]: receive (onto a new branch, or
# with -p PARENT onto branch "real") exits 2 with a pachctl: message, and
# nothing changed: no commit, no branch, no file in or next to the store,
# no leftovers.
refused() {
  local s=$1 what=$2 f=$3 before
  before=$(state_of "$s")
  if [ -n "${4:-}" ]; then
    expect_status 2 pf "$s" receive -b real -p "$4" <"$f"
  else
    expect_status 2 pf "$s" receive -b evil <"$f"
  fi
  expect_eq "$what: message" "pachctl:" "${ERR:0:8}"
  expect_eq "$what: stdout" "" "$OUT"
  expect_eq "$what: the store as it was" "$before" "$(state_of "$s")"
  fsck_clean "$s" "$what"
}
# flip FILE OFFSET OUT: OUT is FILE with one bit of the byte at OFFSET flipped.
flip() {
  local byte
  cp "$1" "$3"
  byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\$(printf %03o $((byte ^ 0x04)))" | dd of="$3" bs=1 seek="$2" conv=notrunc status=none
}
REAL=$LOCAL/real.stream   # a real stream: a commit with the big file, from the btrfs source
pf "$SB" send "$(id_by_message "$SB" first)" > "$REAL"
INC=$LOCAL/inc.stream     # and an incremental one from there to master
INC_TO=$(head_of "$SB" master)
pf "$SB" send -p "$(id_by_message "$SB" first)" "$INC_TO" > "$INC"
size=$(stat -c %s "$REAL")
CUTS="1 4 12 13 16 17 18 20 27 40 64 100"
for ((c = 400; c <= 4000; c += 400)); do CUTS+=" $c"; done
CUTS+=" 100000 $((size / 2)) $((size - 20)) $((size - 10)) $((size - 1))"
FLIPS="2 13 17 21 23 60 1000 $((size / 2)) $((size - 3))"
head -c 300000 /dev/urandom > "$LOCAL/garbage"
{ printf 'btrfs-stream\0\1\0\0\0'; head -c 5000 /dev/urandom; } > "$LOCAL/magic-garbage"
: > "$LOCAL/empty"
for b in btrfs portable; do
  s=$(dir_of $b)/hostile/store
  mkdir -p "$(dirname "$s")"
  new_store $b "$s"
  printf 'keep\n' | pf "$s" put-file keep.txt >/dev/null
  pf "$s" commit -m "before the streams" >/dev/null
  # A good hand-made stream is taken, so the refusals below are about the streams.
  "$STREAM_TOOL" craft ok-small > "$LOCAL/ok-small"
  expect_status 0 pf "$s" receive -b ok <"$LOCAL/ok-small"
  expect_eq "$b: ok-small: d/f" "hello" "$(pf "$s" get-file -c "$OUT" d/f)"
  expect_eq "$b: ok-small: g" 102400 "$(pf "$s" get-file -c "$OUT" g | wc -c)"
  for n in escape-dotdot escape-abs symlink-dir symlink-parent rename-escape link-escape clone-escape \
    huge-truncate no-end two-subvols write-to-dir; do
    "$STREAM_TOOL" craft "$n" > "$LOCAL/crafted"
    refused "$s" "$b: crafted $n" "$LOCAL/crafted"
    expect_eq "$b: crafted $n: nothing outside the store" "$OUTSIDE" "$(outside_state)"
  done
  for c in $CUTS; do
    head -c "$c" "$REAL" > "$LOCAL/cut"
    refused "$s" "$b: cut at $c of $size" "$LOCAL/cut"
  done
  for o in $FLIPS; do
    flip "$REAL" "$o" "$LOCAL/flipped"
    refused "$s" "$b: a bit flipped at $o" "$LOCAL/flipped"
  done
  refused "$s" "$b: empty stdin" "$LOCAL/empty"
  refused "$s" "$b: random bytes" "$LOCAL/garbage"
  refused "$s" "$b: the magic, then random bytes" "$LOCAL/magic-garbage"
  # A second stream after a good one.
  cat "$REAL" "$REAL" > "$LOCAL/twice"
  refused "$s" "$b: two streams in one" "$LOCAL/twice"
  # And the real stream itself is fine.
  expect_status 0 pf "$s" receive -b real <"$REAL"
  RR=$OUT
  same_files "$b: the real stream" "$SB" "$(id_by_message "$SB" first)" "$s" "$RR"
  # An incremental stream against it, cut and flipped: the snapshot of the
  # parent it starts from must go too.
  isize=$(stat -c %s "$INC")
  for c in 17 100 200 $((isize / 8)) $((isize / 4)) $((isize / 2)) $((isize * 3 / 4)) $((isize - 11)) $((isize - 1)); do
    head -c "$c" "$INC" > "$LOCAL/cut"
    refused "$s" "$b: incremental cut at $c of $isize" "$LOCAL/cut" "$RR"
  done
  for o in 30 150 $((isize / 3)) $((isize - 3)); do
    flip "$INC" "$o" "$LOCAL/flipped"
    refused "$s" "$b: incremental, a bit flipped at $o" "$LOCAL/flipped" "$RR"
  done
  expect_status 0 pf "$s" receive -b real -p "$RR" <"$INC"
  same_files "$b: the incremental stream" "$SB" "$INC_TO" "$s" "$OUT"
done

# ---- 2. btrfs-progs: pachctl send | btrfs receive, btrfs send | pachctl receive ----------
section "pachctl send | btrfs receive"
# modes DIR: type, mode and size of everything below DIR.
modes() { (cd "$1" && find . -printf '%M %s %p\n' | sort -k3); }
for s in b p; do
  src=${SRC_OF[${s}b]}
  rx=$BT/rx-$s
  mkdir -p "$rx"
  P3=$(id_by_message "$src" "third: doomed.txt deleted")
  M=$(head_of "$src" master)
  pf "$src" send "$P3" | btrfs receive "$rx" >/dev/null 2>"$LOCAL/rx.err" && ok ||
    fail "send $s | btrfs receive: $(cat "$LOCAL/rx.err")"
  same_dirs "send $s | btrfs receive: files" "$(src_tree "$src" "$P3")" "$rx/$P3"
  pf "$src" send -p "$P3" "$M" | btrfs receive "$rx" >/dev/null 2>"$LOCAL/rx.err" && ok ||
    fail "send -p $s | btrfs receive: $(cat "$LOCAL/rx.err")"
  same_dirs "send -p $s | btrfs receive: files" "$(src_tree "$src" "$M")" "$rx/$M"
  expect_eq "send -p $s | btrfs receive: read-only" "ro=true" "$(btrfs property get -ts "$rx/$M" ro 2>&1)"
  modes "$rx/$P3" > "$LOCAL/modes-full-$s"
  modes "$rx/$M" > "$LOCAL/modes-inc-$s"
  expect_eq "send $s | btrfs receive: files 644, directories 755" "" \
    "$(grep -v -e '^-rw-r--r-- ' -e '^drwxr-xr-x ' "$LOCAL/modes-full-$s" "$LOCAL/modes-inc-$s" || true)"
done
expect_eq "btrfs receive: the same modes and sizes from both backends (full)" \
  "$(cat "$LOCAL/modes-full-b")" "$(cat "$LOCAL/modes-full-p")"
expect_eq "btrfs receive: the same modes and sizes from both backends (incremental)" \
  "$(cat "$LOCAL/modes-inc-b")" "$(cat "$LOCAL/modes-inc-p")"

section "btrfs send | pachctl receive"
SV=$BT/sv
btrfs subvolume create "$SV" >/dev/null
mkdir -p "$SV/d/e" "$SV/emptydir" "$SV/dir with space"
printf 'hello\n' > "$SV/d/e/f"
printf 'spaced\n' > "$SV/dir with space/x y"
printf '#!/bin/sh\necho hi\n' > "$SV/run.sh"
chmod 755 "$SV/run.sh"
ln -s d/e/f "$SV/link"
mkfifo "$SV/fifo"
printf 'linked\n' > "$SV/h1"
ln "$SV/h1" "$SV/h2"
truncate -s 10M "$SV/sparse"
printf 'in the middle' | dd of="$SV/sparse" bs=1 seek=5000000 conv=notrunc status=none
seq -f 'random-ish %08g' 1 20000 > "$SV/data"
cp --reflink=always "$SV/data" "$SV/data-reflink"   # clone commands in the stream
: > "$SV/empty"
btrfs subvolume snapshot -r "$SV" "$BT/snap1" >/dev/null
printf 'more\n' >> "$SV/d/e/f"
rm "$SV/data"
mv "$SV/d" "$SV/renamed"
printf 'new\n' > "$SV/newfile"
cp --reflink=always "$SV/data-reflink" "$SV/renamed/reflinked-again"
btrfs subvolume snapshot -r "$SV" "$BT/snap2" >/dev/null
btrfs send "$BT/snap1" 2>/dev/null > "$LOCAL/snap1.stream"
btrfs send -p "$BT/snap1" "$BT/snap2" 2>/dev/null > "$LOCAL/snap2.stream"
# The same files as the snapshot, but the symlink and the fifo (skipped).
like_snapshot() {  # like_snapshot WHAT SNAPSHOT STORE COMMIT
  local got=$LOCAL/got.$RANDOM
  extract "$3" "$4" "$got" || return 0
  if diff -r -x link -x fifo "$2" "$got" >"$LOCAL/diff.out" 2>&1; then ok
  else fail "$1: differs from the snapshot: $(head -c 600 "$LOCAL/diff.out")"; fi
  [ ! -e "$got/link" ] && [ ! -L "$got/link" ] && [ ! -e "$got/fifo" ] && ok ||
    fail "$1: the symlink or the fifo was received"
  rm -rf "$got"
}
for b in btrfs portable; do
  s=$(dir_of $b)/imported
  new_store $b "$s"
  expect_status 0 pf "$s" receive -b imp <"$LOCAL/snap1.stream"
  I1=$OUT
  expect_contains "btrfs send | receive ($b): the symlink skipped" 'skipped "link"' "$ERR"
  expect_contains "btrfs send | receive ($b): the fifo skipped" 'skipped "fifo"' "$ERR"
  like_snapshot "btrfs send | receive ($b)" "$BT/snap1" "$s" "$I1"
  before=$(commits_text "$s")
  expect_status 3 pf "$s" receive -b imp <"$LOCAL/snap2.stream"
  expect_eq "btrfs send -p | receive ($b) without -p: nothing changed" "$before" "$(commits_text "$s")"
  expect_status 0 pf "$s" receive -b imp -p "$I1" <"$LOCAL/snap2.stream"
  I2=$OUT
  expect_eq "btrfs send -p | receive -p ($b): parent" "$I1" "$(commit_field "$s" "$I2" parent)"
  like_snapshot "btrfs send -p | receive -p ($b)" "$BT/snap2" "$s" "$I2"
  fsck_clean "$s" "btrfs send | receive ($b)"
done

# A version 2 stream (btrfs send --proto 2) is refused with a message.
# (Where btrfs-progs and the kernel make them.)
if btrfs send --proto 2 "$BT/snap1" 2>/dev/null > "$LOCAL/v2.stream" &&
  [ "$(od -An -tu1 -j 13 -N 1 "$LOCAL/v2.stream" | tr -d ' ')" = 2 ]; then
  s=$PT/imported
  before=$(commits_text "$s")
  expect_status 2 pf "$s" receive -b v2 <"$LOCAL/v2.stream"
  expect_contains "btrfs send --proto 2: says why" "version 2" "$ERR"
  expect_eq "btrfs send --proto 2: nothing changed" "$before" "$(commits_text "$s")"
fi

# A file with several hard links, changed by an incremental stream through
# one of its names, reads changed through every name on btrfs (hard links
# are kept). The portable backend keeps hard links as copies (README,
# Decisions): only the name written to changes there -- asserted as
# documented, so that a change of that behaviour is noticed.
section "hard links changed through one name"
HV=$BT/hv
btrfs subvolume create "$HV" >/dev/null
printf 'base\n' > "$HV/a"
ln "$HV/a" "$HV/b"
printf 'other\n' > "$HV/c"
btrfs subvolume snapshot -r "$HV" "$BT/hsnap1" >/dev/null
printf 'changed\n' >> "$HV/a"
btrfs subvolume snapshot -r "$HV" "$BT/hsnap2" >/dev/null
btrfs send "$BT/hsnap1" 2>/dev/null > "$LOCAL/hsnap1.stream"
btrfs send -p "$BT/hsnap1" "$BT/hsnap2" 2>/dev/null > "$LOCAL/hsnap2.stream"
for b in btrfs portable; do
  s=$(dir_of $b)/hardlinks
  new_store $b "$s"
  expect_status 0 pf "$s" receive -b h <"$LOCAL/hsnap1.stream"
  H1=$OUT
  expect_status 0 pf "$s" receive -b h -p "$H1" <"$LOCAL/hsnap2.stream"
  H2=$OUT
  for f in a b c; do
    want=$(cat "$BT/hsnap2/$f")
    [ $b = portable ] && [ $f = b ] && want=$(cat "$BT/hsnap1/$f")  # a copy: unchanged
    expect_eq "hard link changed through another name in an incremental stream ($b): $f" \
      "$want" "$(pf "$s" get-file -c "$H2" "$f" 2>&1)"
  done
done


finish
