// Unit tests of path, glob and name validation (no file system needed).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <set>
#include <vector>

#include <pfs/result.h>

#include "fail.h"
#include "names.h"

using namespace pfs;
using namespace pfs::detail;

static ErrorCode code_of(auto fn) {
  try {
    fn();
  } catch (const Fail& f) {
    return f.error.code;
  }
  return ErrorCode::kInternal;  // "did not fail"
}

TEST_CASE("normalize_path accepts plain relative paths") {
  CHECK(normalize_path("a") == "a");
  CHECK(normalize_path("a/b/c.txt") == "a/b/c.txt");
  CHECK(normalize_path("dir/") == "dir");
  CHECK(normalize_path("x.pfs") == "x.pfs");
  CHECK(normalize_path("a/.pfs-staging") == "a/.pfs-staging");  // reserved only at the root
  CHECK(normalize_path("", true) == "");
  CHECK(normalize_path(".", true) == "");
}

TEST_CASE("normalize_path rejects everything that could escape or confuse") {
  for (const std::string& bad :
       std::vector<std::string>{"", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "a//b", "./a",
                                "a/./b", ".pfs-staging/x", ".pfs", std::string("a\0b", 3), "a\nb",
                                "tab\there", std::string(300, 'x'), "a/" + std::string(256, 'y')}) {
    INFO("path: ", bad);
    CHECK(code_of([&] { normalize_path(bad); }) == ErrorCode::kInvalidArgument);
  }
  CHECK(code_of([&] { normalize_path(std::string(5000, 'a')); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("error messages name the problem") {
  try {
    normalize_path("/abs");
    FAIL("no error");
  } catch (const Fail& f) {
    CHECK(f.error.message.find("absolute") != std::string::npos);
  }
  try {
    check_branch_name("a b");
    FAIL("no error");
  } catch (const Fail& f) {
    CHECK(f.error.message.find("\"a b\"") != std::string::npos);
  }
}

TEST_CASE("glob helpers") {
  CHECK(is_glob("*.csv"));
  CHECK(is_glob("a/b?"));
  CHECK(is_glob("[ab]"));
  CHECK_FALSE(is_glob("plain/name"));
  CHECK(glob_segment_match("*.csv", "x.csv"));
  CHECK_FALSE(glob_segment_match("*.csv", "x.json"));
  CHECK(glob_segment_match("part-?", "part-1"));
  CHECK_FALSE(glob_segment_match("part-?", "part-10"));
  CHECK(glob_segment_match("[ab]*", "beta"));
  CHECK_FALSE(glob_segment_match("*", ".hidden"));  // like a shell
}

TEST_CASE("branch names") {
  for (const char* good : {"master", "dev", "feature-1", "v1.2", "a_b", "X"}) {
    INFO(good);
    CHECK_NOTHROW(check_branch_name(good));
  }
  for (const std::string& bad : std::vector<std::string>{"", ".hidden", "-x", "a/b", "a b", "a..b",
                                                         "ü", std::string(101, 'a')}) {
    INFO(bad);
    CHECK(code_of([&] { check_branch_name(bad); }) == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("commit ids") {
  CHECK(is_commit_id("0123456789abcdef0123456789abcdef"));
  CHECK_FALSE(is_commit_id("0123456789abcdef0123456789abcde"));
  CHECK_FALSE(is_commit_id("0123456789ABCDEF0123456789abcdef"));
  CHECK(is_hex("abc1"));
  CHECK_FALSE(is_hex("xyz"));
  CHECK_FALSE(is_hex(""));
}

TEST_CASE("exit statuses are distinct per code") {
  std::set<int> seen;
  for (auto c :
       {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kAlreadyExists,
        ErrorCode::kConflict, ErrorCode::kBusy, ErrorCode::kPermissionDenied,
        ErrorCode::kCorruption, ErrorCode::kIo, ErrorCode::kUnsupported, ErrorCode::kInternal}) {
    int s = exit_status(c);
    CHECK(s > 1);  // 0 is success, 1 is "fsck found problems"
    CHECK(seen.insert(s).second);
    CHECK_FALSE(code_name(c).empty());
  }
}

TEST_CASE("Result carries a value or an error") {
  Result<int> ok = 5;
  REQUIRE(ok);
  CHECK(*ok == 5);
  Result<int> bad = Error{ErrorCode::kNotFound, "gone"};
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == ErrorCode::kNotFound);
  Result<void> v;
  CHECK(v.ok());
  auto r = guard([]() -> int { fail(ErrorCode::kConflict, "x"); });
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kConflict);
}

TEST_CASE("valid_utf8 refuses what could fool a path check") {
  CHECK(valid_utf8("plain/ascii.txt"));
  CHECK(valid_utf8("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80"));  // é, 日本, 😀
  CHECK_FALSE(valid_utf8("\xc0\xae"));              // overlong '.'
  CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));          // overlong '/'
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));          // a surrogate
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));      // beyond U+10FFFF
  CHECK_FALSE(valid_utf8("\xff"));                  // never valid
  CHECK_FALSE(valid_utf8("ab\xc3"));                // truncated
  CHECK_FALSE(valid_utf8("\x80"));                  // a lone continuation byte
  CHECK(code_of([] { normalize_path("\xc0\xae\xc0\xae/x"); }) == ErrorCode::kInvalidArgument);
}
