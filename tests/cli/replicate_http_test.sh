#!/usr/bin/env bash
# Replication over HTTP, with curl and pachctl as users drive them: GET /send
# (whole and incremental streams, by id, prefix and branch; 404s as JSON),
# POST /receive into another server's store (as a new commit on a branch, or
# as exactly the sender's commit), bad streams refused with nothing changed,
# POST /branch/<b>/head by compare-and-swap, a token on all three. Servers
# listen on 127.0.0.1 only and are stopped by PID at exit.
source "$(dirname "$0")/lib.sh"

source "$(dirname "$0")/http_lib.sh"
uri() { jq -rn --arg s "$1" '$s | @uri'; }
# put URL PATH FILE: writes FILE as PATH on master.
put() { curl -sSf -XPOST "$1/file/$(uri "$2")?branch=master" --data-binary @"$3" >/dev/null; }
# tree URL COMMIT: the commit's files and sizes, one JSON line.
tree() { curl -sSf "$1/list/?recursive=true&commit=$2" | jq -c '[.[] | {path, type, size}]'; }
# same_files URL COMMIT WHAT: every file of the commit on URL reads back as on A's ORIG commit.
same_files() {
  local url=$1 commit=$2 orig=$3 what=$4 p bad=0
  expect_eq "$what: tree" "$(tree "$HA" "$orig")" "$(tree "$url" "$commit")"
  while IFS= read -r p; do
    curl -sSf "$HA/file/$(uri "$p")?commit=$orig" > "$LOCAL/want"
    curl -sSf "$url/file/$(uri "$p")?commit=$commit" > "$LOCAL/got" || bad=1
    cmp -s "$LOCAL/want" "$LOCAL/got" || { bad=1; echo "differs: $p" >&2; }
  done < <(curl -sSf "$HA/list/?recursive=true&commit=$orig" | jq -r '.[] | select(.type=="file") | .path')
  expect_eq "$what: files read back identical" 0 "$bad"
}
# state URL: every commit and every branch of a store (what a refused
# request must not change).
state() { curl -sSf "$1/commit"; curl -sSf "$1/branch"; }
# wait_log FILE PATTERN: the server writes its log line after the response.
wait_log() { for _ in $(seq 100); do grep -q -- "$2" "$1" && return; sleep 0.05; done; }
magic() { head -c 13 "$1" | od -An -c | tr -s ' '; }
MAGIC=$(printf 'btrfs-stream\0' | od -An -c | tr -s ' ')

A=$T/a B=$T/b
pachctl init "$A" >/dev/null
pachctl init "$B" >/dev/null
serve "$A" "$T/a.log"
HA=$H
serve "$B" "$T/b.log"
HB=$H

# ---- a history on A -----------------------------------------------------------
mkdir -p "$LOCAL/src"
head -c 3000000 /dev/urandom > "$LOCAL/src/big"
echo "one" > "$LOCAL/src/one"
printf '' > "$LOCAL/src/empty"
echo "deep" > "$LOCAL/src/deep"
echo "spaced" > "$LOCAL/src/spaced"
put "$HA" big "$LOCAL/src/big"
put "$HA" one.txt "$LOCAL/src/one"
put "$HA" empty "$LOCAL/src/empty"
put "$HA" "dir/sub/deep.txt" "$LOCAL/src/deep"
put "$HA" "dir/a b €.txt" "$LOCAL/src/spaced"
MSG1=$'first: 100% & more\nsecond line, "quoted" é'
C1=$(curl -sSf -XPOST "$HA/commit?branch=master&message=$(uri "$MSG1")" | jq -r .id)
echo "two" > "$LOCAL/src/two"
put "$HA" one.txt "$LOCAL/src/two"
put "$HA" two.txt "$LOCAL/src/two"
curl -sSf -XDELETE "$HA/file/empty?branch=master" >/dev/null
C2=$(curl -sSf -XPOST "$HA/commit?branch=master&message=second" | jq -r .id)
[[ $C1 =~ ^[0-9a-f]{32}$ && $C2 =~ ^[0-9a-f]{32}$ ]] && ok || fail "commits on A: [$C1] [$C2]"

# ---- GET /send ------------------------------------------------------------------
code=$(curl -sS -D "$LOCAL/h1" -o "$LOCAL/c1.stream" -w '%{http_code}' "$HA/send/$C1")
expect_eq "send by id: status" 200 "$code"
expect_eq "send by id: magic" "$MAGIC" "$(magic "$LOCAL/c1.stream")"
hdr() { tr -d '\r' < "$1" | awk -F': ' -v k="$2" 'tolower($1)==k {print $2}'; }
expect_eq "send: content type" "application/octet-stream" "$(hdr "$LOCAL/h1" content-type)"
expect_eq "send: chunked" "chunked" "$(hdr "$LOCAL/h1" transfer-encoding)"
expect_eq "send: X-Pfs-Commit" "$C1" "$(hdr "$LOCAL/h1" x-pfs-commit)"
[ "$(stat -c %s "$LOCAL/c1.stream")" -gt 3000000 ] && ok || fail "send: the stream holds the data"
curl -sSf -D "$LOCAL/h2" -o "$LOCAL/master.stream" "$HA/send/master" && ok || fail "send by branch"
expect_eq "send by branch: magic" "$MAGIC" "$(magic "$LOCAL/master.stream")"
expect_eq "send by branch: its head" "$C2" "$(hdr "$LOCAL/h2" x-pfs-commit)"
curl -sSf -D "$LOCAL/h3" -o "$LOCAL/prefix.stream" "$HA/send/${C1:0:8}" && ok || fail "send by prefix"
expect_eq "send by prefix: the commit" "$C1" "$(hdr "$LOCAL/h3" x-pfs-commit)"
curl -sSf -D "$LOCAL/h4" -o "$LOCAL/c2.inc" "$HA/send/$C2?parent=$C1" && ok || fail "incremental send"
expect_eq "incremental: magic" "$MAGIC" "$(magic "$LOCAL/c2.inc")"
expect_eq "incremental: X-Pfs-Parent" "$C1" "$(hdr "$LOCAL/h4" x-pfs-parent)"
full=$(stat -c %s "$LOCAL/master.stream") inc=$(stat -c %s "$LOCAL/c2.inc")
[ "$inc" -lt 100000 ] && [ "$inc" -lt "$full" ] && ok || fail "incremental stream is small: $inc of $full"
expect_error "send: unknown commit" 404 not_found GET "$HA/send/0123456789abcdef0123456789abcdef"
expect_error "send: unknown branch" 404 not_found GET "$HA/send/nope"
expect_error "send: unknown parent" 404 not_found GET "$HA/send/$C2?parent=0123456789abcdef0123456789abcdef"
expect_error "send: unknown parent branch" 404 not_found GET "$HA/send/$C2?parent=nope"
expect_error "send: against itself" 400 invalid_argument GET "$HA/send/$C2?parent=$C2"
wait_log "$T/a.log" "GET /send/$C1 200 $(stat -c %s "$LOCAL/c1.stream") "
expect_contains "log: the stream's bytes" "GET /send/$C1 200 $(stat -c %s "$LOCAL/c1.stream") " "$(cat "$T/a.log")"

# ---- POST /receive onto a branch ----------------------------------------------
req POST "$HB/receive?branch=imported" --data-binary @"$LOCAL/c1.stream"
expect_eq "receive: status" 200 "$CODE"
R1=$(jq -r .commit.id <<<"$BODY")
expect_eq "receive: stream bytes" "$(stat -c %s "$LOCAL/c1.stream")" "$(jq .stream_bytes <<<"$BODY")"
expect_eq "receive: skipped" "[]" "$(jq -c .skipped <<<"$BODY")"
expect_eq "receive: figures" "$(curl -s "$HA/commit/$C1" | jq -c '[.files, .bytes]')" \
  "$(jq -c '[.commit.files, .commit.bytes]' <<<"$BODY")"
expect_eq "receive: branch created at the commit" "$R1" "$(curl -s "$HB/branch/imported" | jq -r .head)"
same_files "$HB" "$R1" "$C1" "receive onto a branch"
# The incremental stream names C1, which B knows as R1: ?parent= says so.
req POST "$HB/receive?branch=imported&parent=$R1" --data-binary @"$LOCAL/c2.inc"
expect_eq "incremental receive: status" 200 "$CODE"
R2=$(jq -r .commit.id <<<"$BODY")
expect_eq "incremental receive: parent" "$R1" "$(curl -s "$HB/commit/$R2" | jq -r .parent)"
same_files "$HB" "$R2" "$C2" "incremental receive"
# A body of unknown length (chunked), from a pipe.
code=$(cat "$LOCAL/master.stream" | curl -sS -o "$LOCAL/piped.json" -w '%{http_code}' -XPOST -T - \
  "$HB/receive?branch=piped")
expect_eq "chunked receive: status" 200 "$code"
same_files "$HB" "$(jq -r .commit.id "$LOCAL/piped.json")" "$C2" "chunked receive"
# pachctl, locally and through the server, sees the received commit.
expect_eq "pachctl --address: the received commit" "$(pachctl --store "$B" --json inspect-commit "$R2")" \
  "$(pachctl --address "$HB" --json inspect-commit "$R2")"
expect_eq "pachctl --address: a file of it" "two" "$(pachctl --address "$HB" get-file -c "$R2" two.txt)"

# ---- POST /receive as exactly the sender's commit --------------------------------
# NOTE: jq holds numbers as doubles, and nanoseconds since 1970 need more
# than 53 bits: time_ns is taken from the JSON text, and commits are compared
# as the server's text (its keys are sorted).
exact_query() {  # COMMIT-JSON: the query that records exactly that commit
  local ns
  ns=$(grep -o '"time_ns":-\?[0-9]*' <<<"$1" | cut -d: -f2)
  jq -r --arg ns "$ns" '"id=\(.id)&commit_parent=\(.parent // "" | @uri)&merge_parent=\(.merge_parent // "" | @uri)" +
         "&commit_branch=\(.branch | @uri)&time_ns=\($ns)&message=\(.message | @uri)" +
         "&files=\(.files)&bytes=\(.bytes)"' <<<"$1"
}
branches_before=$(curl -s "$HB/branch")
J1=$(curl -sSf "$HA/commit/$C1")
req POST "$HB/receive?$(exact_query "$J1")" --data-binary @"$LOCAL/c1.stream"
expect_eq "exact receive: status" 200 "$CODE"
expect_eq "exact receive: the same commit" "$J1" "$(curl -s "$HB/commit/$C1")"
expect_eq "exact receive: the message, % and all" "$MSG1" "$(curl -s "$HB/commit/$C1" | jq -r .message)"
J2=$(curl -sSf "$HA/commit/$C2")
req POST "$HB/receive?$(exact_query "$J2")" --data-binary @"$LOCAL/c2.inc"
expect_eq "exact incremental receive: status" 200 "$CODE"
expect_eq "exact incremental receive: the same commit" "$J2" "$(curl -s "$HB/commit/$C2")"
same_files "$HB" "$C2" "$C2" "exact receive"
expect_eq "exact receive moves no branch" "$branches_before" "$(curl -s "$HB/branch")"
expect_error "exact receive: the id exists" 409 already_exists POST "$HB/receive?$(exact_query "$J1")" \
  --data-binary @"$LOCAL/c1.stream"

# ---- bad streams and bad queries: 400, nothing changed -----------------------------
before=$(state "$HB")
size=$(stat -c %s "$LOCAL/c1.stream")
head -c $((size / 2)) "$LOCAL/c1.stream" > "$LOCAL/truncated"
head -c $((size - 1)) "$LOCAL/c1.stream" > "$LOCAL/short1"
cp "$LOCAL/c1.stream" "$LOCAL/flipped"
for off in 200 $((size / 2)); do  # in the first commands, and in file data
  byte=$(od -An -tu1 -j "$off" -N1 "$LOCAL/c1.stream" | tr -d ' ')
  printf "\\$(printf %03o $((byte ^ 0x10)))" | dd of="$LOCAL/flipped" bs=1 seek="$off" conv=notrunc status=none
done
head -c 200000 /dev/urandom > "$LOCAL/garbage"
{ printf 'btrfs-stream\0\1\0\0\0'; head -c 5000 /dev/urandom; } > "$LOCAL/magic-garbage"
printf '' > "$LOCAL/empty"
for f in truncated short1 flipped garbage magic-garbage empty; do
  expect_error "receive $f" 400 invalid_argument POST "$HB/receive?branch=bad" --data-binary @"$LOCAL/$f"
  expect_error "exact receive $f" 400 invalid_argument POST "$HB/receive?id=0123456789abcdef0123456789abcdef&commit_branch=master&time_ns=1&files=0&bytes=0" \
    --data-binary @"$LOCAL/$f"
done
expect_error "receive truncated, chunked" 400 invalid_argument POST "$HB/receive?branch=bad" -T - <"$LOCAL/truncated"
expect_error "receive without a body" 400 invalid_argument POST "$HB/receive?branch=bad"
expect_error "exact receive without time_ns" 400 invalid_argument POST \
  "$HB/receive?id=$C1&commit_branch=master&files=1&bytes=1" --data-binary @"$LOCAL/c1.stream"
expect_error "exact receive, bad number" 400 invalid_argument POST \
  "$HB/receive?id=$C1&commit_branch=master&time_ns=x&files=1&bytes=1" --data-binary @"$LOCAL/c1.stream"
expect_error "exact receive, negative files" 400 invalid_argument POST \
  "$HB/receive?id=$C1&commit_branch=master&time_ns=1&files=-1&bytes=1" --data-binary @"$LOCAL/c1.stream"
expect_error "bad query, refused before the body" 400 invalid_argument POST "$HB/receive?id=x" \
  -H 'Expect: 100-continue' --data-binary @"$LOCAL/c1.stream"
expect_error "exact receive, figures not the tree's" 400 invalid_argument POST \
  "$HB/receive?id=0123456789abcdef0123456789abcdef&commit_branch=master&time_ns=1&files=99&bytes=1" \
  --data-binary @"$LOCAL/c1.stream"
expect_error "commit fields without id" 400 invalid_argument POST \
  "$HB/receive?branch=bad&message=x" --data-binary @"$LOCAL/c1.stream"
expect_error "receive: unknown parent" 404 not_found POST \
  "$HB/receive?branch=bad&parent=0123456789abcdef0123456789abcdef" --data-binary @"$LOCAL/c2.inc"
expect_eq "bad streams changed nothing" "$before" "$(state "$HB")"
# The connection stays usable after a refused stream.
out=$(curl -s -XPOST "$HB/receive?branch=bad" --data-binary @"$LOCAL/garbage" --next -s "$HB/health")
expect_contains "connection usable after a refused stream" '"status":"ok"' "$out"
expect_eq "server fine after bad streams" "ok" "$(curl -s "$HB/health" | jq -r .status)"

# A client killed mid-stream leaves nothing behind either.
( head -c 2000000 "$LOCAL/c1.stream"; sleep 10 ) 2>/dev/null | curl -s -XPOST -T - "$HB/receive?branch=killed" >/dev/null 2>&1 &
CPID=$!
sleep 1.5
kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null || true
for _ in $(seq 50); do [ "$(state "$HB")" = "$before" ] && break; sleep 0.1; done
expect_eq "killed receive: nothing changed" "$before" "$(state "$HB")"
expect_eq "killed receive: the store is consistent" "true" "$(curl -s "$HB/fsck" | jq .ok)"

# ---- POST /branch/<b>/head ---------------------------------------------------------
# B's master has no commits: expect= (empty) is its head.
expect_error "set head: wrong expect" 409 conflict POST "$HB/branch/master/head?commit=$C1&expect=$C2"
req POST "$HB/branch/master/head?commit=$C1&expect="
expect_eq "set head from none: status" 200 "$CODE"
expect_eq "set head: branch info" "$C1" "$(jq -r .head <<<"$BODY")"
expect_eq "set head: the branch's files" "one" "$(curl -s "$HB/file/one.txt?branch=master")"
expect_error "set head: stale expect" 409 conflict POST "$HB/branch/master/head?commit=$C2&expect="
expect_eq "a refused move changes nothing" "one" "$(curl -s "$HB/file/one.txt?branch=master")"
req POST "$HB/branch/master/head?commit=$C2&expect=$C1"
expect_eq "set head: right expect" 200 "$CODE"
expect_eq "set head: the files change" "two" "$(curl -s "$HB/file/one.txt?branch=master")"
expect_eq "set head: a deleted file is gone" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$HB/file/empty?branch=master")"
expect_error "set head: unknown commit" 404 not_found POST "$HB/branch/master/head?commit=0123456789abcdef0123456789abcdef"
expect_error "set head: no commit" 400 invalid_argument POST "$HB/branch/master/head"
expect_error "set head: bad branch name" 400 invalid_argument POST "$HB/branch/a..b/head?commit=$C1"
echo dirty | curl -sSf -XPOST "$HB/file/dirty?branch=master" -T - >/dev/null
expect_error "set head: uncommitted writes" 409 conflict POST "$HB/branch/master/head?commit=$C1"
req POST "$HB/branch/master/head?commit=$C1&force=true"
expect_eq "set head: force" 200 "$CODE"
expect_eq "set head: force drops the writes" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$HB/file/dirty?branch=master")"
req POST "$HB/branch/fresh/head?commit=${C2:0:8}&expect="
expect_eq "set head: creates a branch" "$C2" "$(jq -r .head <<<"$BODY")"
expect_eq "pachctl sees the moved branch" "$C2" \
  "$(pachctl --address "$HB" --json list-branch | jq -r '.[] | select(.name=="fresh") | .head')"

# ---- a client that leaves mid-stream: the server cuts the stream and goes on -------
head -c 30000000 /dev/urandom > "$LOCAL/huge"
put "$HA" huge "$LOCAL/huge"
C3=$(curl -sSf -XPOST "$HA/commit?branch=master" | jq -r .id)
curl -s --limit-rate 200K "$HA/send/$C3" -o /dev/null &
CPID=$!
sleep 1
kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null || true
wait_log "$T/a.log" "GET /send/$C3 200 .* cut off"
expect_contains "log: a stream cut off" "cut off" "$(grep "GET /send/$C3 " "$T/a.log")"
expect_eq "server fine after a client left" "ok" "$(curl -s "$HA/health" | jq -r .status)"
curl -sSf "$HA/send/$C3" | curl -sS -o "$LOCAL/c3.json" -w '%{http_code}' -XPOST -T - "$HB/receive?branch=big" \
  > "$LOCAL/c3.code"
expect_eq "a 30 MB stream from server to server" 200 "$(cat "$LOCAL/c3.code")"
same_files "$HB" "$(jq -r .commit.id "$LOCAL/c3.json")" "$C3" "server to server"

# ---- pachctl against servers: send, receive, clone, push, pull ---------------------------
# The remote client gives what a local store gives: output, message, exit status.
# same_as_local WHAT STORE URL ARGS...: pachctl --store STORE and --address
# URL agree (stdin from $STDIN); sets RRC, the exit status.
same_as_local() {
  local what=$1 store=$2 url=$3 lrc=0
  shift 3
  RRC=0
  "$PACHCTL" --store "$store" "$@" >"$LOCAL/l.out" 2>"$LOCAL/l.err" <"${STDIN:-/dev/null}" || lrc=$?
  "$PACHCTL" --address "$url" "$@" >"$LOCAL/r.out" 2>"$LOCAL/r.err" <"${STDIN:-/dev/null}" || RRC=$?
  expect_eq "$what: exit status as locally" "$lrc" "$RRC"
  expect_eq "$what: message as locally" "$(cat "$LOCAL/l.err")" "$(cat "$LOCAL/r.err")"
}
"$PACHCTL" --address "$HA" send "$C1" > "$LOCAL/p1.stream" && ok || fail "pachctl send"
expect_eq "pachctl send: magic" "$MAGIC" "$(magic "$LOCAL/p1.stream")"
"$PACHCTL" --address "$HA" send -p "$C1" "$C2" > "$LOCAL/p2.stream" && ok || fail "pachctl send -p"
[ "$(stat -c %s "$LOCAL/p2.stream")" -lt 100000 ] && ok || fail "pachctl send -p: small"
same_as_local "send: unknown commit" "$A" "$HA" send 0123456789abcdef0123456789abcdef
expect_eq "send: unknown commit: status" 3 "$RRC"
same_as_local "send: unknown parent" "$A" "$HA" send -p nope master
same_as_local "send: against itself" "$A" "$HA" send -p "$C2" "$C2"
expect_eq "send: against itself: status" 2 "$RRC"
out=$("$PACHCTL" --address "$HB" --json receive -b viapachctl < "$LOCAL/p1.stream") && ok || fail "pachctl receive"
same_files "$HB" "$(jq -r .commit.id <<<"$out")" "$C1" "pachctl receive"
out=$("$PACHCTL" --address "$HB" --json receive -b viapachctl < "$LOCAL/p2.stream") && ok || fail "pachctl receive incremental"
same_files "$HB" "$(jq -r .commit.id <<<"$out")" "$C2" "pachctl receive incremental"
before=$(state "$HB")
STDIN=$LOCAL/truncated same_as_local "receive: truncated" "$B" "$HB" receive -b bad
expect_eq "receive: truncated: status" 2 "$RRC"
STDIN=$LOCAL/garbage same_as_local "receive: garbage" "$B" "$HB" receive -b bad
STDIN=$LOCAL/flipped same_as_local "receive: bit flipped" "$B" "$HB" receive -b bad
STDIN=$LOCAL/empty same_as_local "receive: empty" "$B" "$HB" receive -b bad
expect_eq "pachctl: refused streams changed nothing" "$before" "$(state "$HB")"
# A whole history, server to server (send and receive both remote), then
# to and from local stores.
C=$T/c D=$T/d E=$T/e
pachctl init "$C" >/dev/null
serve "$C" "$T/c.log"
HC=$H
expect_status 0 "$PACHCTL" clone "$HA" "$HC"
expect_eq "clone server to server: the commits" "$(curl -s "$HA/commit")" "$(curl -s "$HC/commit")"
expect_eq "clone server to server: the heads" "$(curl -s "$HA/branch" | jq -c '[.[] | {name, head}]')" \
  "$(curl -s "$HC/branch" | jq -c '[.[] | {name, head}]')"
same_files "$HC" "$C3" "$C3" "clone server to server"
expect_status 0 "$PACHCTL" clone "$HA" "$D"
expect_eq "clone server to local: the commits" "$("$PACHCTL" --address "$HA" --json list-commit -a)" \
  "$("$PACHCTL" --store "$D" --json list-commit -a)"
echo "on A" | curl -sSf -XPOST "$HA/file/new.txt?branch=master" -T - >/dev/null
C4=$(curl -sSf -XPOST "$HA/commit?branch=master&message=four" | jq -r .id)
expect_status 0 "$PACHCTL" --store "$D" pull "$HA"
expect_eq "pull from a server" "$C4" "$(pachctl --store "$D" --json inspect-commit master | jq -r .id)"
expect_status 0 "$PACHCTL" --store "$D" push "$HC"
expect_eq "push to a server" "$C4" "$(curl -s "$HC/branch/master" | jq -r .head)"
expect_eq "push to a server: the commit as it was" "$(curl -s "$HA/commit/$C4")" "$(curl -s "$HC/commit/$C4")"
# C's master diverges: a push refuses it (409 on the head's move), --force moves it.
echo "on C" | curl -sSf -XPOST "$HC/file/c.txt?branch=master" -T - >/dev/null
curl -sSf -XPOST "$HC/commit?branch=master" >/dev/null
expect_status 5 "$PACHCTL" --store "$D" push "$HC"
expect_status 0 "$PACHCTL" --store "$D" push -f "$HC"
expect_eq "push -f to a server" "$C4" "$(curl -s "$HC/branch/master" | jq -r .head)"
pachctl init "$E" >/dev/null
expect_status 0 "$PACHCTL" --store "$E" pull -b master "$HC"
expect_eq "pull -b from a server" "$C4" "$(pachctl --store "$E" --json inspect-commit master | jq -r .id)"

# ---- the server dies mid-stream: the client sees an I/O error, not a short success ----
serve "$A" "$T/a2.log"
KPID=$SPID
( rc=0; "$PACHCTL" --address "$H" send "$C3" 2>"$LOCAL/cut.err" || rc=$?; echo "$rc" > "$LOCAL/cut.rc" ) |
  { sleep 2; cat > "$LOCAL/cut.stream"; } &
RPID=$!
sleep 1
{ kill -9 "$KPID"; wait "$KPID"; } 2>/dev/null || true
wait "$RPID" || true
expect_eq "server died mid-stream: exit status 9" 9 "$(cat "$LOCAL/cut.rc")"
expect_contains "server died mid-stream: message" "broke off" "$(cat "$LOCAL/cut.err")"
[ "$(stat -c %s "$LOCAL/cut.stream")" -lt 30000000 ] && ok || fail "server died mid-stream: stream short"
expect_status 2 "$PACHCTL" --store "$B" receive -b cut < "$LOCAL/cut.stream"

# ---- a token ----------------------------------------------------------------------------
# A token file must be private and the token long (safe by default).
echo "s3cret-0123456789abcdef" > "$LOCAL/token"
chmod 600 "$LOCAL/token"
serve "$B" "$T/b2.log" --token-file "$LOCAL/token"
HT=$H
before=$(pachctl --store "$B" --json list-branch)
expect_error "send without token" 401 unauthorized GET "$HT/send/$C1"
expect_error "receive without token" 401 unauthorized POST "$HT/receive?branch=tok" --data-binary @"$LOCAL/c1.stream"
expect_error "set head without token" 401 unauthorized POST "$HT/branch/master/head?commit=$C2"
# The token is checked before "100 Continue" (and before any body), so that
# the checks of an upload's query tell a client without it nothing.
expect_error "100-continue without token" 401 unauthorized POST "$HT/receive?id=x" \
  -H 'Expect: 100-continue' --data-binary @"$LOCAL/c1.stream"
expect_error "100-continue without token, a file" 401 unauthorized POST "$HT/file/x?branch=nope" \
  -H 'Expect: 100-continue' -d x
expect_eq "no token: nothing changed" "$before" "$(pachctl --store "$B" --json list-branch)"
auth=(-H "Authorization: Bearer s3cret-0123456789abcdef")
curl -sSf "${auth[@]}" "$HT/send/$C1" -o "$LOCAL/tok.stream" && ok || fail "send with token"
expect_eq "send with token: magic" "$MAGIC" "$(magic "$LOCAL/tok.stream")"
req POST "$HT/receive?branch=tok" --data-binary @"$LOCAL/c1.stream" "${auth[@]}"
expect_eq "receive with token" 200 "$CODE"
req POST "$HT/branch/master/head?commit=$C2" "${auth[@]}"
expect_eq "set head with token" 200 "$CODE"

# ---- --max-upload applies to streams ------------------------------------------------------
serve "$B" "$T/b3.log" --max-upload 1M
expect_error "stream over --max-upload" 413 too_large POST "$H/receive?branch=toolarge" \
  --data-binary @"$LOCAL/c1.stream"
expect_error "chunked stream over --max-upload" 413 too_large POST "$H/receive?branch=toolarge" \
  -T - <"$LOCAL/c1.stream"
expect_eq "too large: no branch" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$H/branch/toolarge")"
finish
