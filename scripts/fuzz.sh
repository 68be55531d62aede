#!/usr/bin/env bash
# fuzz.sh: fuzzes the btrfs send-stream reader (libpfs/src/stream/send_stream_reader.cc)
# with libFuzzer, ASan and UBSan, for a bounded time.
#
# Usage: scripts/fuzz.sh
#   FUZZ_SECONDS  how long to fuzz (default 60)
#   FUZZ_JOBS     parallel fuzzing processes (default 1)
#   FUZZ_DIR      where to build and keep the working corpus (default build-fuzz/)
#   FUZZ_REAL=1   also seed with streams btrfs send makes (needs root and a
#                 loop device; see tests/fuzz/real_streams.sh)
#
# It builds with clang++ directly (the meson build uses g++), seeds the
# corpus from tests/fuzz/corpus/ and from the streams `stream_tool craft`
# writes, and exits non-zero if the fuzzer found a crash, leak, timeout or
# out-of-memory; the input is left in $FUZZ_DIR/artifacts/. Keep each one as
# a regression seed in tests/fuzz/corpus/ (the unit tests read them).
set -eu -o pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
dir=${FUZZ_DIR:-$root/build-fuzz}
cxx=${CXX_FUZZ:-clang++}

if ! command -v "$cxx" >/dev/null; then
  echo "fuzz.sh: $cxx not found (install clang; Debian: apt-get install clang)" >&2
  exit 1
fi
mkdir -p "$dir/corpus" "$dir/artifacts"

common=(-std=c++20 -g -O1 -fno-omit-frame-pointer -Ilibpfs/include -Ilibpfs/src/base -Ilibpfs/src/stream)
codec=(libpfs/src/stream/send_stream.cc libpfs/src/stream/send_stream_reader.cc
       libpfs/src/stream/send_stream_writer.cc libpfs/src/base/io.cc libpfs/src/base/result.cc)
echo "fuzz.sh: building $dir/stream_fuzz" >&2
"$cxx" "${common[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  tests/fuzz/stream_fuzz.cc "${codec[@]}" -lisal -lfmt -o "$dir/stream_fuzz"
"$cxx" "${common[@]}" tests/tools/stream_tool.cc "${codec[@]}" -lisal -lfmt \
  -o "$dir/stream_tool"

# Seeds: the kept regression inputs, every crafted stream, and real ones.
cp -f tests/fuzz/corpus/* "$dir/corpus/" 2>/dev/null || true
for name in $("$dir/stream_tool" list); do
  "$dir/stream_tool" craft "$name" >"$dir/corpus/craft-$name"
done
if [ "${FUZZ_REAL:-0}" = 1 ]; then
  STREAM_TOOL=$dir/stream_tool bash tests/fuzz/real_streams.sh "$dir/corpus" ||
    echo "fuzz.sh: no real btrfs streams (needs root and a loop device); going on" >&2
fi

echo "fuzz.sh: fuzzing for ${seconds}s with $jobs job(s)" >&2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
args=(-max_len=262144 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
      -artifact_prefix="$dir/artifacts/" -print_final_stats=1)
if [ "$jobs" -gt 1 ]; then args+=(-fork="$jobs" -ignore_crashes=0); fi
status=0
(cd "$dir" && ./stream_fuzz "${args[@]}" corpus) || status=$?

found=$(find "$dir/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
  -o -name 'oom-*' -o -name 'slow-unit-*' \) | sort)
if [ "$status" -ne 0 ] || [ -n "$found" ]; then
  echo "fuzz.sh: the fuzzer found a problem (exit $status); inputs:" >&2
  echo "${found:-(none saved)}" >&2
  echo "reproduce with: $dir/stream_fuzz INPUT; keep it in tests/fuzz/corpus/" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${seconds}s" >&2
