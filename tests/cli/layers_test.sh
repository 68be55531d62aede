#!/bin/bash
# layers_test.sh: the build refuses an include that climbs a layer
# (docs/architecture.md). For each layer it compiles a one-line file with the
# exact flags of that layer's sources (compile_commands.json): including a
# header of its own or a lower layer builds; one of a higher layer does not.
set -euo pipefail
: "${BUILD_ROOT:?}" "${SOURCE_ROOT:?}"
db=$BUILD_ROOT/compile_commands.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

# compiles `#include "$2"` with the flags of source $1 (relative to libpfs/src)
try_include() {
  local src=$1 header=$2 cmd
  cmd=$(jq -r --arg f "../libpfs/src/$src" '.[] | select(.file == $f) | .command' "$db")
  [[ -n $cmd ]] || { echo "no compile command for $src" >&2; exit 1; }
  printf '#include "%s"\n' "$header" > "$tmp/probe.cc"
  # same flags, the probe instead of the source, no dependency file
  cmd=${cmd/ -c ..\/libpfs\/src\/$src/ -c $tmp\/probe.cc}
  cmd=$(sed -E 's/ -M(D|MD)//; s/ -MQ [^ ]+//; s/ -MF [^ ]+//; s/ -o [^ ]+/ -fsyntax-only/' <<< "$cmd")
  (cd "$BUILD_ROOT" && eval "$cmd") > "$tmp/out" 2>&1
}
allowed() {
  if try_include "$1" "$2"; then ok; else bad "$1 cannot include $2:"; cat "$tmp/out" >&2; fi
}
refused() {
  if try_include "$1" "$2"; then bad "$1 includes $2, a higher layer, and it built"
  elif grep -q "$2: No such file" "$tmp/out"; then ok
  else bad "$1 including $2 failed, but not for want of the header:"; cat "$tmp/out" >&2; fi
}

allowed base/fsutil.cc fail.h
refused base/fsutil.cc backend.h
refused base/fsutil.cc store.h
allowed backend/backend.cc fsutil.h
refused backend/backend.cc send_stream.h
refused backend/btrfs/btrfs_backend.cc store.h
allowed stream/receive.cc backend.h
refused stream/receive.cc store.h
allowed store/store.cc replication.h
refused store/store.cc http_engine.h
refused store/store.cc http_message.h
allowed http/http_server.cc local_dir.h
refused http/http_server.cc store.h
refused http/http_client.cc backend.h
refused replicate/replicate.cc store.h
refused replicate/replicate.cc http_message.h

# a path would step around the include path: the build's layer check refuses it
mkdir -p "$tmp/src/store"
printf '#include "../http/http_engine.h"\n' > "$tmp/src/store/x.cc"
if bash "$SOURCE_ROOT/scripts/check-layers.sh" "$tmp/src" "$tmp/stamp" 2> "$tmp/out"; then
  bad "check-layers.sh accepted an include by path"
elif grep -q "names a path" "$tmp/out"; then ok; else bad "check-layers.sh: unclear refusal"; fi
bash "$SOURCE_ROOT/scripts/check-layers.sh" "$SOURCE_ROOT/libpfs/src" "$tmp/stamp" && ok || bad "libpfs/src fails its own layer check"

echo "layers: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
