#!/usr/bin/env bash
# Bad input gets one clear line on stderr, the documented exit status, and
# changes nothing.
source "$(dirname "$0")/lib.sh"

# No store yet: every command says how to make one.
expect_status 3 pachctl list-file
expect_contains "hint init" "pachctl init" "$ERR"
expect_eq "one line" "1" "$(echo "$ERR" | wc -l)"
mkdir -p "$T/notempty"; touch "$T/notempty/x"
expect_status 2 pachctl init "$T/notempty"
expect_contains "not empty" "not empty" "$ERR"

pachctl init >/dev/null
echo keep | pachctl put-file keep.txt
C1=$(pachctl commit)
snapshot() { pachctl list-file -R --json; pachctl list-branch --json; pachctl log --all --json; }
BEFORE=$(snapshot)

for bad in "" "/abs" "../up" "a/../../x" "a//b" "./a" ".pfs-staging/x" $'new\nline' \
    $'bad\xffutf8' $'\xc0\xae\xc0\xae/overlong'; do
  expect_status 2 pachctl put-file "$bad" /etc/hostname
  expect_status 2 pachctl get-file "$bad"
  expect_status 2 pachctl delete-file "$bad"
done
expect_status 2 pachctl put-file -b "bad name" x /etc/hostname
expect_contains "branch name" "invalid branch name" "$ERR"
expect_status 3 pachctl put-file -b nobranch x /etc/hostname
expect_contains "branch hint" "pachctl list-branch" "$ERR"
expect_status 3 pachctl put-file x "$LOCAL/does-not-exist"
expect_status 2 pachctl put-file keep.txt/below /etc/hostname
expect_status 2 pachctl put-file -r x /etc/hostname
expect_status 2 pachctl put-file x "$LOCAL"
expect_contains "directory hint" "put-file -r" "$ERR"
expect_status 3 pachctl get-file -c 0123456789abcdef0123456789abcdef keep.txt
expect_status 3 pachctl get-file -c nope keep.txt
expect_status 3 pachctl get-file missing.txt
expect_status 2 pachctl get-file -c master -b master keep.txt
expect_status 3 pachctl inspect-commit abc
expect_status 3 pachctl diff "$C1" nope
expect_status 4 pachctl branch master
expect_status 2 pachctl branch -bad
expect_status 3 pachctl branch x deadbeefdead
expect_status 3 pachctl delete-branch nope
expect_status 5 pachctl delete-commit "$C1"
expect_contains "depended on" "head of branch" "$ERR"
expect_status 3 pachctl revert nope
expect_status 3 pachctl merge nope
expect_status 2 pachctl merge master
expect_status 2 pachctl merge --on-conflict maybe master
expect_status 2 pachctl no-such-command
expect_status 2 pachctl help no-such-command
expect_status 2 pachctl get-file
expect_status 2 pachctl list-file -c "$C1" -b master
# get-file -o into a directory that does not exist
expect_status 3 pachctl get-file -o "$LOCAL/no/such/dir/out" keep.txt
# usage errors are one line too
expect_status 2 pachctl log -n 0
expect_eq "usage error is one line" 1 "$(echo "$ERR" | wc -l)"
# A failed get-file -o does not leave a partial file
expect_status 3 pachctl get-file -o "$LOCAL/out" missing.txt
[ ! -e "$LOCAL/out" ] && [ ! -e "$LOCAL/out.pachctl-tmp" ] && ok || fail "partial output left"

expect_eq "nothing changed" "$BEFORE" "$(snapshot)"

# Dirty branch: revert refuses without --force, keeps the work.
echo wip | pachctl put-file wip.txt
expect_status 5 pachctl revert "$C1"
expect_contains "dirty hint" "--force" "$ERR"
expect_eq "work kept" "wip" "$(pachctl get-file wip.txt)"

# A directory that is not a store
mkdir -p "$T/plain"
expect_status 3 pachctl --store "$T/plain" list-file
expect_contains "not a store" "is not a pfs store" "$ERR"
# A corrupt store file
mkdir -p "$T/corrupt"; echo '{nope' > "$T/corrupt/pfs-store.json"
expect_status 8 pachctl --store "$T/corrupt" list-file
finish
