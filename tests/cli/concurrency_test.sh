#!/usr/bin/env bash
# Several pachctl processes on one store at once: no acknowledged write is
# lost, the store stays consistent, readers are not blocked.
source "$(dirname "$0")/lib.sh"
pachctl init >/dev/null
pachctl branch side

WRITERS=6 FILES=25
pids=()
for w in $(seq 1 $WRITERS); do
  (
    for i in $(seq 1 $FILES); do
      b=master; [ $((i % 3)) -eq 0 ] && b=side
      echo "w$w-f$i" | "$PACHCTL" put-file -b $b "w$w/f$i" || exit 1
    done
  ) &
  pids+=($!)
done
( for i in $(seq 1 8); do "$PACHCTL" commit >/dev/null || exit 1; "$PACHCTL" commit -b side >/dev/null || exit 1; done ) &
pids+=($!)
( for i in $(seq 1 20); do "$PACHCTL" list-file -R >/dev/null || exit 1; "$PACHCTL" log >/dev/null || exit 1; done ) &
pids+=($!)
for p in "${pids[@]}"; do wait "$p" && ok || fail "a concurrent process failed"; done

pachctl commit >/dev/null
pachctl commit -b side >/dev/null
# Every acknowledged write is there, with its content.
missing=0
for w in $(seq 1 $WRITERS); do
  for i in $(seq 1 $FILES); do
    b=master; [ $((i % 3)) -eq 0 ] && b=side
    [ "$(pachctl get-file -c $b "w$w/f$i")" == "w$w-f$i" ] || missing=$((missing + 1))
  done
done
expect_eq "no lost writes" 0 "$missing"
expect_eq "master figures" "$((WRITERS * (FILES - FILES / 3)))" "$(pachctl inspect-commit --json master | jq .files)"
expect_eq "side figures" "$((WRITERS * (FILES / 3)))" "$(pachctl inspect-commit --json side | jq .files)"
expect_eq "master commits" 9 "$(pachctl log --json | jq length)"
expect_status 0 pachctl fsck
finish
