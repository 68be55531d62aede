#!/usr/bin/env bash
# A history several levels deep, with branches off branches and merges: every
# commit reads back exactly as it was made, and logs follow first parents.
source "$(dirname "$0")/lib.sh"
pachctl init >/dev/null

declare -A AT   # commit id -> expected "path=content;..." listing
state() {  # the tree of a ref as path=content lines
  local ref=$1
  pachctl list-file $ref -R --json | jq -r '.[] | select(.type=="file") | .path' | while read -r p; do
    printf '%s=%s;' "$p" "$(pachctl get-file $ref "$p")"
  done
}

for i in 1 2 3 4 5; do
  echo "master $i" | pachctl put-file "m/file$i"
  echo "rev $i" | pachctl put-file shared
  c=$(pachctl commit -m "m$i")
  AT[$c]=$(state "-b master")
  [ $i -eq 2 ] && M2=$c
done
pachctl branch dev "$M2"
for i in 1 2 3; do
  echo "dev $i" | pachctl put-file -b dev "d/file$i"
  c=$(pachctl commit -b dev -m "d$i")
  AT[$c]=$(state "-b dev")
done
pachctl branch feature dev
echo "feature" | pachctl put-file -b feature f/only
pachctl delete-file -b feature m/file1
c=$(pachctl commit -b feature -m f1)
AT[$c]=$(state "-b feature")
c=$(pachctl merge -b dev feature)
AT[$c]=$(state "-b dev")
c=$(pachctl merge dev)
AT[$c]=$(state "-b master")
expect_eq "merged tree" "d/file1=dev 1;d/file2=dev 2;d/file3=dev 3;f/only=feature;m/file2=master 2;m/file3=master 3;m/file4=master 4;m/file5=master 5;shared=rev 5;" "${AT[$c]}"

# Every commit still reads back as it was.
for id in "${!AT[@]}"; do
  expect_eq "commit $id" "${AT[$id]}" "$(state "-c $id")"
done
expect_eq "master log length" 6 "$(pachctl log --json | jq length)"
expect_eq "dev log length" 6 "$(pachctl log -b dev --json | jq length)"
expect_eq "all commits" 11 "$(pachctl log --all --json | jq length)"
expect_eq "log is newest first" "$(pachctl log --json | jq -r '.[].time_ns' | sort -rn | tr '\n' ' ')" "$(pachctl log --json | jq -r '.[].time_ns' | tr '\n' ' ')"

# Disaster recovery: revert master to m2, then the history is still there.
R=$(pachctl revert "$M2")
expect_eq "reverted" "m/file1=master 1;m/file2=master 2;shared=rev 2;" "$(state "-b master")"
expect_eq "log grows" 7 "$(pachctl log --json | jq length)"
expect_eq "revert message" "revert to $M2" "$(pachctl inspect-commit --json "$R" | jq -r .message)"
expect_status 0 pachctl fsck

# A commit whose parent chain loops (its metadata edited to name itself, or
# two commits naming each other): fsck said "ok" and log silently stopped.
LOOP=$T/loop
pachctl init "$LOOP" >/dev/null
echo a | pachctl --store "$LOOP" put-file a
L1=$(pachctl --store "$LOOP" commit)
echo b | pachctl --store "$LOOP" put-file b
L2=$(pachctl --store "$LOOP" commit)
set_parent() { jq -c --arg p "$2" '.parent = $p' "$LOOP/meta/commits/$1.json" > "$T/c.json" && mv "$T/c.json" "$LOOP/meta/commits/$1.json"; }
set_parent "$L2" "$L2"
expect_status 1 pachctl --store "$LOOP" fsck
expect_contains "fsck: a commit that is its own parent" "history loops back" "$OUT"
expect_status 8 pachctl --store "$LOOP" log
expect_contains "log: a history that loops is an error, not a short log" "loops back" "$ERR"
set_parent "$L2" "$L1"
set_parent "$L1" "$L2"
expect_status 1 pachctl --store "$LOOP" fsck
expect_contains "fsck: two commits that are each other's parent" "${L1:0:12}" "$OUT"
set_parent "$L1" ""
expect_status 0 pachctl --store "$LOOP" fsck

# Symbolic links and FIFOs planted inside a btrfs branch's subvolume: fsck
# said "ok" (pfs never follows them, but they are damage to report).
if [ "$BACKEND" = btrfs ]; then
  ln -s /etc/passwd "$LOOP/btrfs/branches/master/evil"
  mkfifo "$LOOP/btrfs/branches/master/fifo"
  expect_status 1 pachctl --store "$LOOP" fsck
  expect_contains "fsck: a symlink planted in a branch" '"evil" is a symbolic link' "$OUT"
  expect_contains "fsck: a FIFO planted in a branch" '"fifo" is a special file' "$OUT"
  expect_status 0 pachctl --store "$LOOP" fsck --repair
  expect_status 0 pachctl --store "$LOOP" fsck
  [ -e "$LOOP/btrfs/branches/master/evil" ] || [ -L "$LOOP/btrfs/branches/master/evil" ] &&
    fail "fsck --repair left the symlink" || ok
fi
finish
