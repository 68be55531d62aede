#!/usr/bin/env bash
# A real full disk: a store on a small loop-mounted file system (btrfs, or
# ext4 for the portable backend) that fills up during put-file, commit and
# receive. Each fails with the no-space error (exit 9, "No space left on
# device", naming what it was writing); nothing acknowledged is lost; after
# space is freed (a filler file deleted) fsck is clean or fsck --repair makes
# it clean, and the same operation succeeds with the right content. The file
# system is unmounted and its loop device detached at exit, also on failure.
source "$(dirname "$0")/../cli/lib.sh"
export LC_ALL=C
unset PFS_FAULT PFS_FAULT_TRACE
IO_STATUS=9
NOSPACE="No space left on device"

if [ "$(id -u)" -ne 0 ]; then
  if [ "${PFS_REQUIRE_BTRFS:-}" = 1 ]; then echo "a loop-mounted file system needs root" >&2; exit 1; fi
  echo "skipped: a loop-mounted file system needs root" >&2
  exit 77
fi

# ---- the small file system
IMG="" LOOP="" MNT=""
umount_small() {
  set +e
  if [ -n "$MNT" ]; then
    if mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT"; fi
    rmdir "$MNT"
  fi
  [ -n "$LOOP" ] && losetup -d "$LOOP"
  [ -n "$IMG" ] && rm -f "$IMG"
  IMG="" LOOP="" MNT=""
}
trap 'umount_small; cleanup' EXIT
trap 'exit 130' INT TERM
IMG=$(mktemp /var/tmp/pfs-full-disk.XXXXXX.img)
if [ "$BACKEND" = btrfs ]; then
  truncate -s 128M "$IMG"  # about the smallest btrfs mkfs makes
  mkfs.btrfs -q -f "$IMG" >/dev/null
else
  truncate -s 32M "$IMG"
  mkfs.ext4 -q -F -m 0 "$IMG" >/dev/null
fi
LOOP=$(losetup --find --show "$IMG")
MNT=$(mktemp -d /tmp/pfs-full-disk.XXXXXX)
mount "$LOOP" "$MNT"
export PFS_STORE=$MNT/store

free_bytes() { sync -f "$MNT"; df --output=avail -B1 "$MNT" | tail -1 | tr -d ' '; }
# fill KEEP: fills the file system with filler files until about KEEP bytes
# are free (0: until nothing more fits, data nor metadata: on btrfs small
# files live in the metadata, which has space of its own).
fill() {
  local keep=$1 avail i
  mkdir -p "$MNT/filler"
  avail=$(free_bytes)
  if [ "$avail" -gt $((keep + (1 << 20))) ]; then
    fallocate -l $((avail - keep)) "$MNT/filler/big" 2>/dev/null ||
      head -c $((avail - keep)) /dev/zero > "$MNT/filler/big" 2>/dev/null || true
  fi
  [ "$keep" = 0 ] || return 0
  dd if=/dev/zero of="$MNT/filler/rest" bs=4096 2>/dev/null || true
  # Small files (inline in btrfs metadata) until none fits; printf and the
  # redirection are builtins: no process per file.
  for ((i = 0; i < 200000; i++)); do
    { printf '%1500s' '' > "$MNT/filler/s$i"; } 2>/dev/null || break
  done
  sync -f "$MNT" 2>/dev/null || true
}
unfill() {
  rm -rf "$MNT/filler"
  sync -f "$MNT"
}

# expect_no_space WHAT NAMES CMD...: CMD fails for want of space, saying so
# and naming what it was writing (NAMES: a regular expression).
expect_no_space() {
  local what=$1 names=$2; shift 2
  expect_status "$IO_STATUS" "$@"
  local msg
  msg=$(grep '^pachctl:' <<<"$ERR" | tail -1)
  echo "  $what on a full disk: $msg" >&2
  expect_contains "$what: no space" "$NOSPACE" "$msg"
  grep -Eq "$names" <<<"$msg" && ok || fail "$what: the message names nothing of $names: $msg"
}
# The store after space is freed: fsck clean, or made clean by repair.
fsck_after_freeing() {
  local what=$1 got=0
  pachctl fsck > "$T/fsck" 2>&1 || got=$?
  if [ "$got" != 0 ] || ! grep -q 'leftovers: 0$' "$T/fsck"; then
    echo "  $what: fsck: $(grep -v '^ok:' "$T/fsck" | head -3 | tr '\n' ' ')" >&2
    expect_status 0 pachctl fsck --repair
  fi
  expect_status 0 pachctl fsck
  expect_contains "$what: fsck clean" "problems: 0, leftovers: 0" "$OUT"
}

# ---- what is acknowledged before the disk fills
pachctl init >/dev/null
head -c $((2 << 20)) /dev/urandom > "$LOCAL/acked.bin"
echo base | pachctl put-file base.txt
pachctl put-file data/acked.bin "$LOCAL/acked.bin"
C1=$(pachctl commit -m c1)
pachctl branch dev
echo d | pachctl put-file -b dev d.txt
DEV=$(pachctl commit -b dev -m d)
ACKED_SUM=$(md5sum < "$LOCAL/acked.bin")
check_acknowledged() {
  local what=$1
  expect_eq "$what: C1's file" base "$(pachctl get-file -c "$C1" base.txt)"
  expect_eq "$what: C1's big file" "$ACKED_SUM" "$(pachctl get-file -c "$C1" data/acked.bin | md5sum)"
  expect_eq "$what: dev's head" "$DEV" "$(pachctl inspect-commit --json dev | jq -r .id)"
  expect_eq "$what: dev's file" d "$(pachctl get-file -b dev d.txt)"
  pachctl log --json | jq -r '.[].id' | grep -qx "$C1" && ok || fail "$what: C1 left master's history"
}

# ---- put-file: a file larger than the space left. Its message names the
# file and branch (it once said only "write object: No space left on device"
# on the portable backend, and "write a received file: ..." on receive).
head -c $((8 << 20)) /dev/urandom > "$LOCAL/big.bin"
fill $((4 << 20))
expect_no_space "put-file" '"master"|"big\.bin"' pachctl put-file big.bin "$LOCAL/big.bin"
expect_status 3 pachctl get-file big.bin
check_acknowledged "put-file on a full disk"
unfill
fsck_after_freeing "put-file"
[ "$BACKEND" = portable ] && pachctl gc >/dev/null
expect_status 0 pachctl put-file big.bin "$LOCAL/big.bin"
expect_eq "put-file after freeing space" "$(md5sum < "$LOCAL/big.bin")" "$(pachctl get-file big.bin | md5sum)"
check_acknowledged "put-file after"

# ---- commit: on a file system with no room left at all
C2=$(pachctl commit -m c2)
echo wip | pachctl put-file wip.txt
fill 0
got=0
pachctl commit -m full > "$T/out" 2> "$T/err" || got=$?
if [ "$got" = 0 ]; then
  # NOTE: btrfs keeps a reserve for its own metadata, which a commit (a
  # snapshot and two small files) may still fit into.
  echo "  commit fitted into a full file system" >&2
  expect_eq "commit on a full disk: its files" wip "$(pachctl get-file -c "$(cat "$T/out")" wip.txt)"
else
  expect_eq "commit on a full disk: exit status" "$IO_STATUS" "$got"
  echo "  commit on a full disk: $(cat "$T/err")" >&2
  expect_contains "commit on a full disk: no space" "$NOSPACE" "$(cat "$T/err")"
  grep -Eq 'master|[0-9a-f]{32}' "$T/err" && ok || fail "commit: the message names nothing: $(cat "$T/err")"
  expect_eq "commit on a full disk: head kept" "$C2" "$(pachctl inspect-commit --json master | jq -r .id)"
fi
check_acknowledged "commit on a full disk"
expect_eq "commit on a full disk: big.bin of C2" "$(md5sum < "$LOCAL/big.bin")" "$(pachctl get-file -c "$C2" big.bin | md5sum)"
unfill
fsck_after_freeing "commit"
if [ "$got" != 0 ]; then
  C3=$(pachctl commit -m again)
  expect_eq "commit after freeing space" wip "$(pachctl get-file -c "$C3" wip.txt)"
fi
check_acknowledged "commit after"

# ---- receive: a stream larger than the space left
SRC=$T/source
pachctl --store "$SRC" init >/dev/null
head -c $((3 << 20)) /dev/urandom > "$LOCAL/r1.bin"
head -c $((1 << 20)) /dev/urandom > "$LOCAL/r2.bin"
pachctl --store "$SRC" put-file r1.bin "$LOCAL/r1.bin"
pachctl --store "$SRC" put-file dir/r2.bin "$LOCAL/r2.bin"
pachctl --store "$SRC" commit -m sent >/dev/null
pachctl --store "$SRC" send master > "$LOCAL/stream"
before=$(pachctl log -a --json | jq -c '[.[].id] | sort')
fill $((2 << 20))
expect_no_space "receive" '"got"|[0-9a-f]{32}|r[12]\.bin' pachctl receive -b got < "$LOCAL/stream"
expect_eq "receive on a full disk: no commit" "$before" "$(pachctl log -a --json | jq -c '[.[].id] | sort')"
expect_status 3 pachctl inspect-commit got
check_acknowledged "receive on a full disk"
unfill
fsck_after_freeing "receive"
[ "$BACKEND" = portable ] && pachctl gc >/dev/null
expect_status 0 pachctl receive -b got < "$LOCAL/stream"
expect_eq "received after freeing space" "$(md5sum < "$LOCAL/r1.bin")" "$(pachctl get-file -b got r1.bin | md5sum)"
expect_eq "received after freeing space (2)" "$(md5sum < "$LOCAL/r2.bin")" "$(pachctl get-file -b got dir/r2.bin | md5sum)"
check_acknowledged "receive after"
expect_status 0 pachctl fsck
expect_contains "fsck clean at the end" "problems: 0, leftovers: 0" "$OUT"
finish
