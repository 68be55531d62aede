#!/usr/bin/env bash
# test.sh: installs what is needed, builds pfs with warnings as errors, and
# runs the whole test suite on a fresh loop-mounted btrfs (and an ext4, for
# the portable backend) that it removes afterwards.
# Usage: scripts/test.sh [--sanitize]   (needs root)
#   --sanitize  builds with AddressSanitizer and UBSan (in build-asan/)
set -eu -o pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
BUILD=build
OPTS=(-Dwerror=true)
if [ "${1:-}" = "--sanitize" ]; then
  BUILD=build-asan
  OPTS+=(-Db_sanitize=address,undefined -Db_lundef=false)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp:print_suppressions=0
  export PFS_SANITIZE=1
fi
if [ -d "$BUILD" ]; then meson configure "$BUILD" "${OPTS[@]}" >/dev/null
else meson setup "$BUILD" "${OPTS[@]}" >/dev/null; fi
ninja -C "$BUILD"
source scripts/btrfs-scratch.sh
scratch_setup
scratch_setup_ext4
export PFS_TEST_ROOT=$SCRATCH PFS_TEST_ROOT_PORTABLE=$SCRATCH_EXT4 PFS_REQUIRE_BTRFS=1
status=0
meson test -C "$BUILD" --print-errorlogs || status=$?
# One plain closing line for CI: "N passed, N failed, N skipped".
jq -rs '[.[] | .result] | "\(map(select(. == "OK")) | length) passed, \(map(select(. == "FAIL" or . == "TIMEOUT" or . == "ERROR")) | length) failed, \(map(select(. == "SKIP")) | length) skipped"' \
  "$BUILD/meson-logs/testlog.json"
exit $status
