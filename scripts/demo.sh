#!/usr/bin/env bash
# demo.sh: installs what is needed, builds pfs, and walks through its main
# job: version a data set, branch it, change it, diff, merge, and recover
# from a mistake -- with pachctl, on a store.
#
# The store is $PFS_STORE when set (it must be on btrfs for now), else the
# default store (~/.local/share/pfs) when that is on btrfs, else a
# loop-mounted btrfs made for the demo and removed afterwards (needs root).
set -eu -o pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
PACHCTL=$PWD/build/pachctl/pachctl
pachctl() { echo "\$ pachctl $*" >&2; "$PACHCTL" "$@"; }

on_btrfs() { local d=$1; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; [ "$(stat -f -c %T "$d")" = btrfs ]; }
DEFAULT=${XDG_DATA_HOME:-$HOME/.local/share}/pfs
if [ -n "${PFS_STORE:-}" ]; then
  STORE=$PFS_STORE
elif on_btrfs "$DEFAULT"; then
  STORE=$DEFAULT
else
  echo "(the default store $DEFAULT is not on btrfs: using a scratch btrfs for this demo)" >&2
  source scripts/btrfs-scratch.sh
  SCRATCH_SIZE=2G scratch_setup
  STORE=$SCRATCH/store
fi
export PFS_STORE=$STORE
[ -e "$STORE/pfs-store.json" ] || pachctl init
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"; declare -F scratch_cleanup >/dev/null && scratch_cleanup' EXIT

echo "== 1. Version a data set" >&2
mkdir -p "$DATA/sales"
for m in 01 02 03; do
  printf 'region,amount\nnorth,%d\nsouth,%d\n' $((RANDOM % 100)) $((RANDOM % 100)) > "$DATA/sales/2026-$m.csv"
done
pachctl put-file -r sales "$DATA/sales"
pachctl list-file sales
V1=$(pachctl commit -m "Q1 sales")
echo "committed $V1" >&2

echo "== 2. Branch to experiment without touching master" >&2
pachctl branch cleanup "$V1"
printf 'region,amount\nnorth,0\n' | pachctl put-file -b cleanup sales/2026-02.csv
pachctl delete-file -b cleanup sales/2026-03.csv
echo "notes: removed March, fixed February" | pachctl put-file -b cleanup NOTES.txt
pachctl commit -b cleanup -m "clean up Q1" >/dev/null
pachctl diff master cleanup

echo "== 3. Merge the experiment back" >&2
pachctl merge cleanup
pachctl log

echo "== 4. A mistake, and recovery" >&2
pachctl delete-file sales
pachctl commit -m "oops: deleted everything" >/dev/null
pachctl list-file
pachctl revert "$V1"
pachctl list-file -R
pachctl get-file sales/2026-01.csv
pachctl log -n 3

echo "== 5. Check the store" >&2
pachctl fsck
pachctl status
