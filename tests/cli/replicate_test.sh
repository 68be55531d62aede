#!/usr/bin/env bash
# Replication between local stores, end to end, with both backends at once:
# clone in all four directions (btrfs and portable, each way) of a history
# with branches, a merge, deletes, an empty file, a big file and names with
# spaces; incremental push and pull that send only the missing commits;
# diverged and dirty destination branches refused unless -f, and of two
# concurrent pushes one wins; send and receive on their own, full and
# incremental, onto dirty branches, without the parent and against the
# wrong base. Hostile streams and btrfs-progs: replicate_streams_test.sh;
# transfers killed mid-way: replicate_interrupted_test.sh.
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

# ---- 1. clone in all four directions -------------------------------------------------
# c-<from><to>: b for btrfs, p for portable.
declare -A SRC_OF=([bb]=$SB [bp]=$SB [pb]=$SP [pp]=$SP)
declare -A DST_OF=([bb]=$BT/c-bb [bp]=$PT/c-bp [pb]=$BT/c-pb [pp]=$PT/c-pp)
declare -A BACKEND_OF=([b]=btrfs [p]=portable)
PAIRS="bb bp pb pp"
for k in $PAIRS; do
  section "clone $k"
  src=${SRC_OF[$k]} dst=${DST_OF[$k]}
  expect_status 0 "$PACHCTL" --store "$src" --json clone "$src" "$dst"   # auto: by file system
  expect_eq "clone $k: every commit sent" "$(ids_of "$src" | tr '\n' ' ')" \
    "$(jq -r '.commits[]' <<<"$OUT" | sort | tr '\n' ' ')"
  expect_eq "clone $k: branches updated" "dev master" "$(json_list '.updated | sort')"
  expect_eq "clone $k: backend" "Backend:  ${BACKEND_OF[${k:1:1}]}" "$(pf "$dst" status | grep '^Backend:')"
  # Parents are sent before their children.
  order=$(jq -r '.commits[]' <<<"$OUT")
  bad=0
  for id in $order; do
    for p in $(commit_field "$src" "$id" parent) $(commit_field "$src" "$id" merge_parent); do
      before=$(sed -n "/^$id\$/q;p" <<<"$order")
      grep -qx "$p" <<<"$before" || { bad=1; echo "clone $k: $id sent before its parent $p" >&2; }
    done
  done
  expect_eq "clone $k: parents first" 0 "$bad"
  same_stores "$src" "$dst" "clone $k"
done
expect_status 4 pf "$SB" clone "$SB" "$BT/c-bb"
expect_contains "clone into a store with commits: the way out" "pull" "$ERR"
expect_status 3 "$PACHCTL" clone "$BT/nothing-here" "$PT/c-none"
expect_status 3 pf "$SB" push "$PT/nothing-here"
# clone -b: that branch and the history it reaches, nothing else.
expect_status 0 "$PACHCTL" --json clone -b dev "$SB" "$PT/c-dev"
expect_eq "clone -b dev: the commits dev reaches" "$(pf "$SB" --json log -b dev | jq -r '.[].id' | sort | tr '\n' ' ')" \
  "$(ids_of "$PT/c-dev" | tr '\n' ' ')"
expect_eq "clone -b dev: updated" "dev" "$(json_list .updated)"
expect_eq "clone -b dev: dev's head" "$(head_of "$SB" dev)" "$(head_of "$PT/c-dev" dev)"
expect_eq "clone -b dev: master has no commit" "null" "$(head_of "$PT/c-dev" master)"
same_files "clone -b dev: files" "$SB" "$(head_of "$SB" dev)" "$PT/c-dev" "$(head_of "$SB" dev)"

# ---- 2. incremental push and pull ----------------------------------------------------------
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
# Both send only the changed 4 KiB blocks (the kernel; pfs's own writer
# compares the two versions block by block).
declare -A SMALL=([b]=$((16 << 10)) [p]=$((16 << 10)))
for s in b p; do
  section "incremental push and pull from $s"
  src=${SRC_OF[${s}b]}
  more_commits "$src" "push-1"
  for k in ${s}b ${s}p; do
    dst=${DST_OF[$k]}
    expect_status 0 pf "$src" --json push "$dst"
    expect_eq "push $k: exactly the new commits, parent first" "$NEW" "$(json_list .commits)"
    bytes=$(jq .bytes <<<"$OUT")
    echo "push $k: 2 commits, 4 KiB changed: $bytes bytes sent" >&2
    [ "$bytes" -gt 4096 ] && [ "$bytes" -lt "${SMALL[$s]}" ] && ok ||
      fail "push $k: a 4 KiB change sent $bytes bytes (want 4 KiB to ${SMALL[$s]})"
    expect_eq "push $k: updated" "master" "$(json_list .updated)"
    expect_eq "push $k: up to date" "dev" "$(json_list .up_to_date)"
    same_stores "$src" "$dst" "push $k" new
    expect_status 0 pf "$src" --json push "$dst"
    expect_eq "push $k again: nothing sent" "0 0" "$(jq -r '"\(.commits | length) \(.bytes)"' <<<"$OUT")"
    expect_eq "push $k again: up to date" "dev master" "$(json_list '.up_to_date | sort')"
    expect_eq "push $k again: nothing updated" "" "$(json_list .updated)"
  done
  more_commits "$src" "pull-1"
  for k in ${s}b ${s}p; do
    dst=${DST_OF[$k]}
    expect_status 0 pf "$dst" --json pull "$src"
    expect_eq "pull $k: exactly the new commits, parent first" "$NEW" "$(json_list .commits)"
    bytes=$(jq .bytes <<<"$OUT")
    [ "$bytes" -gt 4096 ] && [ "$bytes" -lt "${SMALL[$s]}" ] && ok ||
      fail "pull $k: a 4 KiB change sent $bytes bytes (want 4 KiB to ${SMALL[$s]})"
    expect_eq "pull $k: updated" "master" "$(json_list .updated)"
    same_stores "$src" "$dst" "pull $k" new
    expect_status 0 pf "$dst" --json pull "$src"
    expect_eq "pull $k again: nothing sent" "0 0" "$(jq -r '"\(.commits | length) \(.bytes)"' <<<"$OUT")"
    expect_eq "pull $k again: up to date" "dev master" "$(json_list '.up_to_date | sort')"
  done
  # -b dev: only what dev reaches travels; master stays where it was.
  more_commits "$src" "master-only"
  master_new=$NEW
  printf 'dev 3\n' | pf "$src" put-file -b dev dev/three.txt >/dev/null
  d3=$(pf "$src" commit -b dev -m "dev 3")
  printf 'dev 4\n' | pf "$src" put-file -b dev dev/four.txt >/dev/null
  d4=$(pf "$src" commit -b dev -m "dev 4")
  k=${s}b
  dst=${DST_OF[$k]}
  old_master=$(head_of "$dst" master)
  expect_status 0 pf "$src" --json push -b dev "$dst"
  expect_eq "push -b dev $k: only dev's commits" "$d3 $d4" "$(json_list .commits)"
  expect_eq "push -b dev $k: updated" "dev" "$(json_list .updated)"
  expect_eq "push -b dev $k: dev moved" "$d4" "$(head_of "$dst" dev)"
  expect_eq "push -b dev $k: master stays" "$old_master" "$(head_of "$dst" master)"
  for id in $master_new; do
    expect_status 3 pf "$dst" inspect-commit "$id"
  done
  k=${s}p
  dst=${DST_OF[$k]}
  old_master=$(head_of "$dst" master)
  expect_status 0 pf "$dst" --json pull -b dev "$src"
  expect_eq "pull -b dev $k: only dev's commits" "$d3 $d4" "$(json_list .commits)"
  expect_eq "pull -b dev $k: master stays" "$old_master" "$(head_of "$dst" master)"
  for k in ${s}b ${s}p; do
    expect_status 0 pf "$src" --json push "${DST_OF[$k]}"
    expect_eq "push after -b dev $k: the rest" "$master_new" "$(json_list .commits)"
    same_stores "$src" "${DST_OF[$k]}" "push after -b dev $k"
  done
done

# ---- 3. diverged and dirty destination branches ----------------------------------------
for k in bp pb; do
  section "divergence $k"
  src=${SRC_OF[$k]} dst=${DST_OF[$k]}
  printf 'only here\n' | pf "$dst" put-file local.txt >/dev/null
  L=$(pf "$dst" commit -m "a commit of the destination's own")
  more_commits "$src" diverge  # (the same files in both sources, as replicate_streams_test.sh makes them)
  printf 'dev 5\n' | pf "$src" put-file -b dev dev/five.txt >/dev/null
  D5=$(pf "$src" commit -b dev -m "dev 5 $k")
  if [ "$k" = bp ]; then
    expect_status 5 pf "$src" --json push "$dst"
  else
    expect_status 5 pf "$dst" --json pull "$src"
  fi
  expect_contains "diverged $k: says which branch" '"master"' "$ERR"
  expect_eq "diverged $k: message starts with pachctl:" "pachctl:" "${ERR:0:8}"
  expect_eq "diverged $k: master stays at its own commit" "$L" "$(head_of "$dst" master)"
  expect_eq "diverged $k: dev still updated" "$D5" "$(head_of "$dst" dev)"
  expect_eq "diverged $k: --json lists one refused branch" 1 \
    "$(jq '.refused | length' <<<"$OUT" 2>/dev/null || echo "no JSON on stdout: [$OUT]")"
  expect_contains "diverged $k: --json says master was refused" "master" "$(jq -r '.refused[0]' <<<"$OUT" 2>/dev/null)"
  expect_eq "diverged $k: --json says what was updated" "dev" "$(json_list .updated)"
  expect_eq "diverged $k: its own commit is kept" "$L" "$(commit_field "$dst" "$L" id)"
  if [ "$k" = bp ]; then
    expect_status 0 pf "$src" --json push -f "$dst"
  else
    expect_status 0 pf "$dst" --json pull -f "$src"
  fi
  expect_eq "diverged $k, -f: master moves" "$(head_of "$src" master)" "$(head_of "$dst" master)"
  expect_eq "diverged $k, -f: updated" "master" "$(json_list .updated)"
  expect_eq "diverged $k, -f: its own commit stays in the store" "$L" "$(commit_field "$dst" "$L" id)"

  # Uncommitted changes on the destination's dev.
  printf 'uncommitted\n' | pf "$dst" put-file -b dev wip.txt >/dev/null
  printf 'dev 6\n' | pf "$src" put-file -b dev dev/six.txt >/dev/null
  D6=$(pf "$src" commit -b dev -m "dev 6 $k")
  if [ "$k" = bp ]; then
    expect_status 5 pf "$src" push "$dst"
  else
    expect_status 5 pf "$dst" pull "$src"
  fi
  expect_contains "dirty $k: says why" "uncommitted" "$ERR"
  expect_eq "dirty $k: dev stays" "$D5" "$(head_of "$dst" dev)"
  expect_eq "dirty $k: the change is kept" "uncommitted" "$(pf "$dst" get-file -b dev wip.txt 2>&1)"
  if [ "$k" = bp ]; then
    expect_status 0 pf "$src" push -f "$dst"
  else
    expect_status 0 pf "$dst" pull -f "$src"
  fi
  expect_eq "dirty $k, -f: dev moves" "$D6" "$(head_of "$dst" dev)"
  expect_status 3 pf "$dst" get-file -b dev wip.txt
  # Everything of the source is there; the destination has one commit more.
  expect_eq "after -f $k: every commit of the source" "" \
    "$(comm -23 <(ids_of "$src") <(ids_of "$dst") | tr '\n' ' ')"
  expect_eq "after -f $k: and its own" "$L" "$(comm -13 <(ids_of "$src") <(ids_of "$dst") | tr '\n' ' ' | sed 's/ $//')"
  for id in $(ids_of "$src"); do same_files "after -f $k: files of $id" "$src" "$id" "$dst" "$id"; done
  expect_eq "after -f $k: branches" "$(branches_text "$src")" "$(branches_text "$dst")"
  fsck_clean "$dst" "after -f $k"
done

# Two pushes of diverging commits to one store at once: branch heads move by
# compare-and-swap, so exactly one wins and the other is refused.
section "concurrent pushes"
for k in x y d; do "$PACHCTL" clone "$SB" "$(dir_of portable)/cas-$k" >/dev/null; done
X=$PT/cas-x Y=$PT/cas-y CD=$PT/cas-d
printf 'x\n' | pf "$X" put-file cas.txt >/dev/null
CX=$(pf "$X" commit -m "from x")
printf 'y\n' | pf "$Y" put-file cas.txt >/dev/null
CY=$(pf "$Y" commit -m "from y")
"$PACHCTL" --store "$X" push "$CD" >/dev/null 2>"$LOCAL/cas-x.err" &
px=$!
PIDS+=("$px")
"$PACHCTL" --store "$Y" push "$CD" >/dev/null 2>"$LOCAL/cas-y.err" &
py=$!
PIDS+=("$py")
sx=0 sy=0
wait "$px" || sx=$?
wait "$py" || sy=$?
expect_eq "concurrent pushes: one wins, one is refused" "0 5" "$(printf '%s\n' "$sx" "$sy" | sort | tr '\n' ' ' | sed 's/ $//')"
h=$(head_of "$CD" master)
if [ "$sx" = 0 ]; then win=$CX; loser=$Y; else win=$CY; loser=$X; fi
expect_eq "concurrent pushes: master is the winner's" "$win" "$h"
expect_contains "concurrent pushes: the loser says why" "master" "$(cat "$LOCAL/cas-x.err" "$LOCAL/cas-y.err")"
fsck_clean "$CD" "concurrent pushes"
expect_status 0 pf "$loser" push -f "$CD"
expect_eq "concurrent pushes: the loser with -f" "$(head_of "$loser" master)" "$(head_of "$CD" master)"

# ---- 4. send and receive -----------------------------------------------------------------
section "send and receive"
# Every clone has all of its source's commits again.
for k in $PAIRS; do
  pf "${SRC_OF[$k]}" push -f "${DST_OF[$k]}" >/dev/null && ok || fail "push -f to clone $k"
done
new_store btrfs "$BT/halves"
new_store portable "$PT/halves"
declare -A HALVES=([b]=$BT/halves [p]=$PT/halves)
for s in b p; do
  src=${SRC_OF[${s}b]}
  M=$(head_of "$src" master)
  MP=$(commit_field "$src" "$M" parent)
  for mode in native tree; do
    [ "$s" = p ] && [ "$mode" = tree ] && continue  # the portable backend always writes it from the tree
    native=1
    [ "$mode" = tree ] && native=0
    tag=$s-$mode
    PFS_SEND_NATIVE=$native pf "$src" send "$M" > "$LOCAL/full.$tag"
    PFS_SEND_NATIVE=$native pf "$src" send -p "$MP" "$M" > "$LOCAL/inc.$tag"
    full=$(stat -c %s "$LOCAL/full.$tag") inc=$(stat -c %s "$LOCAL/inc.$tag")
    [ "$inc" -lt $((full / 10)) ] && ok || fail "send $tag: incremental $inc bytes, full $full"
    "$STREAM_TOOL" dump <"$LOCAL/full.$tag" >/dev/null 2>&1 && ok || fail "send $tag: a valid stream"
    for r in b p; do
      rs=${HALVES[$r]}
      what="send $tag | receive into $r"
      expect_status 0 pf "$rs" receive -b "copy-$tag" <"$LOCAL/full.$tag"
      R=$OUT
      [[ $R =~ ^[0-9a-f]{32}$ ]] && ok || fail "$what: prints the new id, got [$R]"
      expect_eq "$what: branch at it" "$R" "$(head_of "$rs" "copy-$tag")"
      same_files "$what" "$src" "$M" "$rs" "$R"
      # Onto a branch with uncommitted changes: refused, the changes kept.
      printf 'wip\n' | pf "$rs" put-file -b "copy-$tag" wip.txt >/dev/null
      expect_status 5 pf "$rs" receive -b "copy-$tag" <"$LOCAL/full.$tag"
      expect_eq "$what: onto a dirty branch: head stays" "$R" "$(head_of "$rs" "copy-$tag")"
      expect_eq "$what: onto a dirty branch: the change kept" "wip" "$(pf "$rs" get-file -b "copy-$tag" wip.txt)"
      # The incremental stream names MP, which this store lacks.
      before=$(commits_text "$rs")
      expect_status 3 pf "$rs" receive -b "inc-$tag" <"$LOCAL/inc.$tag"
      expect_contains "$what: incremental without its parent: names it" "$MP" "$ERR"
      expect_eq "$what: incremental without its parent: message" "pachctl:" "${ERR:0:8}"
      expect_eq "$what: incremental without its parent: nothing changed" "$before" "$(commits_text "$rs")"
      # With the parent received first and named with -p.
      BASE=$(PFS_SEND_NATIVE=$native pf "$src" send "$MP" | pf "$rs" receive -b "base-$tag") ||
        fail "$what: send $MP | receive"
      expect_status 0 pf "$rs" receive -b "base-$tag" -p "$BASE" <"$LOCAL/inc.$tag"
      expect_eq "$what: -p: parent" "$BASE" "$(commit_field "$rs" "$OUT" parent)"
      same_files "$what: -p" "$src" "$M" "$rs" "$OUT"
      fsck_clean "$rs" "$what"
      # Into a clone, which has MP by its id: no -p needed. (The new commit
      # goes on top of the branch's head, here MP.)
      c=${DST_OF[${s}$r]}
      pf "$c" branch "inc-$tag" "$MP" >/dev/null
      expect_status 0 pf "$c" receive -b "inc-$tag" <"$LOCAL/inc.$tag"
      expect_eq "$what: into a clone: parent" "$MP" "$(commit_field "$c" "$OUT" parent)"
      same_files "$what: into a clone" "$src" "$M" "$c" "$OUT"
      # Against a commit that is not an ancestor (dev's head).
      DV=$(head_of "$src" dev)
      pf "$c" branch "side-$tag" "$DV" >/dev/null
      PFS_SEND_NATIVE=$native pf "$src" send -p "$DV" "$M" > "$LOCAL/side.$tag"
      expect_status 0 pf "$c" receive -b "side-$tag" <"$LOCAL/side.$tag"
      same_files "$what: against dev's head" "$src" "$M" "$c" "$OUT"
      # Against the wrong base (-p names a commit the stream does not fit).
      before=$(state_of "$rs")
      expect_status 2 pf "$rs" receive -b "wrong-$tag" -p "$R" <"$LOCAL/side.$tag"
      expect_eq "$what: against the wrong base: message" "pachctl:" "${ERR:0:8}"
      expect_eq "$what: against the wrong base: nothing changed" "$before" "$(state_of "$rs")"
    done
  done
done
cmp -s "$LOCAL/full.b-native" "$LOCAL/full.b-tree" && fail "PFS_SEND_NATIVE=0 made no difference" || ok

finish
