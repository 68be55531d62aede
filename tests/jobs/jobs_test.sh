#!/bin/bash
# jobs_test.sh: jobs end to end, with real containers (runc) made from an
# image this test builds offline (make_image.sh), driven by curl as the
# reference README writes its commands, and by pachctl, locally and with
# --address. Needs root. Env: PACHCTL, JOBSERVER, SOURCE_ROOT, PFS_TEST_ROOT.
source "$SOURCE_ROOT/tests/cli/lib.sh"
if [ "$(id -u)" -ne 0 ]; then echo "skipped: jobs need root (runc)" >&2; exit 77; fi
for p in runc podman; do
  command -v $p >/dev/null || { echo "FAIL: $p is not installed (scripts/deps.sh installs it)" >&2; exit 1; }
done

IMG=localhost/pfs-test-jobserver:$$
ARCHIVE=$LOCAL/jobserver.oci.tar
bash "$SOURCE_ROOT/tests/jobs/make_image.sh" "$JOBSERVER" "$IMG" "$ARCHIVE"

SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
S3PID=
cleanup() {
  local rc=$?
  # On a failure, what the server said last.
  if { [ "$rc" -ne 0 ] || [ "$FAILS" -ne 0 ]; } && [ -f "$LOCAL/serve.log" ]; then
    echo "--- the server's log (last lines):" >&2
    tail -20 "$LOCAL/serve.log" >&2
  fi
  stop_server
  if [ -n "$S3PID" ]; then kill "$S3PID" 2>/dev/null || true; fi
  podman rmi -f "$IMG" >/dev/null 2>&1 || true
  # Whatever a failed test left: only the containers of this test's stores.
  for r in "$T"/*/jobs/runc; do
    [ -d "$r" ] || continue
    for id in $(runc --root "$r" list -q 2>/dev/null); do runc --root "$r" delete -f "$id" || true; done
  done
  rm -rf "$LOCAL"
}
trap cleanup EXIT

# start_server STORE: a pachctl serve of STORE on a free loopback port; sets H.
start_server() {
  local log=$LOCAL/serve.log
  # Not the last server's address: its log goes before the new one starts.
  rm -f "$log"
  setsid "$PACHCTL" --store "$1" serve --listen 127.0.0.1:0 -q </dev/null >/dev/null 2>"$log" &
  SERVER_PID=$!
  H=
  for _ in $(seq 200); do
    H=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" 2>/dev/null || true)
    [ -n "$H" ] && break
    sleep 0.05
  done
  [ -n "$H" ] || { cat "$log" >&2; echo "FAIL: the server did not start" >&2; exit 1; }
}

job() {  # job NAME MODE [EXTRA JSON FIELDS] [INPUT] [TYPE]: a descriptor file
  printf '{"type": "%s", "input": "%s", "image": "%s", "command": ["/jobserver", "%s"]%s}\n' \
    "${5:-map}" "${4:-data}" "$IMG" "$2" "${3:-}" > "$LOCAL/$1.json"
}

S=$T/store
pachctl --store "$S" init >/dev/null
start_server "$S"
P() { "$PACHCTL" --address "$H" "$@"; }

# ---- the reference README's commands, verbatim (with curl)
for i in 1 2 3; do printf 'line %s of the file\n' "$i" | curl -sS -XPOST "$H/file/data/f$i.txt" -T - >/dev/null; done
printf 'deep file\n' | curl -sS -XPOST "$H/file/data/sub/deep.txt" -T - >/dev/null
printf 'spaced\n' | curl -sS -XPOST "$H/file/data/a%20b.txt" -T - >/dev/null
job upper upper
printf '{"type": "reduce", "input": "job/upper", "image": "%s", "command": "/jobserver count"}\n' "$IMG" > "$LOCAL/count.json"
expect_eq "POST /job/upper" 201 "$(curl -sS -o "$LOCAL/out" -w '%{http_code}' -XPOST "$H/job/upper" -T "$LOCAL/upper.json")"
curl -sS -XPOST "$H/job/count" -T "$LOCAL/count.json" >/dev/null
expect_eq "GET /job/upper: the descriptor" "map data" "$(curl -sS "$H/job/upper" | jq -r '.type + " " + .input')"
expect_eq "GET /job/count: a string command is split" '["/jobserver","count"]' "$(curl -sS "$H/job/count" | jq -c .command)"
C1=$(curl -sS -XPOST "$H/commit?run" | jq -r .id)
expect_eq "POST /commit?run returns a commit id at once" 32 "${#C1}"
# A read of a run in progress waits for it.
OUT=$(curl -sS "$H/job/upper/file/*?commit=$C1")
expect_contains "GET /job/upper/file/*: every output file" "LINE 2 OF THE FILE" "$OUT"
expect_contains "GET /job/upper/file/*: multipart parts" 'filename="f3.txt"' "$OUT"
expect_eq "GET /job/upper/file/f1.txt" "LINE 1 OF THE FILE" "$(curl -sS -XGET "$H/job/upper/file/f1.txt?commit=$C1")"
expect_eq "map walks subdirectories: sub/deep.txt" "DEEP FILE" "$(curl -sS "$H/job/upper/file/sub/deep.txt?commit=$C1")"
expect_eq "a name with a space is POSTed encoded and kept" "SPACED" "$(curl -sS "$H/job/upper/file/a%20b.txt?commit=$C1")"
# reduce over the map's output: 3 files of 5 words, 2 words, 1 word
expect_eq "reduce of job/upper (the chain map -> reduce)" 18 "$(curl -sS "$H/job/count/file/count?commit=$C1")"
expect_eq "runs of the commit" "count:success upper:success" "$(curl -sS "$H/runs/$C1" | jq -r '[.[] | .job + ":" + .state] | join(" ")')"
expect_eq "datums of the map" "5/5" "$(curl -sS "$H/runs/$C1/upper" | jq -r '"\(.datums.done)/\(.datums.total)"')"

# ---- outputs are per commit
printf 'changed\n' | curl -sS -XPOST "$H/file/data/f1.txt" -T - >/dev/null
C2=$(curl -sS -XPOST "$H/commit?run" | jq -r .id)
expect_eq "the new commit's output" "CHANGED" "$(curl -sS "$H/job/upper/file/f1.txt?commit=$C2")"
expect_eq "the old commit's output is as it was" "LINE 1 OF THE FILE" "$(curl -sS "$H/job/upper/file/f1.txt?commit=$C1")"
expect_eq "the old reduce too" 18 "$(curl -sS "$H/job/count/file/count?commit=$C1")"
C3=$(curl -sS -XPOST "$H/commit" | jq -r .id)
expect_eq "a commit made without run: 404" 404 "$(curl -sS -o "$LOCAL/out" -w '%{http_code}' "$H/job/upper/file/f1.txt?commit=$C3")"
expect_contains "... saying so" "without running" "$(jq -r .error "$LOCAL/out")"
expect_eq "no ?commit=: 400" 400 "$(curl -sS -o /dev/null -w '%{http_code}' "$H/job/upper/file/f1.txt")"
expect_eq "a job the commit lacks: 404" 404 "$(curl -sS -o /dev/null -w '%{http_code}' "$H/job/nojob/file/x?commit=$C1")"

# ---- bad descriptors: a 400 naming the field, nothing stored
bad() {  # bad NAME BODY FIELD
  local code
  code=$(curl -sS -o "$LOCAL/out" -w '%{http_code}' -XPOST "$H/job/$1" --data-binary "$2")
  expect_eq "bad descriptor ($3): 400" 400 "$code"
  expect_contains "bad descriptor ($3): names the field" "$3" "$(jq -r .error "$LOCAL/out")"
  expect_eq "bad descriptor ($3): nothing stored" 404 "$(curl -sS -o /dev/null -w '%{http_code}' "$H/job/$1")"
}
bad b1 '{"input": "data", "image": "x", "command": ["/a"]}' type
bad b2 "{\"type\": \"sort\", \"input\": \"data\", \"image\": \"$IMG\", \"command\": [\"/a\"]}" type
bad b3 "{\"type\": \"map\", \"input\": \"data\", \"image\": \"$IMG\", \"command\": [\"/a\"], \"colour\": 1}" colour
bad b4 '{"type": "map", "input": "data", "image": "Not A Valid/Ref::", "command": ["/a"]}' image
bad b5 "{\"type\": \"map\", \"input\": 7, \"image\": \"$IMG\", \"command\": [\"/a\"]}" input
bad b6 "{\"type\": \"map\", \"input\": \"../etc\", \"image\": \"$IMG\", \"command\": [\"/a\"]}" input
bad b7 "{\"type\": \"map\", \"input\": \"data\", \"image\": \"$IMG\", \"command\": \"'unclosed\"}" command
bad b8 "{\"type\": \"map\", \"input\": \"data\", \"image\": \"$IMG\", \"command\": [\"/a\"], \"parallel\": -1}" parallel
bad b9 "{\"type\": \"map\", \"input\": \"data\", \"image\": \"$IMG\", \"command\": [\"/a\"], \"memory\": \"lots\"}" memory
bad b10 'not json' JSON
# A cycle: upper <- x <- y, then upper reading y would close it.
job x upper "" job/upper; curl -sS -XPOST "$H/job/x" -T "$LOCAL/x.json" >/dev/null
code=$(curl -sS -o "$LOCAL/out" -w '%{http_code}' -XPOST "$H/job/upper" --data-binary "$(job upper upper '' job/x; cat "$LOCAL/upper.json")")
expect_eq "a cycle: 400" 400 "$code"
expect_contains "a cycle: the message shows it" "upper -> x -> upper" "$(jq -r .error "$LOCAL/out")"
expect_eq "a cycle: the old descriptor stays" data "$(curl -sS "$H/job/upper" | jq -r .input)"
curl -sS -XDELETE "$H/job/x" >/dev/null
expect_eq "DELETE /job/x" 404 "$(curl -sS -o /dev/null -w '%{http_code}' "$H/job/x")"
expect_eq "DELETE of a missing job: 404" 404 "$(curl -sS -o /dev/null -w '%{http_code}' -XDELETE "$H/job/x")"
curl -sS -XDELETE "$H/job/count" >/dev/null
curl -sS -XDELETE "$H/job/upper" >/dev/null

# ---- failures: visible as failed, never read as output
job f500 fail500
job crash crash
job hang hang ', "timeout": 1'
job nolisten nolisten
job oom oom ', "memory": "32m"'
job flood flood
job garbage garbage
printf '{"type": "map", "input": "data", "image": "localhost/pfs-no-such-image:1", "command": ["/x"]}\n' > "$LOCAL/noimage.json"
for j in f500 crash hang nolisten oom flood garbage noimage; do curl -sS -XPOST "$H/job/$j" -T "$LOCAL/$j.json" >/dev/null; done
CF=$(P commit --run 2>"$LOCAL/err") && st=0 || st=$?
expect_eq "commit --run with failing jobs: exit 5" 5 "$st"
expect_contains "commit --run says which did not succeed" "f500 failure" "$(cat "$LOCAL/err")"
state() { curl -sS "$H/runs/$CF/$1" | jq -r '.state + ": " + .reason'; }
expect_contains "HTTP 500: fails the run" "failure: file " "$(state f500)"
expect_contains "HTTP 500: with the status" "HTTP 500" "$(state f500)"
expect_contains "a crashing server: fails" "failure" "$(state crash)"
expect_contains "a hanging server: fails on the timeout" "Timeout" "$(state hang)"
expect_contains "a server that never listens: says so" "never listened" "$(state nolisten)"
expect_contains "... with its output" "told not to listen" "$(state nolisten)"
expect_contains "out of memory: says so" "out of memory" "$(state oom)"
expect_contains "an answer that is not HTTP: fails" "failure: file " "$(state garbage)"
expect_contains "a missing image: says how to load one" "podman load" "$(state noimage)"
expect_eq "a flood of output: the run still succeeds" "success: " "$(state flood)"
size=$(P get-logs flood -c "$CF" | wc -c)
[ "$size" -le $((8 * 1024 * 1024 + 200)) ] && [ "$size" -ge $((8 * 1024 * 1024)) ] && ok || fail "the flood's log is capped at 8 MiB (got $size bytes)"
expect_contains "the log says what was dropped" "more bytes of output were dropped" "$(P get-logs flood -c "$CF" | tail -c 200)"
code=$(curl -sS -o "$LOCAL/out" -w '%{http_code}' "$H/job/f500/file/f1.txt?commit=$CF")
expect_eq "the output of a failed run: 409" 409 "$code"
expect_eq "... a JSON error with the state" failure "$(jq -r .state "$LOCAL/out")"
expect_contains "... and the reason" "HTTP 500" "$(jq -r .reason "$LOCAL/out")"
expect_status 5 P get-file --job f500 -c "$CF" f1.txt
expect_eq "no container is left" "" "$(runc --root "$S/jobs/runc" list -q)"
for j in f500 crash hang nolisten oom flood garbage noimage; do curl -sS -XDELETE "$H/job/$j" >/dev/null; done

# ---- isolation: no host loopback, a read-only root, a writable /tmp
PORT=${H##*:}
job probe probe
curl -sS -XPOST "$H/job/probe" -T "$LOCAL/probe.json" >/dev/null
printf 'x' | curl -sS -XPOST "$H/file/data/$PORT" -T - >/dev/null
CP=$(P commit --run 2>/dev/null)
expect_eq "isolation" "host-loopback:unreachable root:read-only tmp:writable" "$(curl -sS "$H/job/probe/file/$PORT?commit=$CP")"
curl -sS -XDELETE "$H/job/probe" >/dev/null
curl -sS -XDELETE "$H/file/data/$PORT" >/dev/null

# ---- an image from an OCI archive, and pachctl's job commands (same output both ways)
printf '{"type": "map", "input": "data", "image": "oci-archive:%s", "command": ["/jobserver", "upper"]}\n' "$ARCHIVE" > "$LOCAL/arch.json"
expect_status 0 P create-job arch "$LOCAL/arch.json"
expect_status 3 P create-job nofile "$LOCAL/no-such-file.json"
expect_contains "a descriptor file that is not there: named" "cannot read $LOCAL/no-such-file.json" "$ERR"
expect_eq "... and no job made of it" "arch" "$(P list-job --json | jq -r '.[].name')"
expect_eq "list-job" "arch" "$(P list-job --json | jq -r '.[].name')"
CA=$(P commit --run 2>/dev/null)
expect_eq "an oci-archive image runs" "SPACED" "$(P get-file --job arch -c "$CA" "a b.txt")"
expect_eq "list-file --job -R" "5" "$(P list-file --job arch -c "$CA" -R --json | jq '[.[] | select(.type == "file")] | length')"
expect_eq "inspect-run" success "$(P inspect-run "$CA" arch --json | jq -r .state)"
REMOTE_RUNS=$(P list-run -c "$CA" --json | jq -c '[.[] | {job, state, datums}]')
REMOTE_JOB=$(P inspect-job arch --json)

# ---- kill -9 of the server during a run, then restart and rerun
job slow slow ', "cpu-shares": 512, "memory": "64m"'
curl -sS -XPOST "$H/job/slow" -T "$LOCAL/slow.json" >/dev/null
CK=$(curl -sS -XPOST "$H/commit?run" | jq -r .id)
for _ in $(seq 100); do [ "$(curl -sS "$H/runs/$CK/slow" | jq -r .state)" = running ] && break; sleep 0.05; done
# The limits are applied (v0.8 parsed cpu-shares and memory and never used
# them): the running container's cgroups, as the kernel has them.
CID=
for _ in $(seq 200); do
  for id in $(runc --root "$S/jobs/runc" list -q); do
    grep -q '"slow"' "$S/jobs/bundles/$id/config.json" 2>/dev/null && CID=$id
  done
  [ -n "$CID" ] && break
  sleep 0.05
done
[ -n "$CID" ] || fail "the slow job's container was not found running"
cg() { for f in "$@"; do [ -r "$f" ] && { cat "$f"; return; }; done; echo missing; }
expect_eq "cpu-shares reach the container's cgroup" 512 "$(cg /sys/fs/cgroup/cpu/pfs-jobs/$CID/cpu.shares /sys/fs/cgroup/cpu,cpuacct/pfs-jobs/$CID/cpu.shares)"
expect_eq "memory reaches the container's cgroup" 67108864 "$(cg /sys/fs/cgroup/memory/pfs-jobs/$CID/memory.limit_in_bytes /sys/fs/cgroup/pfs-jobs/$CID/memory.max)"
expect_eq "the pids limit too" 256 "$(cg /sys/fs/cgroup/pids/pfs-jobs/$CID/pids.max /sys/fs/cgroup/pfs-jobs/$CID/pids.max)"
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
# The stopped server's container lingers until the next start removes it.
start_server "$S"
expect_eq "after kill -9: the run is failed, not running" failure "$(curl -sS "$H/runs/$CK/slow" | jq -r .state)"
expect_contains "... as interrupted" "interrupted" "$(curl -sS "$H/runs/$CK/slow" | jq -r .reason)"
expect_eq "... its output is not readable" 409 "$(curl -sS -o /dev/null -w '%{http_code}' "$H/job/slow/file/f1.txt?commit=$CK")"
expect_eq "... no container is left after the restart" "" "$(runc --root "$S/jobs/runc" list -q)"
ARCH_BEFORE=$(curl -sS "$H/runs/$CK/arch" | jq -c '{state, attempt}')
expect_status 0 P rerun "$CK" slow
expect_eq "rerun completes it" "CHANGED" "$(curl -sS "$H/job/slow/file/f1.txt?commit=$CK")"
expect_eq "rerun: attempt 2" 2 "$(curl -sS "$H/runs/$CK/slow" | jq -r .attempt)"
# (arch may have ended before the kill, or been interrupted by it.)
expect_eq "rerun JOB left the commit's other run alone" "$ARCH_BEFORE" "$(curl -sS "$H/runs/$CK/arch" | jq -c '{state, attempt}')"
expect_status 0 P rerun "$CK"
expect_eq "rerun runs the rest" success "$(curl -sS "$H/runs/$CK/arch" | jq -r .state)"
expect_eq "rerun of a commit whose runs succeeded runs nothing" "[]" "$(P rerun "$CK" --json | jq -c .)"
expect_eq "outputs survive the restart" "LINE 1 OF THE FILE" "$(curl -sS "$H/job/upper/file/f1.txt?commit=$C1")"
curl -sS -XDELETE "$H/job/slow" >/dev/null
stop_server

# ---- S3 inputs, from a local S3 server (s3rver); credentials from the
# server's environment, never in a descriptor, a record, a log or an error
S3RVER=${S3RVER:-/opt/pfs-test-npm/node_modules/.bin/s3rver}
if [ ! -x "$S3RVER" ]; then
  fail "s3rver is not installed (scripts/deps.sh installs it)"
else
  mkdir -p "$LOCAL/s3"
  S3PORT=
  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 20000))
    setsid "$S3RVER" -d "$LOCAL/s3" -a 127.0.0.1 -p "$port" --configure-bucket jobs-in --silent \
      </dev/null >"$LOCAL/s3rver.log" 2>&1 &
    S3PID=$!
    for _ in $(seq 100); do
      curl -s -o /dev/null "http://127.0.0.1:$port/" && { S3PORT=$port; break; }
      kill -0 "$S3PID" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$S3PORT" ] && break
    kill "$S3PID" 2>/dev/null || true
  done
  [ -n "$S3PORT" ] || { cat "$LOCAL/s3rver.log" >&2; fail "s3rver did not start"; }
  s3put() { curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -T - "http://127.0.0.1:$S3PORT/jobs-in/$1"; }
  printf 'first log\n' | s3put logs/a.txt
  printf 'second log\n' | s3put logs/sub/b.txt
  printf 'not mine\n' | s3put other/c.txt
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_ENDPOINT_URL=http://127.0.0.1:$S3PORT AWS_REGION=us-east-1
  start_server "$S"
  printf '{"type": "map", "input": "s3://jobs-in/logs/", "image": "%s", "command": ["/jobserver", "upper"]}\n' "$IMG" > "$LOCAL/s3.json"
  curl -sS -XPOST "$H/job/s3up" -T "$LOCAL/s3.json" >/dev/null
  CS=$(P commit --run 2>"$LOCAL/err") || fail "commit --run with an S3 input: $(cat "$LOCAL/err")"
  expect_eq "S3 input: each object under the prefix is a datum" "FIRST LOG" "$(curl -sS "$H/job/s3up/file/a.txt?commit=$CS")"
  expect_eq "S3 input: deeper keys keep their path" "SECOND LOG" "$(curl -sS "$H/job/s3up/file/sub/b.txt?commit=$CS")"
  expect_eq "S3 input: nothing outside the prefix" "a.txt sub/b.txt" "$(P list-file --job s3up -c "$CS" -R --json | jq -r '[.[] | select(.type == "file") | .path] | join(" ")')"
  stop_server
  export AWS_ACCESS_KEY_ID=WRONGKEY AWS_SECRET_ACCESS_KEY=SECRET-THAT-MUST-NOT-LEAK
  start_server "$S"
  CW=$(P commit --run 2>/dev/null) || true
  W_REASON=$(curl -sS "$H/runs/$CW/s3up" | jq -r .reason)
  expect_contains "S3 with a wrong key: the run fails saying so" "s3://jobs-in/logs/" "$W_REASON"
  ALL="$(curl -sS "$H/runs/$CW/s3up")$(P get-logs s3up -c "$CW")$(cat "$LOCAL/serve.log")"
  case "$ALL" in *SECRET-THAT-MUST-NOT-LEAK*) fail "the S3 secret appears in a record, log or message" ;; *) ok ;; esac
  curl -sS -XDELETE "$H/job/s3up" >/dev/null
  stop_server
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL AWS_REGION
  kill "$S3PID" 2>/dev/null || true
  wait "$S3PID" 2>/dev/null || true
fi

# ---- locally: the same answers as through the server
expect_eq "list-run locally = remotely" "$REMOTE_RUNS" "$(pachctl --store "$S" list-run -c "$CA" --json | jq -c '[.[] | {job, state, datums}]')"
expect_eq "inspect-job locally = remotely" "$REMOTE_JOB" "$(pachctl --store "$S" inspect-job arch --json)"
expect_eq "get-file --job locally" "LINE 2 OF THE FILE" "$(pachctl --store "$S" get-file --job upper -c "$C1" f2.txt)"
printf 'local\n' | pachctl --store "$S" put-file data/f1.txt -
CL=$(pachctl --store "$S" commit --run 2>/dev/null)
expect_eq "commit --run locally runs and waits" "LOCAL" "$(pachctl --store "$S" get-file --job arch -c "$CL" f1.txt)"
expect_status 2 pachctl --store "$S" get-file --job arch f1.txt
expect_contains "--job without -c says what to add" "-c COMMIT" "$ERR"

# ---- outputs travel with clone; fsck is clean
pachctl clone "$S" "$T/copy" >/dev/null
expect_eq "a clone reads the outputs" "LINE 1 OF THE FILE" "$(pachctl --store "$T/copy" get-file --job upper -c "$C1" f1.txt)"
expect_eq "... and the runs" "success" "$(pachctl --store "$T/copy" inspect-run "$C1" count --json | jq -r .state)"
expect_status 0 pachctl --store "$S" fsck

finish
