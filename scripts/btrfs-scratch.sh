# btrfs-scratch.sh: source it to get a fresh btrfs file system on a loop
# device at $SCRATCH, removed again (unmounted, detached, deleted) when the
# shell exits, also on failure or Ctrl-C. Needs root.
#   SCRATCH_SIZE (default 8G) sets the sparse image's size.
scratch_cleanup() {
  set +e
  if [ -n "${SCRATCH:-}" ] && mountpoint -q "$SCRATCH"; then umount "$SCRATCH" || umount -l "$SCRATCH"; fi
  [ -n "${SCRATCH_LOOP:-}" ] && losetup -d "$SCRATCH_LOOP" 2>/dev/null
  [ -n "${SCRATCH_IMG:-}" ] && rm -f "$SCRATCH_IMG"
  [ -n "${SCRATCH:-}" ] && rmdir "$SCRATCH" 2>/dev/null
  return 0
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
