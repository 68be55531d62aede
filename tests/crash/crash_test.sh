#!/usr/bin/env bash
# Crash points: the process dies (as if the power failed) inside every
# multi-step operation, at each step. Afterwards readers see the old state or
# the new, never a mix; fsck finds no damage; the next write (or fsck
# --repair) clears the leftovers; nothing acknowledged before is lost.
source "$(dirname "$0")/../cli/lib.sh"

crash() {  # crash POINT CMD...: runs CMD, which must die at POINT
  local point=$1; shift
  local got=0
  PFS_CRASH_AT=$point "$@" >/dev/null 2>&1 || got=$?
  if [ "$got" == 99 ]; then ok; else fail "crash point $point not reached (exit $got)"; fi
}
tree() { pachctl list-file "$@" -R --json | jq -c '[.[] | [.path, .size]]'; }
fsck_clean_after_write() {
  expect_status 0 pachctl fsck
  expect_contains "no damage" "problems: 0," "$OUT"
  expect_status 0 pachctl fsck --repair
  expect_status 0 pachctl fsck
  expect_contains "clean" "problems: 0, leftovers: 0" "$OUT"
}
fresh() {
  export PFS_STORE=$T/store-$1
  pachctl init >/dev/null
  echo base | pachctl put-file base.txt
  BASE=$(pachctl commit -m base)
  echo more | pachctl put-file more.txt
}

# commit: before and after the commit point
for point in commit.after-intent snapshot.after-create commit.after-snapshot; do
  fresh "$point"
  crash "$point" "$PACHCTL" commit -m crashed
  expect_eq "$point: head unchanged" "$BASE" "$(pachctl inspect-commit --json master | jq -r .id)"
  expect_eq "$point: log unchanged" 1 "$(pachctl log --json | jq length)"
  fsck_clean_after_write
  expect_eq "$point: work kept" "more" "$(pachctl get-file more.txt)"
  C=$(pachctl commit -m again)
  expect_eq "$point: commit works after" "more" "$(pachctl get-file -c "$C" more.txt)"
done
fresh commit.after-meta
crash commit.after-meta "$PACHCTL" commit -m crashed
expect_status 0 pachctl fsck
echo x | pachctl put-file x.txt   # the next write rolls the commit forward
expect_eq "after-meta: committed" "crashed" "$(pachctl inspect-commit --json master | jq -r .message)"
expect_eq "after-meta: content" "more" "$(pachctl get-file -c master more.txt)"
fsck_clean_after_write

# put-file: the file either is there whole or not at all; figures recounted
fresh put
crash put.after-publish "$PACHCTL" put-file new.txt /etc/os-release
pachctl fsck --repair >/dev/null
expect_eq "put: whole file" "$(cat /etc/os-release)" "$(pachctl get-file new.txt)"
expect_eq "put: figures" 3 "$(pachctl list-branch --json | jq '.[0].files')"
fsck_clean_after_write

# delete-file
fresh delete
crash delete.after-remove "$PACHCTL" delete-file base.txt
expect_status 3 pachctl get-file base.txt
pachctl fsck --repair >/dev/null
expect_eq "delete: figures" 1 "$(pachctl list-branch --json | jq '.[0].files')"
fsck_clean_after_write

# branch: the branch exists whole or not at all
fresh branch
crash branch.after-tree "$PACHCTL" branch dev
expect_status 3 pachctl list-file -b dev
fsck_clean_after_write
expect_status 0 pachctl branch dev
expect_eq "branch: usable after" "base" "$(pachctl get-file -b dev base.txt)"

# delete-branch
fresh delete-branch
pachctl branch dev
crash delete-branch.after-meta "$PACHCTL" delete-branch dev
expect_status 3 pachctl list-file -b dev
fsck_clean_after_write

# delete-commit
fresh delete-commit
pachctl branch tmp && T1=$(pachctl commit -b tmp) && pachctl delete-branch tmp
crash delete-commit.after-meta "$PACHCTL" delete-commit "$T1"
expect_status 3 pachctl inspect-commit "$T1"
fsck_clean_after_write

# revert and merge: rolled back before the commit point, forward after it
for point in reset.before-exchange work.after-freeze; do
  fresh "revert-$point"
  pachctl commit >/dev/null
  before=$(tree)
  crash "$point" "$PACHCTL" revert "$BASE"
  if [ "$point" = work.after-freeze ]; then
    expect_eq "revert $point: rolled back" "$before" "$(tree)"
    expect_eq "revert $point: head" 2 "$(pachctl log --json | jq length)"
  fi
  fsck_clean_after_write
done
for point in work.after-meta reset.after-exchange; do
  fresh "revert-$point"
  pachctl commit >/dev/null
  crash "$point" "$PACHCTL" revert "$BASE"
  pachctl fsck --repair >/dev/null
  expect_eq "revert $point: rolled forward" "revert to $BASE" "$(pachctl inspect-commit --json master | jq -r .message)"
  expect_eq "revert $point: tree" '[["base.txt",5]]' "$(tree)"
  fsck_clean_after_write
done
for point in work.after-freeze work.after-meta; do
  fresh "merge-$point"
  pachctl commit >/dev/null
  pachctl branch dev && echo d | pachctl put-file -b dev d.txt && pachctl commit -b dev >/dev/null
  crash "$point" "$PACHCTL" merge dev
  pachctl fsck --repair >/dev/null
  if [ "$point" = work.after-meta ]; then
    expect_eq "merge $point: forward" "d" "$(pachctl get-file d.txt)"
  else
    expect_status 3 pachctl get-file d.txt
    expect_eq "merge $point: retry works" 1 "$(pachctl merge dev >/dev/null && pachctl get-file d.txt | wc -l)"
  fi
  fsck_clean_after_write
done
# Portable backend: objects synced but not yet renamed, or stored but not yet
# referenced by the branch: the write is not visible; gc or fsck --repair
# clears what it left.
if [ "$BACKEND" = portable ]; then
  for point in objects.before-rename portable.before-ref; do
    fresh "portable-$point"
    crash "$point" "$PACHCTL" put-file new.txt /etc/os-release
    expect_status 3 pachctl get-file new.txt
    expect_eq "$point: work kept" "more" "$(pachctl get-file more.txt)"
    fsck_clean_after_write
    expect_status 0 pachctl put-file new.txt /etc/os-release
    expect_eq "$point: put works after" "$(cat /etc/os-release)" "$(pachctl get-file new.txt)"
    fsck_clean_after_write
  done
fi

# An upload in flight when a commit is taken: the commit holds none of its
# bytes; the upload still lands afterwards.
fresh inflight
mkfifo "$LOCAL/fifo"
"$PACHCTL" put-file slow.bin < "$LOCAL/fifo" &
up=$!
exec 7>"$LOCAL/fifo"
head -c 1048576 /dev/urandom >&7
sleep 0.3
C=$(pachctl commit -m during)
if [ "$BACKEND" = btrfs ]; then
  [ ! -e "$PFS_STORE/btrfs/commits/$C/.pfs-staging" ] && ok || fail "commit holds staging data"
fi
expect_status 3 pachctl get-file -c "$C" slow.bin
head -c 1048576 /dev/urandom >&7
exec 7>&-
wait $up && ok || fail "upload after commit"
expect_eq "upload landed" 2097152 "$(pachctl list-file --json slow.bin | jq '.[0].size')"

# An upload killed midway leaves nothing visible; the next commit sweeps it.
"$PACHCTL" put-file killed.bin < "$LOCAL/fifo" &
up=$!
exec 7>"$LOCAL/fifo"
# 6 MiB: more than the portable backend's largest chunk, so that some of it
# is already on disk when the upload dies.
head -c $((6 << 20)) /dev/urandom >&7
sleep 0.3
kill -9 $up
wait $up 2>/dev/null || true
exec 7>&-
expect_status 3 pachctl get-file killed.bin
if [ "$BACKEND" = btrfs ]; then
  staged=$(ls -A "$PFS_STORE/btrfs/branches/master/.pfs-staging" | wc -l)
  expect_eq "the killed upload's staging item is there" 1 "$staged"
  pachctl commit >/dev/null
  expect_eq "swept by the commit" 0 "$(ls -A "$PFS_STORE/btrfs/branches/master/.pfs-staging" | wc -l)"
else
  temps() { find "$PFS_STORE/portable/objects" -name '.tmp.*' | wc -l; }
  [ "$(temps)" -ge 1 ] && ok || fail "the killed upload left its temporary objects"
  expect_status 0 pachctl gc
  expect_eq "gc removed them" 0 "$(temps)"
fi
fsck_clean_after_write

# receive: before its commit point nothing is there (the next receive or
# fsck --repair sweeps the work); after it the commit is whole. set-head:
# after its one synced write the branch is at the new head for good.
for point in receive.after-work-tree receive.after-freeze; do
  fresh "$point"
  pachctl send master > "$LOCAL/s.stream"
  export PFS_STORE=$T/store-$point-dst
  pachctl init >/dev/null
  before=$(pachctl log -a --json | jq -c .)
  crash "$point" "$PACHCTL" receive -b got < "$LOCAL/s.stream"
  expect_eq "$point: no commit" "$before" "$(pachctl log -a --json | jq -c .)"
  expect_eq "$point: no branch" "" "$(pachctl list-branch --json | jq -r '.[] | select(.name == "got") | .name')"
  expect_status 0 pachctl fsck
  expect_contains "$point: leftover reported" "interrupted" "$OUT"
  C=$(pachctl receive -b got < "$LOCAL/s.stream")
  expect_eq "$point: received after" "base" "$(pachctl get-file -c "$C" base.txt)"
  expect_status 0 pachctl fsck
  expect_contains "$point: swept" "problems: 0, leftovers: 0" "$OUT"
done
for point in receive.after-meta set-head.after-state set-head.after-reset; do
  fresh "$point"
  pachctl send master > "$LOCAL/s.stream"
  export PFS_STORE=$T/store-$point-dst
  pachctl init >/dev/null
  echo old | pachctl put-file old.txt
  pachctl commit -b master >/dev/null
  OLD=$(pachctl inspect-commit --json master | jq -r .id)
  crash "$point" "$PACHCTL" receive -b master < "$LOCAL/s.stream"
  new=$(pachctl log -a --json | jq -r --arg o "$OLD" '.[] | select(.id != $o) | .id')
  expect_eq "$point: the commit is there" "base" "$(pachctl get-file -c "$new" base.txt)"
  echo x | pachctl put-file -b master x.txt 2>/dev/null || true  # the next write recovers
  if [ "$point" = receive.after-meta ]; then
    expect_eq "$point: head not moved" "$OLD" "$(pachctl inspect-commit --json master | jq -r .id)"
  else
    expect_eq "$point: head moved" "$new" "$(pachctl inspect-commit --json master | jq -r .id)"
    expect_eq "$point: working tree reset" "base" "$(pachctl get-file -b master base.txt)"
    expect_status 3 pachctl get-file -b master old.txt
  fi
  fsck_clean_after_write
done
finish
