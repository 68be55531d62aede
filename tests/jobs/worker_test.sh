#!/bin/bash
# worker_test.sh: pfs-worker's protocol end to end (libpfs/src/jobs/
# worker_main.cc), driven through FIFOs as the engine drives it, run on the
# host (not as PID 1: the worker then kills only the command's process
# group). Env: PFS_WORKER.
set -u -o pipefail
WORKER=${PFS_WORKER:?}
D=$(mktemp -d)
export DIR=$D
WPID=
cleanup() {
  if [ -n "$WPID" ]; then kill -9 "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null; fi
  for f in "$D"/*.pid; do [ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  rm -rf "$D"
}
trap cleanup EXIT
FAILS=0
CHECKS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
# check NAME GOT WANT: GOT must be WANT exactly.
check() {
  CHECKS=$((CHECKS + 1))
  [ "$2" = "$3" ] || fail "$1: got $(printf %q "$2"), want $(printf %q "$3")"
}
# check_answer NAME GOT PREFIX: GOT must be "PREFIX <duration-ns>"; sets NS.
check_answer() {
  CHECKS=$((CHECKS + 1))
  NS=
  if [[ $2 =~ ^$3\ ([0-9]+)$ ]]; then NS=${BASH_REMATCH[1]}; else fail "$1: got $(printf %q "$2"), want \"$3 <ns>\""; fi
}
# gone NAME PIDFILE: the process whose pid the file holds no longer exists.
gone() {
  CHECKS=$((CHECKS + 1))
  local pid
  pid=$(cat "$2" 2>/dev/null) || { fail "$2: no pid file"; return; }
  if kill -0 "$pid" 2>/dev/null; then fail "$1: process $pid is still there"; fi
}
# children: how many processes (zombies too) the worker has.
children() {
  local s rest n=0
  for s in /proc/[0-9]*/stat; do
    rest=$(cat "$s" 2>/dev/null) || continue
    rest=${rest##*) }
    set -- $rest
    [ "$2" = "$WPID" ] && n=$((n + 1))
  done
  echo $n
}
# start WORKER ARGS...: a worker on FIFOs; fd 3 writes its input, fd 4 reads its answers.
start() {
  rm -f "$D/in" "$D/out"
  mkfifo "$D/in" "$D/out"
  "$@" <"$D/in" >"$D/out" 2>"$D/err" &
  WPID=$!
  exec 3>"$D/in" 4<"$D/out"
  if ! IFS= read -r -t 20 GOT <&4; then GOT="<no answer>"; fi
  check "first line" "$GOT" ready
}
# ask LINE: sends LINE, sets GOT to the answer.
ask() {
  echo "$1" >&3
  if ! IFS= read -r -t 40 GOT <&4; then GOT="<no answer>"; fi
}
# finish: after the worker was told to stop, its exit status and that it said nothing more.
finish() {
  local rest status
  if IFS= read -r -t 20 rest <&4; then fail "$1: more output: $rest"; fi
  wait "$WPID"; status=$?
  WPID=
  check "$1: exit status" "$status" 0
  check "$1: stderr" "$(cat "$D/err")" ""
  exec 3>&- 4<&-
}
seconds_since() { echo $(( (${EPOCHREALTIME/./} - ${1/./}) / 1000 )); }  # in ms, despite the name

LOG=$D/log
# One worker serves every datum; the datum id picks what the command does.
SCRIPT='case $PACH_DATUM_ID in
  ok) echo out; echo err >&2; echo "job=$PACH_JOB_ID" ;;
  three) echo bye; exit 3 ;;
  killed) kill -9 $$ ;;
  sleep) echo $$ > "$DIR/sh.pid"; sleep 30 & echo $! > "$DIR/sleep.pid"; wait ;;
  bg) sleep 30 & echo $! > "$DIR/bg.pid"; echo hi ;;
  big) head -c 100000 /dev/zero | tr "\0" x ;;
  env) echo "$PACH_DATUM_ID $PACH_JOB_ID" ;;
  stdin) cat ;;
esac'
PACH_DATUM_ID=stale PACH_JOB_ID=stale start "$WORKER" --log "$LOG" -- sh -c "$SCRIPT"

ask "run ok 0 1000 job1"
check_answer "run ok" "$GOT" "exit 0 0"
check "ok: stdout and stderr in the log" "$(cat "$LOG")" $'out\nerr\njob=job1'
[ -n "$NS" ] && [ "$NS" -gt 0 ] || fail "ok: duration $NS is not positive"

ask "run three 0 1000 j"
check_answer "run three" "$GOT" "exit 3 0"
check "three: log truncated, then written" "$(cat "$LOG")" bye

ask "run killed 0 1000 j"
check_answer "run killed" "$GOT" "signal 9 0"

# A timeout: the command and its background sleep are killed, at once.
t0=$EPOCHREALTIME
ask "run sleep 300 1000 j"
ms=$(seconds_since "$t0")
check_answer "run sleep (timeout)" "$GOT" "timeout 0"
[ "$ms" -lt 5000 ] || fail "timeout: the answer took $ms ms"
[ -n "$NS" ] && [ "$NS" -ge 300000000 ] && [ "$NS" -lt 5000000000 ] || fail "timeout: duration $NS ns"
gone "timeout: the command" "$D/sh.pid"
gone "timeout: its sleep" "$D/sleep.pid"

# The command exits while a background process holds the pipe: the worker
# does not wait for it, and kills it.
t0=$EPOCHREALTIME
ask "run bg 0 1000 j"
ms=$(seconds_since "$t0")
check_answer "run bg" "$GOT" "exit 0 0"
[ "$ms" -lt 5000 ] || fail "bg: the answer took $ms ms"
check "bg: log" "$(cat "$LOG")" hi
gone "bg: the background sleep" "$D/bg.pid"
check "bg: the worker has no children left (zombies included)" "$(children)" 0

ask "run big 0 1000 j"
check_answer "run big (log cap)" "$GOT" "exit 0 99000"
check "big: log size" "$(stat -c %s "$LOG")" 1000
check "big: log bytes" "$(tr -d x < "$LOG" | wc -c)" 0

ask "run env 0 1000 job-7"
check_answer "run env" "$GOT" "exit 0 0"
check "env: PACH_DATUM_ID and PACH_JOB_ID replace the worker's" "$(cat "$LOG")" "env job-7"

ask "run stdin 0 1000 j"
check_answer "run stdin (none given: /dev/null)" "$GOT" "exit 0 0"
check "stdin: nothing read" "$(cat "$LOG")" ""

ask "run ok 0 0 j"
check_answer "run ok, cap 0" "$GOT" "exit 0 14"
check "cap 0: empty log" "$(cat "$LOG")" ""

# Malformed commands are answered, and the worker goes on.
ask "bogus"
check "unknown command" "$GOT" 'error unknown command "bogus" (commands: run, quit)'
ask ""
check "empty line" "$GOT" 'error unknown command "" (commands: run, quit)'
usage='error usage: run <datum-id> <timeout-ms> <log-cap-bytes> <job-id>'
ask "run ok 0 1000"
check "run, a field short" "$GOT" "$usage"
ask "run ok 0 1000 j extra"
check "run, a field too many" "$GOT" "$usage"
ask "run ok x 1000 j"
check "run, timeout not a number" "$GOT" "$usage"
ask "run ok 0 -1 j"
check "run, negative cap" "$GOT" "$usage"
ask "run  0 1000 j"
check "run, empty datum (two spaces)" "$GOT" "$usage"
ask "run ok 0 1000 after-errors"
check_answer "run after errors" "$GOT" "exit 0 0"
check "after errors: log" "$(cat "$LOG")" $'out\nerr\njob=after-errors'

echo quit >&3
finish quit

# --stdin: the same lines for every datum; end of input exits 0.
printf 'a\nb\n' > "$D/stdin.txt"
start "$WORKER" --stdin "$D/stdin.txt" --log "$LOG" -- cat
ask "run d1 0 1000 j"
check_answer "stdin d1" "$GOT" "exit 0 0"
check "stdin d1: log" "$(cat "$LOG")" $'a\nb'
ask "run d2 0 1000 j"
check_answer "stdin d2" "$GOT" "exit 0 0"
check "stdin d2: log" "$(cat "$LOG")" $'a\nb'
exec 3>&-
finish "end of input"

# A command that cannot be run: 127, and why in the log.
start "$WORKER" --log "$LOG" -- "$D/no-such-command" arg
ask "run d 0 1000 j"
check_answer "exec failure" "$GOT" "exit 127 0"
check "exec failure: log" "$(cat "$LOG")" "pfs-worker: cannot run \"$D/no-such-command\": No such file or directory"
echo quit >&3
finish "quit after exec failure"

# A program found in $PATH: looked up once, then run from there; when it
# is gone, the lookup is made again (another one in $PATH is found); a
# script without #! runs with /bin/sh, as execvp does.
mkdir -p "$D/bin1" "$D/bin2"
printf '#!/bin/sh\necho first "$@"\n' > "$D/bin1/pfs-tool"
printf 'echo second "$@"\n' > "$D/bin2/pfs-tool"  # (no #!)
chmod +x "$D/bin1/pfs-tool" "$D/bin2/pfs-tool"
PATH="$D/bin1:$D/bin2:$PATH" start "$WORKER" --log "$LOG" -- pfs-tool x
ask "run d1 0 1000 j"
check_answer "PATH d1" "$GOT" "exit 0 0"
check "PATH d1: the first in PATH" "$(cat "$LOG")" "first x"
rm "$D/bin1/pfs-tool"
ask "run d2 0 1000 j"
check_answer "PATH d2 (the first one removed)" "$GOT" "exit 0 0"
check "PATH d2: the next in PATH, a script without #!" "$(cat "$LOG")" "second x"
echo quit >&3
finish "quit after PATH"

# As PID 1 of a pid namespace (as in a container; needs root): after each
# datum nothing else is left, not even a process that left the command's
# session (setsid).
if unshare --pid --fork --mount-proc true 2>/dev/null; then
  SCRIPT='case $PACH_DATUM_ID in
    escape) setsid sleep 30 & sleep 0.1; echo hi ;;
    timeout) (setsid sleep 30 &); sleep 30 ;;
    others) for p in /proc/[0-9]*; do [ "$p" = /proc/1 ] || [ "$p" = /proc/$$ ] || echo "$p"; done; echo "pid1=$(cat /proc/1/comm)" ;;
  esac'
  start unshare --pid --fork --mount-proc "$WORKER" --log "$LOG" -- sh -c "$SCRIPT"
  ask "run others 0 1000 j"
  check_answer "pid 1: others" "$GOT" "exit 0 0"
  check "pid 1: no other process at first" "$(cat "$LOG")" "pid1=pfs-worker"
  t0=$EPOCHREALTIME
  ask "run escape 0 1000 j"
  ms=$(seconds_since "$t0")
  check_answer "pid 1: escape" "$GOT" "exit 0 0"
  [ "$ms" -lt 5000 ] || fail "pid 1: escape: the answer took $ms ms"
  check "pid 1: escape: log" "$(cat "$LOG")" hi
  ask "run others 0 1000 j"
  check_answer "pid 1: others after escape" "$GOT" "exit 0 0"
  check "pid 1: the escaped sleep is gone" "$(cat "$LOG")" "pid1=pfs-worker"
  ask "run timeout 300 1000 j"
  check_answer "pid 1: timeout" "$GOT" "timeout 0"
  ask "run others 0 1000 j"
  check_answer "pid 1: others after timeout" "$GOT" "exit 0 0"
  check "pid 1: nothing left after the timeout" "$(cat "$LOG")" "pid1=pfs-worker"
  echo quit >&3
  finish "pid 1: quit"
else
  echo "(not root: the checks as PID 1 are left out)"
fi

# Bad arguments: usage, status 2.
rm -f "$D/in" "$D/out"
"$WORKER" -- true </dev/null >"$D/out" 2>"$D/err"
check "no --log: status" "$?" 2
check "no --log: stdout" "$(cat "$D/out")" ""
check "no --log: stderr" "$(cat "$D/err")" "usage: pfs-worker --log FILE [--stdin FILE] -- CMD [ARGS...]"
"$WORKER" --log "$LOG" -- </dev/null >"$D/out" 2>&1
check "no command: status" "$?" 2

echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
