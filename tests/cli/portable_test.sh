#!/usr/bin/env bash
# The portable backend on its own: an unprivileged user on a file system that
# is not btrfs gets a working store with no extra step; the same content is
# stored once; gc removes what nothing reaches and never what is reachable,
# even while others write; fsck finds corrupt and missing objects.
export PFS_TEST_BACKEND=portable
source "$(dirname "$0")/lib.sh"

fstype=$(stat -f -c %T "$PFS_TEST_ROOT")
[ "$fstype" != btrfs ] && ok || fail "the portable tests need a non-btrfs directory, got $fstype"

# ---- an unprivileged user on ext4, with the default store ----------------
# A copy of pachctl and libpfs the user can surely read (the build tree may
# sit under a private directory).
chmod 755 "$T"   # mktemp -d made it private
BIN=$T/bin
mkdir -p "$BIN"
cp "$PACHCTL" "$BIN/pachctl"
cp -L "$(dirname "$PACHCTL")/../libpfs/libpfs.so.0" "$BIN/"
chmod -R a+rX "$BIN"
U=$T/home
mkdir -p "$U"
chown 65534:65534 "$U"
as_nobody() {
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    env -u PFS_STORE -u PFS_BACKEND HOME="$U" LD_LIBRARY_PATH="$BIN" "$BIN/pachctl" "$@"
}
expect_status 0 as_nobody init
expect_contains "auto picks portable off btrfs" "(backend: portable)" "$OUT"
expect_contains "default store in HOME" "$U/.local/share/pfs" "$OUT"
expect_status 0 as_nobody status
expect_contains "status names the backend" "Backend:  portable" "$OUT"
expect_eq "owned by the user" "nobody" "$(stat -c %U "$U/.local/share/pfs/pfs-store.json")"
echo one | as_nobody put-file a.txt >/dev/null && ok || fail "put-file as nobody"
C1=$(as_nobody commit -m first) && ok || fail "commit as nobody"
as_nobody branch dev >/dev/null && ok || fail "branch as nobody"
echo two | as_nobody put-file -b dev b.txt >/dev/null
as_nobody commit -b dev -m dev >/dev/null
expect_status 0 as_nobody merge dev
expect_eq "merged as nobody" "two" "$(as_nobody get-file b.txt)"
expect_status 0 as_nobody revert "$C1"
expect_status 3 as_nobody get-file b.txt
expect_eq "revert as nobody" "one" "$(as_nobody get-file a.txt)"
expect_status 0 as_nobody diff "$C1" dev
expect_contains "diff as nobody" "b.txt" "$OUT"
expect_status 0 as_nobody fsck
expect_status 0 as_nobody gc
expect_status 10 as_nobody init --backend btrfs "$U/forced"
expect_contains "btrfs refused with a reason" "not on a btrfs file system" "$ERR"
[ ! -e "$U/forced" ] && ok || fail "a refused init leaves nothing"

# ---- dedup: the same 100 MiB committed 10 times costs about 100 MiB ------
export PFS_STORE=$T/dedup
pachctl init >/dev/null
head -c $((100 << 20)) /dev/urandom > "$LOCAL/big"
for i in $(seq 1 10); do
  pachctl put-file "copy$i.bin" "$LOCAL/big" >/dev/null
  pachctl commit -m "copy $i" >/dev/null
done
used=$(du -sk "$PFS_STORE/portable/objects" | cut -f1)
[ "$used" -le $((110 * 1024)) ] && ok || fail "10 copies of 100 MiB use ${used} KiB (want <= 110 MiB)"
expect_eq "a copy reads back" "$(sha256sum < "$LOCAL/big")" "$(pachctl get-file copy7.bin | sha256sum)"
# A 4 KiB change in the middle of the file: only the chunks around it are new.
before=$used
printf 'x%.0s' $(seq 1 4096) | dd of="$LOCAL/big" bs=1 seek=$((50 << 20)) conv=notrunc status=none
pachctl put-file copy1.bin "$LOCAL/big" >/dev/null
pachctl commit -m "changed 4 KiB" >/dev/null
used=$(du -sk "$PFS_STORE/portable/objects" | cut -f1)
[ $((used - before)) -le $((10 * 1024)) ] && ok ||
  fail "a 4 KiB change in a 100 MiB file stored $((used - before)) KiB (want <= 10 MiB)"
expect_eq "the changed file reads back" "$(sha256sum < "$LOCAL/big")" \
  "$(pachctl get-file copy1.bin | sha256sum)"
# Ranges across chunk boundaries.
expect_eq "a range across chunks" "$(tail -c +$((50 << 20)) "$LOCAL/big" | head -c 10000 | sha256sum)" \
  "$("$PACHCTL" get-file --offset $(((50 << 20) - 1)) --length 10000 copy1.bin | sha256sum)"
# Append re-chunks only the tail and reads back whole.
echo appended >> "$LOCAL/big"
echo appended | pachctl put-file -a copy1.bin >/dev/null
expect_eq "append to a chunked file" "$(sha256sum < "$LOCAL/big")" \
  "$(pachctl get-file copy1.bin | sha256sum)"

# ---- gc: removes what nothing reaches; keeps everything reachable --------
export PFS_STORE=$T/gc
pachctl init >/dev/null
head -c 3000000 /dev/urandom > "$LOCAL/doomed"
pachctl branch tmp >/dev/null
pachctl put-file -b tmp doomed.bin "$LOCAL/doomed" >/dev/null
T1=$(pachctl commit -b tmp)
echo keep | pachctl put-file keep.txt >/dev/null
K=$(pachctl commit)
expect_status 0 pachctl gc   # the empty tree the branches started from is garbage now
expect_status 0 pachctl gc
expect_contains "nothing left to remove" "removed 0 objects" "$OUT"
pachctl delete-branch tmp >/dev/null
pachctl delete-commit "$T1" >/dev/null
expect_status 0 pachctl gc --json
[ "$(echo "$OUT" | jq .bytes_removed)" -ge 3000000 ] && ok || fail "gc freed the deleted commit: $OUT"
expect_eq "gc keeps the rest" "keep" "$(pachctl get-file -c "$K" keep.txt)"
expect_status 0 pachctl fsck

# gc while others write: nothing acknowledged goes missing.
writer() {
  local n
  for n in $(seq 1 15); do
    head -c $((RANDOM * 8)) /dev/urandom > "$LOCAL/w$1-$n"
    "$PACHCTL" put-file "w$1/$n" "$LOCAL/w$1-$n" >/dev/null || return 1
    "$PACHCTL" commit -m "w$1 $n" >/dev/null || return 1
    # overwrite: the old content becomes garbage for gc
    "$PACHCTL" put-file "w$1/scratch" "$LOCAL/w$1-$n" >/dev/null || return 1
  done
}
writer 1 & w1=$!
writer 2 & w2=$!
for _ in $(seq 1 10); do "$PACHCTL" gc >/dev/null || fail "gc during writes"; done
wait $w1 && ok || fail "writer 1"
wait $w2 && ok || fail "writer 2"
expect_status 0 pachctl fsck
expect_contains "fsck clean after gc under load" "problems: 0" "$OUT"
bad=0
for w in 1 2; do
  for n in $(seq 1 15); do
    [ "$(pachctl get-file "w$w/$n" | sha256sum)" = "$(sha256sum < "$LOCAL/w$w-$n")" ] || bad=$((bad + 1))
  done
done
expect_eq "every written file reads back after gc" 0 "$bad"
for c in $(pachctl log --json | jq -r '.[].id'); do
  pachctl list-file -R -c "$c" >/dev/null || bad=$((bad + 1))
done
expect_eq "every commit lists after gc" 0 "$bad"

# ---- big directories are stored as pages; gc keeps every page -----------
export PFS_STORE=$T/pages
pachctl init >/dev/null
mkdir -p "$LOCAL/wide/d"
for i in $(seq 1 300); do echo "file $i" > "$LOCAL/wide/d/f$i"; done
pachctl put-file -r wide "$LOCAL/wide" >/dev/null
P1=$(pachctl commit -m wide)
cp -r "$LOCAL/wide" "$LOCAL/wide1"
before=$(du -sb "$PFS_STORE/portable/objects" | cut -f1)
for i in 7 150 299; do echo "changed $i" > "$LOCAL/wide/d/f$i"; done
mkdir -p "$LOCAL/delta/d" && cp "$LOCAL/wide/d/f7" "$LOCAL/wide/d/f150" "$LOCAL/wide/d/f299" "$LOCAL/delta/d/"
pachctl put-file -r wide "$LOCAL/delta" >/dev/null
P2=$(pachctl commit -m "3 changed")
grown=$(( $(du -sb "$PFS_STORE/portable/objects" | cut -f1) - before ))
# The whole listing is ~30 KB; three changes store three pages and the index.
[ "$grown" -lt 12000 ] && ok || fail "3 changes in a 300-entry directory stored $grown bytes"
pachctl gc >/dev/null
expect_status 0 pachctl fsck
pachctl get-file -c "$P1" -r wide "$LOCAL/back1" && pachctl get-file -c "$P2" -r wide "$LOCAL/back2"
expect_eq "first commit reads back after gc" "" "$(diff -r "$LOCAL/wide1" "$LOCAL/back1")"
expect_eq "second commit reads back after gc" "" "$(diff -r "$LOCAL/wide" "$LOCAL/back2")"
expect_eq "diff names the 3 changes" 3 "$(pachctl diff --json "$P1" "$P2" | jq length)"
pachctl delete-file wide/d/f42 && echo new | pachctl put-file wide/d/f42b
expect_eq "listing after a delete and an insert" 300 "$(pachctl list-file --json wide/d | jq length)"

# ---- fsck finds corrupt and missing objects ------------------------------
export PFS_STORE=$T/fsck
pachctl init >/dev/null
echo precious | pachctl put-file p.txt >/dev/null
pachctl commit >/dev/null
obj=$(grep -rl --include='[0-9a-f]*' -x precious "$PFS_STORE/portable/objects" | head -1)
[ -n "$obj" ] && ok || fail "found the object of p.txt"
chmod u+w "$obj" && echo tampered > "$obj"
expect_status 1 pachctl fsck
expect_contains "corrupt object reported" "is corrupt" "$OUT"
expect_status 1 pachctl fsck --repair
expect_contains "repair removes it" "removed corrupt object" "$OUT"
expect_contains "then it is missing" "is missing" "$OUT"
expect_status 8 pachctl get-file p.txt
expect_contains "a read says what to do" "run pachctl fsck" "$ERR"
# Uploading the same content again restores it.
echo precious | pachctl put-file restore.txt >/dev/null
expect_status 0 pachctl fsck
expect_eq "restored by a new upload" "precious" "$(pachctl get-file p.txt)"
rm -f "$PFS_STORE"/portable/objects/*/[0-9a-f]*
expect_status 1 pachctl fsck
expect_contains "missing objects reported" "is missing" "$OUT"
expect_status 8 pachctl gc
expect_contains "gc refuses to guess" "run pachctl fsck" "$ERR"
finish
