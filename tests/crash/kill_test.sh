#!/usr/bin/env bash
# kill -9 at random moments: put-file and commit are killed over and over,
# at whatever step they happen to be in. After each kill the file holds its
# old content or its new one, whole; the branch's head is the old commit or
# a complete new one. At the end the store passes fsck, and every
# acknowledged commit reads back byte for byte.
source "$(dirname "$0")/../cli/lib.sh"
export PFS_STORE=$T/store-kill
pachctl init >/dev/null
ROUNDS=${KILL_ROUNDS:-40}
# Kills come after a random 0..KILL_MS-1 ms: 40 by default, more for a
# sanitizer build, whose processes take longer than that just to start.
KILL_MS=${KILL_MS:-$([ "${PFS_SANITIZE:-}" = 1 ] && echo 400 || echo 40)}

sha() { sha256sum | cut -c1-64; }
declare -A model=()  # path -> sha of the branch's working content
declare -A acked=()  # commit id -> "path=sha ..." at the time it was acknowledged
head_id() { pachctl list-branch --json | jq -r '.[] | select(.name == "master") | .head // ""'; }
# Runs CMD in its own process group, kills the whole group with SIGKILL
# after a random 0..KILL_MS-1 ms; returns CMD's status (137 when killed).
run_and_kill() {
  setsid "$@" >"$LOCAL/out" 2>/dev/null &
  local pid=$! st=0
  sleep "$(awk -v ms=$((RANDOM % KILL_MS)) 'BEGIN { printf "%.3f", ms / 1000 }')"
  kill -9 -- -"$pid" 2>/dev/null || true
  wait "$pid" || st=$?
  return $st
}
kills=0
for i in $(seq 1 "$ROUNDS"); do
  path="d/f$((i % 5))"
  head -c $(((RANDOM % 64 + 1) * 32768)) /dev/urandom > "$LOCAL/data"
  new=$(sha < "$LOCAL/data")
  old=${model[$path]:-absent}
  if run_and_kill "$PACHCTL" put-file "$path" "$LOCAL/data"; then
    model[$path]=$new
  else
    kills=$((kills + 1))
    now=$(pachctl get-file "$path" 2>/dev/null | sha) || now=absent
    if [ "$now" = "$old" ] || [ "$now" = "$new" ]; then ok
    else fail "round $i: $path is neither its old nor its new content after a kill"; fi
    [ "$now" = absent ] && unset "model[$path]" || model[$path]=$now
  fi
  before=$(head_id)
  if run_and_kill "$PACHCTL" commit -m "round $i"; then
    id=$(cat "$LOCAL/out")
    expect_eq "round $i: acknowledged commit is the head" "$id" "$(head_id)"
  else
    kills=$((kills + 1))
    id=$(head_id)
    [ "$id" = "$before" ] && continue   # rolled back (or not yet rolled forward: checked below)
  fi
  state=""
  for p in $(printf '%s\n' "${!model[@]}" | sort); do state+="$p=${model[$p]} "; done
  acked[$id]=$state
done
echo "killed $kills of $((2 * ROUNDS)) processes"
# Should every commit have been killed, one more that is not, so that there
# is an acknowledged commit to read back.
if [ ${#acked[@]} -eq 0 ]; then
  id=$(pachctl commit -m "unkilled")
  state=""
  for p in $(printf '%s\n' "${!model[@]}" | sort); do state+="$p=${model[$p]} "; done
  acked[$id]=$state
fi

expect_status 0 pachctl fsck
expect_contains "no damage after $kills kills" "problems: 0," "$OUT"
expect_status 0 pachctl fsck --repair
expect_status 0 pachctl fsck
expect_contains "clean after repair" "problems: 0, leftovers: 0" "$OUT"
bad=0
for id in "${!acked[@]}"; do
  for pair in ${acked[$id]}; do
    p=${pair%%=*} want=${pair#*=}
    got=$(pachctl get-file -c "$id" "$p" | sha) || got=unreadable
    [ "$got" = "$want" ] || { bad=$((bad + 1)); echo "commit $id: $p differs" >&2; }
  done
  n=$(pachctl list-file -R -c "$id" --json | jq '[.[] | select(.type == "file")] | length')
  [ "$n" = "$(echo ${acked[$id]} | wc -w)" ] || { bad=$((bad + 1)); echo "commit $id: $n files" >&2; }
done
expect_eq "every acknowledged commit (${#acked[@]}) reads back byte for byte" 0 "$bad"
finish
