#!/usr/bin/env bash
# real_streams.sh: checks pfs's send-stream reader against streams the kernel
# makes. On a fresh loop-mounted btrfs (removed again, also on failure) it
# builds a subvolume with files, a directory, a symlink, a hard link, a fifo,
# an xattr, a sparse file and a 200 KiB file, sends it in full, changes a
# writable snapshot of it (including a reflinked copy, which sends a clone)
# and sends that incrementally; `stream_tool dump` must read both streams
# whole, command for command as `btrfs receive --dump` does, and must refuse
# them cut short and in protocol version 2.
#
# Usage: STREAM_TOOL=build/tests/stream_tool tests/fuzz/real_streams.sh [OUTDIR]
#   OUTDIR: also keep the streams there (scripts/fuzz.sh seeds its corpus so)
# Needs root; exits 77 (skipped) without it, unless PFS_REQUIRE_BTRFS=1.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
tool=${STREAM_TOOL:?set STREAM_TOOL to the stream_tool program}
out=${1:-}

skip() {
  if [ "${PFS_REQUIRE_BTRFS:-0}" = 1 ]; then echo "real_streams.sh: $1" >&2; exit 1; fi
  echo "skipped: $1" >&2
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (a loop-mounted btrfs)"
if ! command -v btrfs >/dev/null || ! command -v mkfs.btrfs >/dev/null; then
  skip "btrfs-progs missing"
fi

export SCRATCH_SIZE=256M  # read by btrfs-scratch.sh
# shellcheck source=SCRIPTDIR/../../scripts/btrfs-scratch.sh
source "$here/../../scripts/btrfs-scratch.sh"
work=$(mktemp -d /tmp/pfs-streams.XXXXXX)
trap 'scratch_cleanup; rm -rf "$work"' EXIT
scratch_setup
m=$SCRATCH

# The first snapshot: one of everything.
btrfs -q subvolume create "$m/s"
echo hello >"$m/s/a"
mkdir -p "$m/s/d/e"
echo inner >"$m/s/d/b"
ln -s d/b "$m/s/l"
ln -s ../../outside "$m/s/d/e/dangling"
ln "$m/s/a" "$m/s/d/hard"
head -c 204800 /dev/urandom >"$m/s/big"
mkfifo "$m/s/fifo"
truncate -s 1M "$m/s/sparse"
echo tail >>"$m/s/sparse"
chmod 0600 "$m/s/d/b"
xattr=0
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.k", b"v")' "$m/s/a" 2>/dev/null && xattr=1
touch -d '2001-02-03 04:05:06.789 UTC' "$m/s/d/b"
btrfs property set "$m/s" ro true
btrfs -q send -f "$work/full.stream" "$m/s"

# The second: changed from a writable snapshot of the first.
btrfs -q subvolume snapshot "$m/s" "$m/s2"
echo more >>"$m/s2/a"
rm "$m/s2/d/b"
mv "$m/s2/big" "$m/s2/d/big2"
cp --reflink=always "$m/s2/d/big2" "$m/s2/copy" 2>/dev/null || true
rmdir "$m/s2/d/e" 2>/dev/null || { rm "$m/s2/d/e/dangling"; rmdir "$m/s2/d/e"; }
echo new >"$m/s2/n"
chmod 0700 "$m/s2/d"
truncate -s 100 "$m/s2/sparse"
btrfs property set "$m/s2" ro true
btrfs -q send -p "$m/s" -f "$work/inc.stream" "$m/s2"

fails=0
check() {  # name stream
  local name=$1 stream=$2
  if ! "$tool" dump <"$stream" >"$work/$name.dump" 2>"$work/$name.err"; then
    echo "FAIL: $name: stream_tool refused the kernel's stream: $(cat "$work/$name.err")" >&2
    fails=$((fails + 1))
    return
  fi
  local ours theirs
  ours=$(wc -l <"$work/$name.dump")
  # btrfs receive --dump prints no line for the end command.
  theirs=$(($(btrfs receive --dump -f "$stream" | wc -l) + 1))
  if [ "$ours" -ne "$theirs" ]; then
    echo "FAIL: $name: stream_tool read $ours commands, btrfs receive --dump $theirs" >&2
    fails=$((fails + 1))
    return
  fi
  echo "ok: $name: $ours commands, $(stat -c %s "$stream") bytes" >&2
}
expect() {  # name pattern: a command the dump must hold
  grep -qE "$2" "$work/$1.dump" || {
    echo "FAIL: $1: no line matching '$2' in the dump" >&2
    fails=$((fails + 1))
  }
}
refuse() {  # what stream message-pattern
  if "$tool" dump <"$2" >/dev/null 2>"$work/refused.err"; then
    echo "FAIL: $1 was accepted" >&2
    fails=$((fails + 1))
  elif ! grep -qE "$3" "$work/refused.err"; then
    echo "FAIL: $1: message '$(cat "$work/refused.err")' lacks '$3'" >&2
    fails=$((fails + 1))
  fi
}

check full "$work/full.stream"
check inc "$work/inc.stream"
for p in '^0 17 subvol path=s ' ' mkfile ' ' mkdir ' ' symlink .*path_link=d/b' \
  ' symlink .*path_link=../../outside' ' link .*path_link=' ' rename ' ' mkfifo ' \
  ' write path=big offset=196608 len=8192' ' chmod path=d/b mode=600' ' chown path= uid=0' \
  ' utimes path=d/b atime=981173106.789000000 mtime=981173106.789000000' ' utimes path= ' ' end$'; do
  expect full "$p"
done
if [ "$xattr" = 1 ]; then expect full ' set_xattr path=a xattr_name=user.k xattr_len=1'; fi
for p in '^0 17 snapshot path=s2 ' ' unlink path=d/b' ' rmdir path=' \
  ' truncate path=sparse size=100' ' chmod path=d mode=700' ' end$'; do
  expect inc "$p"
done
# A reflinked copy is sent as a clone (when cp could reflink).
if [ -f "$m/s2/copy" ]; then expect inc ' clone path=copy offset=0 len=204800 .*clone_path=d/big2'; fi

# Cut short anywhere, the kernel's stream is refused as truncated.
size=$(stat -c %s "$work/inc.stream")
for n in 0 5 17 20 27 100 $((size / 2)) $((size - 10)) $((size - 1)); do
  head -c "$n" "$work/inc.stream" >"$work/cut"
  refuse "inc.stream cut at $n" "$work/cut" 'truncated|empty'
done
cat "$work/inc.stream" "$work/inc.stream" >"$work/twice"
refuse "two streams in one" "$work/twice" 'more than one subvolume'

# Protocol version 2 is refused with a pointer to --proto 1.
if btrfs -q send --proto 2 -f "$work/v2.stream" "$m/s" 2>/dev/null; then
  refuse "a version-2 stream" "$work/v2.stream" 'proto 1'
  if grep -q 'proto 1' "$work/refused.err"; then
    echo "ok: version 2 refused: $(cat "$work/refused.err")" >&2
  fi
else
  echo "note: btrfs send --proto 2 is not available here; not checked" >&2
fi

if [ -n "$out" ]; then
  cp "$work/full.stream" "$out/real-full.stream"
  cp "$work/inc.stream" "$out/real-inc.stream"
fi
if [ "$fails" -ne 0 ]; then
  echo "real_streams.sh: $fails check(s) failed" >&2
  exit 1
fi
echo "real_streams.sh: the kernel's streams read correctly" >&2
