#!/usr/bin/env bash
# Commit events: pachctl wait-commit and list-commit --follow, locally and
# (PFS_TEST_REMOTE=1) against a server. A waiter sees every commit, in order,
# exactly once when it passes its cursor along; it waits without a timeout
# until something happens; bad cursors and names are refused.
source "$(dirname "$0")/lib.sh"
pachctl init >/dev/null
BG=()
# pachctl is a shell function (lib.sh), so a background one is a subshell
# with pachctl as its child: stop both, by their ids.
kill_tree() {
  local pid=$1 child
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill "$child" 2>/dev/null || true; done
  kill "$pid" 2>/dev/null || true
}
trap 'for p in "${BG[@]}"; do kill_tree "$p"; done; cleanup' EXIT

# Nothing happens: a timeout, status 124, nothing on stdout, a cursor on stderr.
expect_status 124 pachctl wait-commit master --timeout 0.2
expect_eq "timeout prints nothing" "" "$OUT"
expect_contains "timeout gives a cursor" "cursor: master:" "$ERR"
expect_status 124 pachctl wait-commit master --timeout 0.2 --json
expect_eq "timeout --json: no events" "0" "$(jq '.events | length' <<<"$OUT")"
C0=$(jq -r .cursor <<<"$OUT")
expect_eq "cursor of a branch without commits" "master:" "$C0"

# A waiter started before a commit wakes with exactly that commit. It gets
# the cursor from before, so that a slow start cannot make it miss it.
pachctl wait-commit master --since "$C0" --json >"$LOCAL/w1" 2>/dev/null &
W=$!; BG+=("$W")
sleep 0.5  # most likely waiting by now; if not, --since still reports the commit
echo a | pachctl put-file a
A=$(pachctl commit -m first)
wait "$W" && ok || fail "wait-commit did not exit 0"
expect_eq "waiter got the commit" "$A" "$(jq -r '.events[0].commit.id' "$LOCAL/w1")"
expect_eq "waiter got one event" "1" "$(jq '.events | length' "$LOCAL/w1")"
expect_eq "event names the branch" "master" "$(jq -r '.events[0].branch' "$LOCAL/w1")"
C1=$(jq -r .cursor "$LOCAL/w1")
expect_eq "cursor names the head" "master:$A" "$C1"

# Resuming from an old cursor reports everything since, oldest first.
B=$(pachctl commit -m second)
C=$(pachctl commit -m third)
expect_status 0 pachctl wait-commit master --since "$C0" --json
expect_eq "all since the first cursor, oldest first" "$A $B $C" "$(jq -r '[.events[].commit.id] | join(" ")' <<<"$OUT")"
expect_status 0 pachctl wait-commit master --since "$C1"
expect_eq "table: two rows and a header" "3" "$(wc -l <<<"$OUT")"
expect_contains "table row" "$C" "$OUT"
expect_contains "cursor on stderr" "cursor: master:$C" "$ERR"
expect_status 124 pachctl wait-commit master --since "master:$C" --timeout 0.2

# --cursor-file: a loop that stores its cursor misses nothing and sees nothing twice.
CF=$LOCAL/cursor
expect_status 124 pachctl wait-commit master --cursor-file "$CF" --timeout 0.2
expect_eq "cursor file written" "master:$C" "$(cat "$CF")"
D=$(pachctl commit -m fourth)
E=$(pachctl commit -m fifth)
expect_status 0 pachctl wait-commit master --cursor-file "$CF" --json
expect_eq "cursor file: both" "$D $E" "$(jq -r '[.events[].commit.id] | join(" ")' <<<"$OUT")"
expect_status 124 pachctl wait-commit master --cursor-file "$CF" --timeout 0.2
expect_eq "cursor file moved" "master:$E" "$(cat "$CF")"

# Any branch: a new branch reports its head; commits on two branches are
# grouped by branch; a revert and a merge are commits like any other.
expect_status 124 pachctl wait-commit --timeout 0.1 --json
ANY=$(jq -r .cursor <<<"$OUT")
pachctl branch dev >/dev/null
echo d | pachctl put-file -b dev d
F=$(pachctl commit -b dev -m dev1)
G=$(pachctl commit -m master6)
expect_status 0 pachctl wait-commit --since "$ANY" --json
expect_eq "any: dev then master" "dev:$F master:$G" "$(jq -r '[.events[] | .branch + ":" + .commit.id] | join(" ")' <<<"$OUT")"
ANY=$(jq -r .cursor <<<"$OUT")
expect_eq "any cursor" "dev:$F,master:$G" "$ANY"
M=$(pachctl merge dev)
expect_status 0 pachctl wait-commit --since "$ANY" --json
expect_eq "merge is one commit on master" "master:$M" "$(jq -r '[.events[] | .branch + ":" + .commit.id] | join(" ")' <<<"$OUT")"
ANY=$(jq -r .cursor <<<"$OUT")
pachctl branch copy "$A" >/dev/null
expect_status 0 pachctl wait-commit --since "$ANY" --json
expect_eq "a new branch reports its head only" "copy:$A" "$(jq -r '[.events[] | .branch + ":" + .commit.id] | join(" ")' <<<"$OUT")"
ANY=$(jq -r .cursor <<<"$OUT")
pachctl delete-branch copy
expect_status 124 pachctl wait-commit --since "$ANY" --timeout 0.2 --json
expect_eq "a deleted branch reports nothing" "0" "$(jq '.events | length' <<<"$OUT")"
expect_eq "and leaves the cursor" "dev:$F,master:$M" "$(jq -r .cursor <<<"$OUT")"

# A branch that does not exist yet is waited for: its creation (from
# master's head) is the first event, its commits the next.
# (A cursor that does not name "later": whenever the waiter starts, the
# branch is new to it.)
pachctl wait-commit later --since "master:$M" --json >"$LOCAL/w2" 2>/dev/null &
W=$!; BG+=("$W")
sleep 0.3
pachctl branch later >/dev/null
wait "$W" && ok || fail "wait-commit on a new branch did not exit 0"
expect_eq "a branch made while waiting" "later:$M" "$(jq -r '[.events[] | .branch + ":" + .commit.id] | join(" ")' "$LOCAL/w2")"
echo l | pachctl put-file -b later l
L=$(pachctl commit -b later)
expect_status 0 pachctl wait-commit later --since "$(jq -r .cursor "$LOCAL/w2")" --json
expect_eq "then its commit" "later:$L" "$(jq -r '[.events[] | .branch + ":" + .commit.id] | join(" ")' <<<"$OUT")"

# list-commit --follow: the history, then each new commit, as JSON Lines.
pachctl log -b dev -f --json >"$LOCAL/follow" 2>/dev/null &
W=$!; BG+=("$W")
sleep 0.5
N1=$(pachctl commit -b dev -m n1)
N2=$(pachctl commit -b dev -m n2)
for _ in $(seq 100); do [ "$(wc -l <"$LOCAL/follow")" -ge 8 ] && break; sleep 0.1; done
kill_tree "$W"; wait "$W" 2>/dev/null || true
expect_eq "follow: history then new, oldest first" "$A $B $C $D $E $F $N1 $N2" "$(jq -r .commit.id "$LOCAL/follow" | tr '\n' ' ' | sed 's/ $//')"

# Bad input: a clear error, status 2, nothing changes.
expect_status 2 pachctl wait-commit master --since "nonsense" --timeout 0.1
expect_contains "bad cursor says so" "invalid cursor" "$ERR"
expect_status 2 pachctl wait-commit master --since "master:1234" --timeout 0.1
expect_status 2 pachctl wait-commit master --since "bad/name:" --timeout 0.1
expect_status 2 pachctl wait-commit master --since "master:$A," --timeout 0.1
expect_status 2 pachctl wait-commit "bad/name" --timeout 0.1
expect_contains "bad branch says so" "invalid branch name" "$ERR"
expect_status 2 pachctl wait-commit master --timeout -1
expect_status 2 pachctl wait-commit master --timeout soon
expect_eq "nothing changed" "$N2" "$(pachctl inspect-commit dev --json | jq -r .id)"
finish
