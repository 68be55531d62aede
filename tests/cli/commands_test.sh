#!/usr/bin/env bash
# Every pachctl command, as a user types it, with its output checked.
source "$(dirname "$0")/lib.sh"

expect_status 0 pachctl init
expect_contains "init says where" "Initialized empty pfs store in $PFS_STORE (backend: $BACKEND)" "$OUT"
expect_status 0 pachctl status
expect_contains "status backend" "Backend:  $BACKEND" "$OUT"
expect_contains "status branches" "Branches: 1" "$OUT"

# put-file from stdin, from a file, and - ; get-file to stdout and -o
echo "hello" | pachctl put-file greeting.txt
printf 'a,b\n1,2\n' > "$LOCAL/data.csv"
pachctl put-file data/data.csv "$LOCAL/data.csv"
printf 'x' | pachctl put-file data/dash.txt -
expect_eq "get stdin file" "hello" "$(pachctl get-file greeting.txt)"
expect_eq "get local file" "$(cat "$LOCAL/data.csv")" "$(pachctl get-file data/data.csv)"
pachctl get-file -o "$LOCAL/out.csv" data/data.csv
cmp -s "$LOCAL/data.csv" "$LOCAL/out.csv" && ok || fail "get-file -o content"
echo " more" | pachctl put-file --append data/dash.txt
expect_eq "append" "x more" "$(pachctl get-file data/dash.txt)"

# list-file: table, recursive, glob, JSON
expect_eq "list root" "NAME          TYPE  SIZE
data/         dir   -
greeting.txt  file  6 B" "$(pachctl list-file)"
expect_eq "list recursive" "data/
data/dash.txt
data/data.csv
greeting.txt" "$(pachctl list-file -R | tail -n +2 | awk '{print $1}')"
expect_eq "list glob" "data/data.csv" "$(pachctl list-file 'data/*.csv' | tail -n +2 | awk '{print $1}')"
expect_eq "list json" "8" "$(pachctl list-file --json data/data.csv | jq '.[0].size')"

# commit prints the id alone
C1=$(pachctl commit -m "first commit")
[[ "$C1" =~ ^[0-9a-f]{32}$ ]] && ok || fail "commit id format: $C1"
expect_eq "log lists it" "$C1" "$(pachctl list-commit | awk 'NR==2{print $1}')"
expect_eq "log alias" "$(pachctl list-commit)" "$(pachctl log)"
expect_status 0 pachctl inspect-commit "${C1:0:8}"
expect_contains "inspect id" "Commit:   $C1" "$OUT"
expect_contains "inspect message" "Message:  first commit" "$OUT"
expect_contains "inspect files" "Files:    3" "$OUT"
expect_eq "inspect json" "first commit" "$(pachctl inspect-commit --json "$C1" | jq -r .message)"
expect_eq "inspect by branch" "$C1" "$(pachctl inspect-commit --json master | jq -r .id)"

# delete-file, then reads at the commit still see it
pachctl delete-file greeting.txt
expect_status 3 pachctl get-file greeting.txt
expect_eq "old commit keeps file" "hello" "$(pachctl get-file -c "$C1" greeting.txt)"
expect_eq "-c with branch name = head" "hello" "$(pachctl get-file -c master greeting.txt)"
C2=$(pachctl commit -m second)

# diff
expect_eq "diff" "CHANGE   PATH          OLD SIZE  NEW SIZE
deleted  greeting.txt  6 B       -" "$(pachctl diff "$C1" "$C2")"
expect_status 1 pachctl diff --exit-code "$C1" "$C2"
expect_status 0 pachctl diff --exit-code "$C2" master
expect_eq "diff json" "deleted" "$(pachctl diff --json "$C1" "$C2" | jq -r '.[0].change')"

# branches
pachctl branch dev "$C1"
expect_eq "branch from commit" "hello" "$(pachctl get-file -b dev greeting.txt)"
echo dev | pachctl put-file -b dev dev.txt
expect_status 0 pachctl list-branch
expect_contains "list-branch dev" "dev     $C1  uncommitted" "$OUT"
expect_contains "list-branch master" "master  $C2  -" "$OUT"
D1=$(pachctl commit -b dev -m "dev work")
expect_eq "log -b dev" "$D1 $C1" "$(pachctl log -b dev | awk 'NR>1{printf "%s%s", sep, $1; sep=" "}')"
expect_eq "log --all count" "3" "$(pachctl log --all --json | jq length)"
expect_eq "log -n" "1" "$(pachctl log -n 1 --json | jq length)"

# merge dev into master
M=$(pachctl merge dev)
[[ "$M" =~ ^[0-9a-f]{32}$ ]] && ok || fail "merge prints the commit id: $M"
expect_eq "merge took dev.txt" "dev" "$(pachctl get-file dev.txt)"
expect_eq "merge parent" "$D1" "$(pachctl inspect-commit --json "$M" | jq -r .merge_parent)"
expect_status 0 pachctl merge dev
expect_contains "up to date" "Already up to date" "$ERR"

# revert to the first commit
R=$(pachctl revert "$C1")
expect_eq "revert content" "hello" "$(pachctl get-file greeting.txt)"
expect_status 3 pachctl get-file dev.txt
expect_eq "revert parent" "$M" "$(pachctl inspect-commit --json "$R" | jq -r .parent)"

# delete-branch, delete-commit
T1=$(pachctl branch scratch && echo s | pachctl put-file -b scratch s && pachctl commit -b scratch)
pachctl delete-branch scratch
expect_status 3 pachctl get-file -b scratch s
expect_eq "commit of deleted branch stays" "s" "$(pachctl get-file -c "$T1" s)"
expect_status 0 pachctl delete-commit "$T1"
expect_status 3 pachctl inspect-commit "$T1"

# put-file -r, then fsck
mkdir -p "$LOCAL/tree/sub"
echo one > "$LOCAL/tree/one"; echo two > "$LOCAL/tree/sub/two"
pachctl put-file -r imported "$LOCAL/tree"
expect_eq "put -r" "two" "$(pachctl get-file imported/sub/two)"
expect_status 0 pachctl fsck
expect_contains "fsck ok" "ok: checked" "$OUT"
expect_eq "fsck json" "true" "$(pachctl fsck --json | jq .ok)"

# help and man agree on the command list
expect_status 0 pachctl help put-file
expect_contains "help put-file" "--append" "$OUT"
expect_status 0 pachctl --help
expect_status 0 pachctl --version
expect_contains "version" "pachctl 0.1.0" "$OUT"

# a merge conflict: paths on stdout, one line on stderr, nothing changed
pachctl branch c1 && pachctl branch c2
echo one | pachctl put-file -b c1 same.txt && pachctl commit -b c1 >/dev/null
echo two | pachctl put-file -b c2 same.txt && pachctl commit -b c2 >/dev/null
expect_status 5 pachctl merge -b c1 c2
expect_eq "conflict list" "conflict  same.txt" "$OUT"
expect_eq "conflict error one line" 1 "$(echo "$ERR" | wc -l)"
expect_eq "conflict changed nothing" "one" "$(pachctl get-file -b c1 same.txt)"
expect_status 0 pachctl help
expect_contains "help overview" "Subcommands:" "$OUT"
expect_contains "help lists merge" "merge" "$OUT"

# --store beats $PFS_STORE
expect_status 0 pachctl --store "$T/other" init
expect_status 0 pachctl --store "$T/other" list-file
expect_eq "other store empty" "NAME  TYPE  SIZE" "$OUT"
# put-file --offset: overwrite a range of an existing file, keep the rest
printf '0123456789' | pachctl put-file range.txt
printf 'AB' | pachctl put-file --offset 3 range.txt
expect_eq "offset write" "012AB56789" "$(pachctl get-file range.txt)"
printf 'XYZ' | pachctl put-file --offset 9 range.txt
expect_eq "offset write extends" "012AB5678XYZ" "$(pachctl get-file range.txt)"
expect_eq "read a range" "AB5" "$(pachctl get-file --offset 3 --length 3 range.txt)"
expect_status 2 pachctl put-file --offset 13 range.txt /etc/hostname
expect_contains "offset past the end says why" "past the end" "$ERR"
expect_status 3 pachctl put-file --offset 0 no-such.txt /etc/hostname
expect_status 2 pachctl put-file --offset 0 --append range.txt /etc/hostname
expect_status 2 pachctl put-file --offset -1 range.txt /etc/hostname
expect_eq "refused writes change nothing" "012AB5678XYZ" "$(pachctl get-file range.txt)"
# get-file -r: a whole directory (or commit) back into a new local directory
mkdir -p "$LOCAL/tree/a/b" && echo 1 > "$LOCAL/tree/a/one" && echo 2 > "$LOCAL/tree/a/b/two"
pachctl put-file -r export "$LOCAL/tree"
EXP=$(pachctl commit -m export)
expect_status 0 pachctl get-file -c "$EXP" -r export "$LOCAL/back"
expect_eq "get-file -r copies the tree" "" "$(diff -r "$LOCAL/tree" "$LOCAL/back")"
expect_status 0 pachctl --json get-file -r . "$LOCAL/all/nested"
expect_eq "get-file -r of the root, parents made" "b one" "$(ls "$LOCAL/all/nested/export/a" | paste -sd' ')"
expect_eq "--json counts what it copied" "$(pachctl list-file -R --json | jq '[.[] | select(.type == "file")] | length')" "$(echo "$OUT" | jq .files)"
expect_status 2 pachctl get-file -r export "$LOCAL/back"
expect_contains "refuses a non-empty directory" "not empty" "$ERR"
expect_status 2 pachctl get-file -r export/a/one "$LOCAL/x1"
expect_status 3 pachctl get-file -r nothing-here "$LOCAL/x2"
expect_status 2 pachctl get-file -r export
expect_status 2 pachctl get-file export/a/one "$LOCAL/x3"
[ ! -e "$LOCAL/x1" ] && [ ! -e "$LOCAL/x2" ] && ok || fail "refused get-file -r leaves no directory behind"
finish
