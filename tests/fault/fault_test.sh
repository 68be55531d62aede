#!/usr/bin/env bash
# Fault injection (PFS_FAULT, libpfs/src/base/fault.h): every write operation
# is run once per fault point N, with the N-th step failing as a full disk
# (ENOSPC), a disk error (EIO) or a used-up quota (EDQUOT) would, until it
# runs past its last step. After each failure: exit status 9 (I/O) and one
# message naming what failed and the errno's text; nothing acknowledged
# before is lost; fsck is clean, or fsck --repair makes it clean; the store
# holds either the state before the operation or the state after it, never
# a mix; and the same operation then succeeds with the right content.
# FAULT_OPS="put commit ..." runs only those operations.
source "$(dirname "$0")/../cli/lib.sh"
export LC_ALL=C
unset PFS_FAULT PFS_FAULT_TRACE

ERRNOS=(ENOSPC EIO EDQUOT)
declare -A ERRTEXT=([ENOSPC]="No space left on device" [EIO]="Input/output error"
                    [EDQUOT]="Disk quota exceeded")
IO_STATUS=9     # README "Exit status": ENOSPC, EDQUOT and EIO are I/O errors
MAX_POINTS=200  # an operation with more steps than this is a runaway loop

# ---- local data the operations write
head -c 200000 /dev/urandom > "$LOCAL/new.bin"
printf 'appended\n' > "$LOCAL/tail.txt"
mkdir -p "$LOCAL/tree/sub"
echo one > "$LOCAL/tree/one.txt"
head -c 70000 /dev/urandom > "$LOCAL/tree/sub/two.bin"
: > "$LOCAL/tree/sub/empty"

# fresh NAME: a store with some history, made without faults. master: C1
# (base.txt, dir/a.txt), then C2 (+ more.txt); dev: C1 + d.txt (DEV).
fresh() {
  export PFS_STORE=$T/$1
  pachctl init >/dev/null
  echo base | pachctl put-file base.txt
  echo a | pachctl put-file dir/a.txt
  C1=$(pachctl commit -m c1)
  pachctl branch dev
  echo d | pachctl put-file -b dev d.txt
  DEV=$(pachctl commit -b dev -m d)
  echo more | pachctl put-file more.txt
  C2=$(pachctl commit -m c2)
}

# ---- the operations: setup_OP (optional, without faults) and op_OP (the
# operation, run under the fault plan), and NAMES_OP: what its message may
# name (a regular expression: the branch, path or commit concerned).
op_put() { "$PACHCTL" put-file new.bin "$LOCAL/new.bin"; }
NAMES_put='master|new\.bin'
op_append() { "$PACHCTL" put-file --append more.txt "$LOCAL/tail.txt"; }
NAMES_append='master|more\.txt'
op_offset() { printf XY | "$PACHCTL" put-file --offset 2 more.txt; }
NAMES_offset='master|more\.txt'
op_put_r() { "$PACHCTL" put-file -r imported "$LOCAL/tree"; }
NAMES_put_r='master|imported'
op_delete() { "$PACHCTL" delete-file dir; }
NAMES_delete='master|"dir"'
setup_commit() { echo wip | pachctl put-file wip.txt; }
op_commit() { "$PACHCTL" commit -m c3; }
NAMES_commit='master|[0-9a-f]{32}'
op_branch() { "$PACHCTL" branch feature; }
NAMES_branch='feature'
op_revert() { "$PACHCTL" revert -m reverted "$C1"; }
NAMES_revert='master|[0-9a-f]{32}'
op_merge() { "$PACHCTL" merge -m merged dev; }
NAMES_merge='master|dev|[0-9a-f]{32}'
setup_receive() {
  if [ ! -s "$LOCAL/stream" ]; then
    local src=$T/stream-source
    pachctl --store "$src" init >/dev/null
    pachctl --store "$src" put-file -r . "$LOCAL/tree"
    pachctl --store "$src" commit -m sent >/dev/null
    pachctl --store "$src" send master > "$LOCAL/stream"
  fi
}
op_receive() { "$PACHCTL" receive -b got < "$LOCAL/stream"; }
NAMES_receive='got|[0-9a-f]{32}|receiving'
# NOTE: a receive stores the commit (its commit point) and then moves the
# branch; a failure in between leaves the commit with no branch on it (as a
# crash there does, tests/crash/crash_test.sh receive.after-meta), and the
# retry receives it again: the states compare without the commit count.
PARTIAL_receive=1
norm_receive() { grep -v '^commits:'; }
# pull: another store (a clone of this one) has a new commit on master and a
# new branch.
setup_pull() {
  SRC=$PFS_STORE-src
  pachctl clone "$PFS_STORE" "$SRC" >/dev/null
  echo s | pachctl --store "$SRC" put-file s.txt
  pachctl --store "$SRC" commit -m s >/dev/null
  pachctl --store "$SRC" branch pulled
}
op_pull() { "$PACHCTL" pull "$SRC"; }
NAMES_pull='master|pulled|[0-9a-f]{32}|receiving'
# A pull receives the commits one by one and then moves the branches one by
# one: a failure leaves what was done before it, and the retry does the rest.
PARTIAL_pull=1
# gc: an object nothing refers to any more (on the portable backend).
setup_gc() {
  head -c 100000 /dev/urandom | pachctl put-file junk.bin
  echo small | pachctl put-file junk.bin
}
op_gc() { "$PACHCTL" gc; }
NAMES_gc='store'

# The store's state as a reader sees it, without commit ids or times (which
# differ from store to store): each branch's history length, dirty flag and
# files with their content; the number of commits.
state() {
  local b d
  echo "commits: $(pachctl log -a --json | jq length)"
  for b in $(pachctl list-branch --json | jq -r '.[].name' | sort); do
    echo "branch $b: $(pachctl log -b "$b" --json | jq length) commits," \
      "dirty $(pachctl list-branch --json | jq --arg b "$b" '.[] | select(.name == $b) | .dirty')"
    d=$(mktemp -d "$LOCAL/get.XXXXXX")
    rmdir "$d"
    pachctl get-file -b "$b" -r . "$d" >/dev/null
    (cd "$d" && find . -type f | sort | xargs -r md5sum)
    rm -rf "$d"
  done
}

# What was acknowledged before the operation is there and readable.
check_acknowledged() {
  local what=$1
  expect_eq "$what: C1's file" base "$(pachctl get-file -c "$C1" base.txt)"
  expect_eq "$what: C1's dir" a "$(pachctl get-file -c "$C1" dir/a.txt)"
  expect_eq "$what: C2's file" more "$(pachctl get-file -c "$C2" more.txt)"
  expect_eq "$what: dev's head" "$DEV" "$(pachctl inspect-commit --json dev | jq -r .id)"
  expect_eq "$what: dev's file" d "$(pachctl get-file -b dev d.txt)"
  pachctl log --json | jq -r '.[].id' | grep -qx "$C2" && ok || fail "$what: C2 left master's history"
}

# fsck finds no damage, or fsck --repair mends it; leftovers of the
# interrupted operation (which its branch's next write would finish or undo)
# are cleared by fsck --repair too, so that what a reader sees is settled.
# DAMAGED and LEFTOVERS count the failures that left either.
fsck_or_repair() {
  local what=$1 got=0
  pachctl fsck > "$T/fsck" 2>&1 || got=$?
  if [ "$got" != 0 ]; then
    DAMAGED=$((DAMAGED + 1))
    echo "  $what: fsck found: $(grep -v '^ok:\|^leftover:' "$T/fsck" | head -3 | tr '\n' ' ')" >&2
  elif ! grep -q 'leftovers: 0$' "$T/fsck"; then
    LEFTOVERS=$((LEFTOVERS + 1))
  fi
  if [ "$got" != 0 ] || ! grep -q 'leftovers: 0$' "$T/fsck"; then
    expect_status 0 pachctl fsck --repair
  fi
  expect_status 0 pachctl fsck
  expect_contains "$what: fsck clean" "problems: 0, leftovers: 0" "$OUT"
}

# norm OP: the state as OP's retries compare it (norm_OP, else as it is).
norm() {
  if declare -F "norm_$1" >/dev/null; then "norm_$1"; else cat; fi
}

# run_op OP: every fault point of OP, on the backend of this run.
run_op() {
  local op=$1 names_var="NAMES_$1" partial_var="PARTIAL_$1" n e got msg s before after after2
  local retry_status points names=${!names_var} partial=${!partial_var:-}
  DAMAGED=0 LEFTOVERS=0 PARTLY=0
  # The reference run: the state before, after once and after twice, and
  # how many fault points one run passes.
  fresh "$op-ref"
  if declare -F "setup_$op" >/dev/null; then "setup_$op"; fi
  before=$(state)
  got=0
  PFS_FAULT_TRACE=1 "op_$op" >/dev/null 2>"$T/trace" || got=$?
  expect_eq "$op: runs without a fault" 0 "$got"
  points=$(grep -c '^pfs fault point' "$T/trace" || true)
  after=$(state)
  [ "$before" != "$after" ] || [ "$op" = gc ] || fail "$op: changes nothing"
  retry_status=0
  "op_$op" >/dev/null 2>&1 || retry_status=$?
  after2=$(state)

  for ((n = 1; n <= MAX_POINTS; n++)); do
    e=${ERRNOS[$(((n - 1) % ${#ERRNOS[@]}))]}
    fresh "$op-$n"
    if declare -F "setup_$op" >/dev/null; then "setup_$op"; fi
    got=0
    PFS_FAULT=$e@$n PFS_FAULT_TRACE=1 "op_$op" >/dev/null 2>"$T/trace" || got=$?
    if ! grep -q '(fails)$' "$T/trace"; then  # ran past its last fault point
      expect_eq "$op: without reaching fault $n" 0 "$got"
      expect_eq "$op: state after" "$after" "$(state)"
      break
    fi
    local what="$op $e@$n ($(grep '(fails)$' "$T/trace" | sed 's/^pfs fault point [0-9]*: //; s/ (fails)$//'))"
    if [ "$got" = 0 ]; then
      echo "  $what: succeeded although a step failed" >&2
    else
      expect_eq "$what: exit status" "$IO_STATUS" "$got"
      msg=$(grep '^pachctl:' "$T/trace" | tail -1)
      expect_contains "$what: the errno's text" "${ERRTEXT[$e]}" "$msg"
      grep -Eq "$names" <<<"$msg" && ok || fail "$what: the message names nothing of $names: $msg"
    fi
    check_acknowledged "$what"
    fsck_or_repair "$what"
    s=$(state)
    got=0
    if [ "$s" = "$before" ]; then
      "op_$op" >/dev/null 2>"$T/stderr" || got=$?
      expect_eq "$what: then succeeds" 0 "$got"
      expect_eq "$what: then the state after" "$after" "$(state)"
    elif [ "$s" = "$after" ]; then  # failed after its commit point: done
      "op_$op" >/dev/null 2>"$T/stderr" || got=$?
      expect_eq "$what: again, as after one run" "$retry_status" "$got"
      expect_eq "$what: again, the state after two runs" "$after2" "$(state)"
    elif [ -n "$partial" ]; then  # partly done: the retry does the rest
      PARTLY=$((PARTLY + 1))
      "op_$op" >/dev/null 2>"$T/stderr" || got=$?
      expect_eq "$what: then the rest succeeds" 0 "$got"
      expect_eq "$what: then the state after" "$(norm "$op" <<<"$after")" "$(state | norm "$op")"
    else
      fail "$what: neither the state before nor after: $(diff <(echo "$before") <(echo "$s") | head -20)"
      continue
    fi
    expect_status 0 pachctl fsck
    expect_contains "$what: fsck clean after" "problems: 0, leftovers: 0" "$OUT"
  done
  expect_eq "$op: failed at each of its fault points" "$points" "$((n - 1))"
  echo "$op ($BACKEND): $points fault points; failures that left leftovers: $LEFTOVERS," \
    "damage: $DAMAGED$([ -z "$partial" ] || echo ", partly done: $PARTLY")"
}

# A plan that is not one aborts the process (SIGABRT: 134) with a message,
# so that no test passes without the fault it asked for.
export PFS_STORE=$T/plans
pachctl init >/dev/null
for plan in ENOSPC ENOSPC@ ENOSPC@0 ENOSPC@x @3 ENOENT@1 "ENOSPC@3 "; do
  expect_status 134 env PFS_FAULT="$plan" "$PACHCTL" status
  expect_contains "plan \"$plan\": the message" "is not a fault plan" "$ERR"
done
expect_status 0 env PFS_FAULT=EIO@1000 "$PACHCTL" status

for op in ${FAULT_OPS:-put append offset put_r delete commit branch revert merge receive pull gc}; do
  run_op "$op"
done
finish
