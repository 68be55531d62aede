#!/usr/bin/env bash
# The HTTP API with curl as users drive it: every command of the reference
# README verbatim, the other routes, bad input and encodings (each leaves the
# store as it was), a client killed mid-upload, 50 clients at once, 2 GiB up
# and down, a token, graceful SIGTERM. Servers listen on 127.0.0.1 only.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/http_lib.sh"

state() { pachctl list-file -R -b "$1" 2>&1; pachctl list-commit -a 2>&1 | wc -l; pachctl list-branch 2>&1; }

pachctl init >/dev/null
serve "$PFS_STORE" "$T/server.log"
echo "hello" > "$LOCAL/local_file"

# ---- the reference README, verbatim (hostname = $H) ---------------------
curl -s -XPOST $H/file/greeting.txt?branch=master -T $LOCAL/local_file >/dev/null
expect_eq "read a file" "hello" "$(curl -s $H/file/greeting.txt)"
curl -s -XPOST $H/file/dir/a.txt -T $LOCAL/local_file >/dev/null
echo "bee" | curl -s -XPOST $H/file/dir/b.txt -T - >/dev/null
all=$(curl -s $H/file/dir/*)
expect_contains "glob: first part" 'filename="dir/a.txt"' "$all"
expect_contains "glob: second part" 'filename="dir/b.txt"' "$all"
expect_contains "glob: content" "bee" "$all"
curl -s -XPOST $H/commit?branch=master >/dev/null
COMMIT=$(curl -s -XGET $H/commit | jq -r '.[0].id')
[[ $COMMIT =~ ^[0-9a-f]{32}$ ]] && ok || fail "GET /commit lists the commit: $COMMIT"
expect_eq "read from a commit" "hello" "$(curl -s $H/file/greeting.txt?commit=$COMMIT)"
curl -s -XDELETE $H/file/greeting.txt?branch=master >/dev/null
expect_error "deleted file is gone" 404 not_found GET "$H/file/greeting.txt"
expect_eq "but still in its commit" "hello" "$(curl -s $H/file/greeting.txt?commit=$COMMIT)"
curl -s -XPOST "$H/branch?commit=$COMMIT&branch=dev" >/dev/null
echo "on dev" | curl -s -XPOST $H/file/dev.txt?branch=dev -T - >/dev/null
curl -s -XPOST $H/commit?branch=dev >/dev/null
expect_eq "GET /branch" "dev master" "$(curl -s -XGET $H/branch | jq -r '[.[].name] | join(" ")')"
expect_eq "dev's head is a new commit" "$COMMIT" \
  "$(curl -s $H/branch/dev | jq -r .head | xargs -I{} curl -s $H/commit/{} | jq -r .parent)"
expect_eq "master does not see dev's file" "404" \
  "$(curl -s -o /dev/null -w '%{http_code}' $H/file/dev.txt)"

# ---- the other routes ---------------------------------------------------------
echo "v2" | curl -s -XPUT $H/file/dir/a.txt -T - >/dev/null
expect_eq "PUT overwrites" "v2" "$(curl -s $H/file/dir/a.txt)"
expect_eq "?branch= reads the working state" "v2" "$(curl -s "$H/file/dir/a.txt?branch=master")"
expect_eq "?commit=master reads the head commit" "hello" "$(curl -s "$H/file/dir/a.txt?commit=master")"
printf '0123456789' | curl -s -XPOST $H/file/digits -T - >/dev/null
expect_eq "Range" "234" "$(curl -s -H 'Range: bytes=2-4' $H/file/digits)"
expect_eq "Range status" "206" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=2-4' $H/file/digits)"
expect_eq "suffix Range" "789" "$(curl -s -H 'Range: bytes=-3' $H/file/digits)"
expect_eq "Range past the end is cut" "89" "$(curl -s -H 'Range: bytes=8-100' $H/file/digits)"
expect_error "Range beyond the file" 416 invalid_argument GET "$H/file/digits" -H 'Range: bytes=20-30'
expect_eq "HEAD: length" "10" \
  "$(curl -s -I $H/file/digits | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length"{print $2}')"
printf 'x' | curl -s -XPOST "$H/file/digits?append=true" -T - >/dev/null
expect_eq "append" "0123456789x" "$(curl -s $H/file/digits)"
printf 'AB' | curl -s -XPOST "$H/file/digits?offset=1" -T - >/dev/null
expect_eq "offset" "0AB3456789x" "$(curl -s $H/file/digits)"
expect_eq "stat" "11" "$(curl -s $H/stat/digits | jq .size)"
expect_eq "list" "digits dir" "$(curl -s $H/list/ | jq -r '[.[].path] | join(" ")')"
expect_eq "list recursive" "4" "$(curl -s "$H/list/?recursive=true" | jq length)"
curl -s "$H/file/dir/*?format=tar" | tar -tf - > "$LOCAL/tar.list"
expect_eq "glob as tar" "dir/a.txt dir/b.txt" "$(sort "$LOCAL/tar.list" | xargs)"
expect_eq "glob as tar by Accept" "dir/a.txt dir/b.txt" \
  "$(curl -s -H 'Accept: application/x-tar' "$H/file/dir/*" | tar -tf - | sort | xargs)"
expect_eq "glob matching nothing: 200" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$H/file/none/*")"
mkdir -p "$LOCAL/tree/sub" && echo 1 > "$LOCAL/tree/one" && echo 2 > "$LOCAL/tree/sub/two"
tar -C "$LOCAL/tree" -cf - . | curl -s -XPOST "$H/dir/up?branch=master" -T - > "$LOCAL/dir.json"
expect_eq "tar upload" "2" "$(jq .files "$LOCAL/dir.json")"
expect_eq "tar upload content" "2" "$(curl -s $H/file/up/sub/two)"
expect_eq "archive" "one sub/ sub/two" "$(curl -s $H/archive/up | tar -tf - | sort | xargs)"
C2=$(curl -s -XPOST "$H/commit?branch=master&message=two" | jq -r .id)
expect_eq "commit message" "two" "$(curl -s $H/commit/${C2:0:8} | jq -r .message)"
expect_eq "diff" "added added added deleted modified" \
  "$(curl -s "$H/diff?from=$COMMIT&to=$C2" | jq -r '[.[].change] | sort | join(" ")')"
expect_eq "log of a branch" "2" "$(curl -s "$H/commit?branch=master" | jq length)"
expect_eq "revert" "$COMMIT" \
  "$(curl -s -XPOST "$H/revert?branch=master&commit=$COMMIT" | jq -r .parent | xargs -I{} curl -s $H/commit/{} | jq -r .parent)"
expect_eq "merge" "false" "$(curl -s -XPOST "$H/merge?into=master&from=dev" | jq .up_to_date)"
expect_eq "fsck" "true" "$(curl -s $H/fsck | jq .ok)"
expect_eq "gc" "true" "$(curl -s -XPOST $H/gc | jq 'has("objects_kept")')"
expect_eq "info" "$BACKEND" "$(curl -s $H/info | jq -r .backend)"
expect_eq "health" "ok" "$(curl -s $H/health | jq -r .status)"
curl -s -XPOST "$H/branch?branch=gone" >/dev/null
req DELETE "$H/branch/gone"
expect_eq "delete branch" "200" "$CODE"

# ---- libpfs's remote client, as a C++ program uses it (examples/remote_pfs.cc)
out=$("${REMOTE_EXAMPLE:?}" "$H")
expect_contains "remote example: a byte range" 'bytes 6-9 are "from"' "$out"
expect_contains "remote example: listing" "notes/hello.txt" "$out"

# ---- bad input: a clear error, the right status, nothing changed --------------
before=$(state master)
expect_error "%2e%2e" 400 invalid_argument POST "$H/file/%2e%2e/x" -d x
expect_error "a/../b" 400 invalid_argument POST "$H/file/a/%2E%2E/%2e%2e/x" -d x
expect_error "//" 400 invalid_argument POST "$H/file/a//x" -d x
expect_error "NUL" 400 invalid_argument POST "$H/file/a%00b" -d x
expect_error "overlong ." 400 invalid_argument POST "$H/file/%c0%ae%c0%ae/x" -d x
expect_error "bad UTF-8" 400 invalid_argument GET "$H/file/%ff"
expect_error "newline" 400 invalid_argument POST "$H/file/a%0ab" -d x
expect_error "absolute" 400 invalid_argument POST "$H/file/%2fetc/x" -d x
expect_error "reserved name" 400 invalid_argument POST "$H/file/.pfs-x" -d x
expect_error "bad branch name" 400 invalid_argument POST "$H/file/x?branch=a..b" -d x
expect_error "no such branch" 404 not_found POST "$H/file/x?branch=nope" -d x
expect_error "no such commit" 404 not_found GET "$H/file/dir/a.txt?commit=0123456789abcdef"
expect_error "no such file" 404 not_found GET "$H/file/missing"
expect_error "a directory" 400 invalid_argument GET "$H/file/dir"
expect_error "two refs" 400 invalid_argument GET "$H/file/digits?branch=master&commit=master"
expect_error "append and offset" 400 invalid_argument POST "$H/file/dir/a.txt?append=true&offset=1" -d x
expect_error "offset past the end" 400 invalid_argument POST "$H/file/dir/a.txt?offset=99" -d x
expect_error "bad number" 400 invalid_argument POST "$H/file/dir/a.txt?offset=-1" -d x
expect_error "branch exists" 409 already_exists POST "$H/branch?branch=dev"
expect_error "unknown route" 404 not_found GET "$H/nothing"
expect_error "malformed tar" 400 invalid_argument POST "$H/dir/t" --data-binary "not a tar stream"
expect_eq "bad requests changed nothing" "$before" "$(state master)"
printf 'x' | curl -s -XPOST $H/file/dirty -T - >/dev/null
expect_error "revert of a dirty branch" 409 conflict POST "$H/revert?branch=master&commit=$COMMIT"
curl -s -XDELETE $H/file/dirty >/dev/null
# A keep-alive connection stays usable after a refused upload with a body.
out=$(curl -s -XPOST "$H/file/x?branch=nope" -d "some body" --next -s "$H/file/dir/b.txt")
expect_contains "connection usable after an error" "bee" "$out"

# ---- a client killed mid-upload leaves nothing behind ---------------------------
before=$(state master)
( head -c 5000000 /dev/zero; sleep 30 ) | curl -s -XPOST -T - "$H/file/partial" >/dev/null 2>&1 &
CPID=$!
sleep 1.5
kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null || true
sleep 0.5
expect_eq "killed upload: nothing written" "$before" "$(state master)"
expect_eq "killed upload: no file" "404" "$(curl -s -o /dev/null -w '%{http_code}' $H/file/partial)"
expect_eq "killed upload: server fine" "ok" "$(curl -s $H/health | jq -r .status)"

# ---- 50 clients at once ----------------------------------------------------------
for i in $(seq 50); do
  ( echo "client $i" | curl -sf -XPOST "$H/file/many/$i.txt" -T - >/dev/null &&
    curl -sf "$H/file/many/$i.txt" > "$LOCAL/many.$i" ) &
done
wait_ok=0
for job in $(jobs -p); do [ "$job" = "$SPID" ] && continue; wait "$job" || wait_ok=1; done
expect_eq "50 clients: all succeeded" "0" "$wait_ok"
expect_eq "50 clients: 50 files" "50" "$(curl -s $H/list/many | jq length)"
bad=0
for i in $(seq 50); do [ "$(cat "$LOCAL/many.$i")" = "client $i" ] || bad=$((bad + 1)); done
expect_eq "50 clients: each read its own" "0" "$bad"

# ---- 2 GiB up and down, byte-identical ----------------------------------------------
head -c 2G /dev/urandom > "$LOCAL/big"
curl -sf -XPOST $H/file/big -T "$LOCAL/big" >/dev/null && ok || fail "2 GiB upload"
curl -sf $H/file/big -o "$LOCAL/big.back" && ok || fail "2 GiB download"
cmp -s "$LOCAL/big" "$LOCAL/big.back" && ok || fail "2 GiB: bytes differ"
rm -f "$LOCAL/big.back"
pachctl --address "$H" get-file -o "$LOCAL/big.back" big 2>"$LOCAL/bar.none" && ok || fail "2 GiB: remote get-file"
cmp -s "$LOCAL/big" "$LOCAL/big.back" && ok || fail "2 GiB via pachctl: bytes differ"
expect_eq "no progress bar when stderr is not a terminal" "" "$(cat "$LOCAL/bar.none")"
# On a terminal (script(1) gives it one), the same download draws a bar.
rm -f "$LOCAL/big.back"
script -qfec "$PACHCTL --address $H get-file -o $LOCAL/big.back big" /dev/null > "$LOCAL/bar.tty" \
  && ok || fail "2 GiB: remote get-file on a terminal"
expect_contains "progress bar: rate" "/s" "$(tr '\r' '\n' < "$LOCAL/bar.tty")"
expect_contains "progress bar: total" "/ 2.0 GiB" "$(tr '\r' '\n' < "$LOCAL/bar.tty")"
rm -f "$LOCAL/big" "$LOCAL/big.back"

# ---- one log line per request ---------------------------------------------------------
expect_contains "log line" "127.0.0.1 GET /health 200" "$(cat "$T/server.log")"

# ---- graceful SIGTERM: the download in progress finishes ----------------------------
head -c 3000000 /dev/urandom > "$LOCAL/slow"
curl -s -XPOST $H/file/slow -T "$LOCAL/slow" >/dev/null
curl -s --limit-rate 1M $H/file/slow -o "$LOCAL/slow.back" &
CPID=$!
sleep 1
# A long transfer holds only its own connection's thread.
expect_eq "small requests during a long download" "ok" "$(curl -s -m 10 $H/health | jq -r .status)"
kill -TERM "$SPID"
wait "$CPID" && ok || fail "download during SIGTERM failed"
cmp -s "$LOCAL/slow" "$LOCAL/slow.back" && ok || fail "download during SIGTERM: bytes differ"
wait "$SPID" && ok || fail "server exit status after SIGTERM"
expect_contains "server said it stopped" "stopped" "$(cat "$T/server.log")"
curl -s -o /dev/null "$H/health" && fail "server still answers after SIGTERM" || ok

# ---- a token -----------------------------------------------------------------------------
# A token file must be private and the token long (safe by default).
echo "s3cret-token-0123456789" > "$LOCAL/token"
chmod 600 "$LOCAL/token"
serve "$PFS_STORE" "$T/server2.log" --token-file "$LOCAL/token"
expect_error "no token" 401 unauthorized GET "$H/branch"
expect_error "wrong token" 401 unauthorized GET "$H/branch" -H "Authorization: Bearer wrong"
expect_eq "right token" "200" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret-token-0123456789' $H/branch)"
expect_eq "health needs none" "200" "$(curl -s -o /dev/null -w '%{http_code}' $H/health)"
expect_status 7 pachctl --address "$H" list-branch
expect_status 0 pachctl --address "$H" --token-file "$LOCAL/token" list-branch
PFS_TOKEN=s3cret-token-0123456789 expect_status 0 pachctl --address "$H" list-branch

# ---- --max-upload: 413 -------------------------------------------------------------------
serve "$PFS_STORE" "$T/server3.log" --max-upload 1K
head -c 2000 /dev/zero > "$LOCAL/2k"
expect_error "too large" 413 too_large POST "$H/file/big2k" --data-binary @"$LOCAL/2k"
expect_eq "too large: nothing written" "404" "$(curl -s -o /dev/null -w '%{http_code}' $H/file/big2k)"

# ---- commit events: the long-poll /commits/wait --------------------------------------------
serve "$PFS_STORE" "$T/server4.log" --threads 4
req GET "$H/commits/wait?branch=master&timeout_ms=0"
expect_eq "wait, no time: 200" "200" "$CODE"
expect_eq "wait, no time: no events" "0" "$(jq '.events | length' <<<"$BODY")"
CUR=$(jq -r .cursor <<<"$BODY")
expect_eq "wait: the cursor is master's head" "master:$(pachctl inspect-commit master --json | jq -r .id)" "$CUR"
# A waiter answers when a commit lands, with exactly it.
curl -s "$H/commits/wait?branch=master&since=$CUR&timeout_ms=20000" > "$LOCAL/wait.json" &
WPID=$!
sleep 0.3
NEW=$(pachctl commit -m "for the waiter")
wait "$WPID"
expect_eq "waiter got the commit" "$NEW" "$(jq -r '.events[0].commit.id' "$LOCAL/wait.json")"
# POST with the fields in a JSON body.
req POST "$H/commits/wait" -d "{\"branch\":\"master\",\"since\":\"$CUR\",\"timeout_ms\":0}"
expect_eq "wait POST" "200 $NEW" "$CODE $(jq -r '.events[-1].commit.id' <<<"$BODY")"
expect_error "wait: bad cursor" 400 invalid_argument GET "$H/commits/wait?since=master:xyz&timeout_ms=0"
expect_error "wait: bad branch" 400 invalid_argument GET "$H/commits/wait?branch=a/b&timeout_ms=0"
expect_error "wait: bad timeout" 400 invalid_argument GET "$H/commits/wait?timeout_ms=soon"
expect_error "wait: negative timeout" 400 invalid_argument GET "$H/commits/wait?timeout_ms=-5"
expect_error "wait: body not JSON" 400 invalid_argument POST "$H/commits/wait" -d '{"branch":'
expect_error "wait: body not an object" 400 invalid_argument POST "$H/commits/wait" -d '[1]'
expect_error "wait: unknown field" 400 invalid_argument POST "$H/commits/wait" -d '{"brnach":"master"}'
expect_contains "wait: unknown field named" "brnach" "$(jq -r .error <<<"$BODY")"
expect_error "wait: wrong type" 400 invalid_argument POST "$H/commits/wait" -d '{"timeout_ms":"5"}'
# With 4 threads, 2 may wait; the third gets 503 with Retry-After.
# (A waiter asks again while it is told 503, as a client should: on a
# loaded machine a probe below may hold a slot when it comes. It waits
# longer than the probes can take; the SIGTERM after them ends its wait,
# answered: 200.)
waiter() {
  local code
  while code=$(curl -s -o /dev/null -w '%{http_code}' "$H/commits/wait?branch=nothing-here&timeout_ms=60000") &&
    [ "$code" = 503 ]; do sleep 0.2; done
  [ "$code" = 200 ]
}
waiter &
W1=$!
waiter &
W2=$!
# (Until both are waiting: asked again until the answer is a 503.)
for _ in $(seq 250); do
  HDRS=$(curl -s -D - -o "$LOCAL/busy.json" "$H/commits/wait?timeout_ms=0")
  case "$(head -1 <<<"$HDRS")" in *" 503"*) break ;; esac
  sleep 0.2
done
expect_contains "third waiter: 503" " 503" "$(head -1 <<<"$HDRS")"
expect_contains "third waiter: Retry-After" "Retry-After: 1" "$HDRS"
expect_eq "other requests still answered" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$H/branch")"
# SIGTERM ends the waits (answered, not cut) and the server exits.
kill -TERM "$SPID"
wait "$SPID" && ok || fail "server with waiters did not stop cleanly"
wait "$W1" && ok || fail "waiter 1 was cut off"
wait "$W2" && ok || fail "waiter 2 was cut off"

# ---- bad options -----------------------------------------------------------------------------
expect_status 2 pachctl serve --listen nonsense
expect_status 2 pachctl serve --max-upload 12Q
expect_status 2 pachctl --address "$H" init "$T/x"
expect_status 2 pachctl --address "not-a-url" list-branch
expect_status 9 pachctl --address "http://127.0.0.1:1" list-branch
finish
