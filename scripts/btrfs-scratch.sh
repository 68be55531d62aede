# btrfs-scratch.sh: source it to get a fresh btrfs file system on a loop
# device at $SCRATCH (and, with scratch_setup_ext4, an ext4 one at
# $SCRATCH_EXT4), removed again (unmounted, detached, deleted) when the shell
# exits, also on failure or Ctrl-C. Needs root.
#   SCRATCH_SIZE (default 8G) sets the sparse image's size.
scratch_cleanup() {
  set +e
  local m
  for m in "${SCRATCH:-}" "${SCRATCH_EXT4:-}"; do
    [ -n "$m" ] || continue
    if mountpoint -q "$m"; then umount "$m" || umount -l "$m"; fi
    rmdir "$m" 2>/dev/null
  done
  [ -n "${SCRATCH_LOOP:-}" ] && losetup -d "$SCRATCH_LOOP" 2>/dev/null
  [ -n "${SCRATCH_EXT4_LOOP:-}" ] && losetup -d "$SCRATCH_EXT4_LOOP" 2>/dev/null
  [ -n "${SCRATCH_IMG:-}" ] && rm -f "$SCRATCH_IMG"
  [ -n "${SCRATCH_EXT4_IMG:-}" ] && rm -f "$SCRATCH_EXT4_IMG"
  return 0
}
# An ext4 file system, for the portable backend on a file system that is
# not btrfs (its root directory is world-writable, like /tmp).
scratch_setup_ext4() {
  SCRATCH_EXT4_IMG=$(mktemp /var/tmp/pfs-scratch-ext4.XXXXXX.img)
  truncate -s "${SCRATCH_EXT4_SIZE:-4G}" "$SCRATCH_EXT4_IMG"
  mkfs.ext4 -q -F "$SCRATCH_EXT4_IMG" >/dev/null
  SCRATCH_EXT4_LOOP=$(losetup --find --show "$SCRATCH_EXT4_IMG")
  SCRATCH_EXT4=$(mktemp -d /tmp/pfs-scratch-ext4.XXXXXX)
  mount "$SCRATCH_EXT4_LOOP" "$SCRATCH_EXT4"
  chmod 1777 "$SCRATCH_EXT4"
}
scratch_setup() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "a loop-mounted btrfs needs root: run this script as root (or with sudo)" >&2
    return 1
  fi
  SCRATCH_IMG=$(mktemp /var/tmp/pfs-scratch.XXXXXX.img)
  truncate -s "${SCRATCH_SIZE:-8G}" "$SCRATCH_IMG"
  mkfs.btrfs -q -f "$SCRATCH_IMG" >/dev/null
  SCRATCH_LOOP=$(losetup --find --show "$SCRATCH_IMG")
  SCRATCH=$(mktemp -d /tmp/pfs-scratch.XXXXXX)
  mount "$SCRATCH_LOOP" "$SCRATCH"
}
trap scratch_cleanup EXIT
trap 'exit 130' INT TERM
