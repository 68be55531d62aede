// test_main.h: doctest main for suites that need a scratch file system.
//
// The suites create stores of the backend $PFS_TEST_BACKEND (btrfs, the
// default, or portable) below $PFS_TEST_ROOT (scripts/test.sh mounts a fresh
// loop-device btrfs there), or for the portable backend below
// $PFS_TEST_ROOT_PORTABLE when set (scripts/test.sh mounts an ext4 there).
// Without a root they skip (exit 77, which meson counts as skipped) -- unless
// PFS_REQUIRE_BTRFS=1, as in CI, where a skip would hide a broken set-up and
// so fails instead.
#pragma once

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

inline std::string test_backend() {
  const char* b = std::getenv("PFS_TEST_BACKEND");
  return b && *b ? b : "btrfs";
}

inline std::string test_root() {
  const char* p = std::getenv("PFS_TEST_ROOT_PORTABLE");
  if (test_backend() == "portable" && p && *p) return p;
  const char* r = std::getenv("PFS_TEST_ROOT");
  return r ? r : "";
}

int main(int argc, char** argv) {
  if (test_root().empty()) {
    const char* req = std::getenv("PFS_REQUIRE_BTRFS");
    if (req && std::string(req) == "1") {
      std::fprintf(stderr,
                   "PFS_TEST_ROOT is not set but PFS_REQUIRE_BTRFS=1: run scripts/test.sh\n");
      return 1;
    }
    std::fprintf(stderr,
                 "skipped: PFS_TEST_ROOT (a btrfs mount) is not set; run scripts/test.sh\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
