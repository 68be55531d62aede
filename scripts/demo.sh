#!/usr/bin/env bash
# demo.sh: installs what is needed, builds pfs, and walks through its main
# job: version a data set, branch it, change it, diff, merge, recover from
# a mistake, serve it over HTTP, and run a job in a container on a commit
# -- with pachctl and curl, on a store.
#
# It runs on the store pachctl uses by default -- $PFS_STORE when set, else
# ~/.local/share/pfs -- as whoever runs it, root or not: on btrfs the store
# uses the btrfs backend, elsewhere the portable one. A new store is made
# when there is none; in an existing store the demo works on branches of its
# own (demo-<time>, demo-<time>-cleanup) and leaves master alone.
# Installing packages needs root; without root, deps.sh says what is missing.
set -eu -o pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
PACHCTL=$PWD/build/pachctl/pachctl
pachctl() { echo "\$ pachctl $*" >&2; "$PACHCTL" "$@"; }

STORE=${PFS_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/pfs}
export PFS_STORE=$STORE
if [ -e "$STORE/pfs-store.json" ]; then
  MAIN=demo-$(date +%Y%m%d-%H%M%S)
  echo "(using the existing store $STORE; the demo works on branch $MAIN)" >&2
  pachctl branch "$MAIN"
else
  MAIN=master
  pachctl init
fi
CLEANUP=$([ "$MAIN" = master ] && echo cleanup || echo "$MAIN-cleanup")
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

echo "== 1. Version a data set" >&2
mkdir -p "$DATA/sales"
for m in 01 02 03; do
  printf 'region,amount\nnorth,%d\nsouth,%d\n' $((RANDOM % 100)) $((RANDOM % 100)) > "$DATA/sales/2026-$m.csv"
done
pachctl put-file -b "$MAIN" -r sales "$DATA/sales"
pachctl list-file -b "$MAIN" sales
V1=$(pachctl commit -b "$MAIN" -m "Q1 sales")
echo "committed $V1" >&2

echo "== 2. Branch to experiment without touching master" >&2
pachctl branch "$CLEANUP" "$V1"
printf 'region,amount\nnorth,0\n' | pachctl put-file -b "$CLEANUP" sales/2026-02.csv
pachctl delete-file -b "$CLEANUP" sales/2026-03.csv
echo "notes: removed March, fixed February" | pachctl put-file -b "$CLEANUP" sales/NOTES.txt
pachctl commit -b "$CLEANUP" -m "clean up Q1" >/dev/null
pachctl diff "$MAIN" "$CLEANUP"

echo "== 3. Merge the experiment back" >&2
pachctl merge -b "$MAIN" "$CLEANUP"
pachctl log -b "$MAIN" -n 3

echo "== 4. A mistake, and recovery" >&2
pachctl delete-file -b "$MAIN" sales
pachctl commit -b "$MAIN" -m "oops: deleted the sales data" >/dev/null
pachctl list-file -b "$MAIN" 'sales/*'
pachctl revert -b "$MAIN" "$V1"
pachctl list-file -b "$MAIN" -R sales
pachctl get-file -b "$MAIN" sales/2026-01.csv
pachctl log -b "$MAIN" -n 3

echo "== 5. The same store over HTTP" >&2
echo "\$ pachctl serve --listen 127.0.0.1:0 &" >&2
"$PACHCTL" serve --listen 127.0.0.1:0 -q 2>"$DATA/serve.log" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
URL=
for _ in $(seq 100); do
  URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$DATA/serve.log" || true)
  [ -n "$URL" ] && break
  sleep 0.05
done
[ -n "$URL" ] || { cat "$DATA/serve.log" >&2; exit 1; }
echo "\$ curl $URL/file/sales/2026-01.csv?branch=$MAIN" >&2
curl -s "$URL/file/sales/2026-01.csv?branch=$MAIN"
echo "\$ curl -XPOST $URL/file/sales/2026-04.csv?branch=$MAIN -T -" >&2
printf 'region,amount\nnorth,7\nsouth,9\n' | curl -s -XPOST "$URL/file/sales/2026-04.csv?branch=$MAIN" -T - >/dev/null
pachctl --address "$URL" commit -b "$MAIN" -m "April, over HTTP"
pachctl --address "$URL" list-file -b "$MAIN" sales

echo "== 6. A job: containerized analytics on every commit that asks for it" >&2
if [ "$(id -u)" -eq 0 ] && command -v runc >/dev/null && command -v podman >/dev/null; then
  # An image made offline (busybox and a small static web server that
  # upper-cases what it is sent), into podman's local store: no registry.
  IMAGE=localhost/pfs-demo-upper:1
  bash tests/jobs/make_image.sh build/tests/jobserver "$IMAGE"
  printf '{"type": "map", "input": "sales", "image": "%s", "command": ["/jobserver", "upper"]}\n' "$IMAGE" \
    > "$DATA/upper.json"
  echo "\$ curl -XPOST $URL/job/upper?branch=$MAIN -T upper.json" >&2
  curl -s -XPOST "$URL/job/upper?branch=$MAIN" -T "$DATA/upper.json" >/dev/null
  echo "\$ curl -XPOST '$URL/commit?run&branch=$MAIN'" >&2
  JC=$(curl -s -XPOST "$URL/commit?run&branch=$MAIN" | jq -r .id)
  echo "\$ curl '$URL/job/upper/file/2026-01.csv?commit=$JC'" >&2
  curl -s "$URL/job/upper/file/2026-01.csv?commit=$JC"
  pachctl --address "$URL" list-run -c "$JC"
  pachctl --address "$URL" delete-job -b "$MAIN" upper
  podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
else
  echo "(skipped: running jobs needs root, runc and podman; scripts/deps.sh installs them as root)" >&2
fi

echo "== 7. Copy the store with its history, then keep the copy up to date" >&2
if [ "$MAIN" = master ]; then
  pachctl clone "$URL" "$DATA/backup"
  pachctl --store "$DATA/backup" log -n 3
  printf "region,amount\nnorth,8\n" | pachctl put-file sales/2026-05.csv
  pachctl commit -m "May"
  pachctl push "$DATA/backup"          # sends only the new commit
  pachctl --store "$DATA/backup" get-file sales/2026-05.csv
else
  echo "(skipped in an existing store: a clone would copy all of its history)" >&2
fi
kill "$SERVER"
wait "$SERVER" || true

echo "== 8. Check the store" >&2
pachctl fsck
pachctl status
