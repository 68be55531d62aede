// The one errno table of the library and pachctl (pfs/result.h).
#include <doctest/doctest.h>

#include <cerrno>
#include <string>

#include <pfs/result.h>

using pfs::code_of_errno;
using pfs::ErrorCode;
using pfs::errno_advice;

TEST_CASE("code_of_errno: the table libpfs and pachctl share (they disagreed on ENOTDIR, EEXIST)") {
  CHECK(code_of_errno(ENOENT) == ErrorCode::kNotFound);
  CHECK(code_of_errno(ENOTDIR) == ErrorCode::kInvalidArgument);
  CHECK(code_of_errno(EEXIST) == ErrorCode::kAlreadyExists);
  CHECK(code_of_errno(ENOTEMPTY) == ErrorCode::kAlreadyExists);
  CHECK(code_of_errno(EACCES) == ErrorCode::kPermissionDenied);
  CHECK(code_of_errno(EROFS) == ErrorCode::kPermissionDenied);
  CHECK(code_of_errno(EISDIR) == ErrorCode::kInvalidArgument);
  CHECK(code_of_errno(EINVAL) == ErrorCode::kInvalidArgument);
  CHECK(code_of_errno(ENOSPC) == ErrorCode::kIo);
  CHECK(code_of_errno(EDQUOT) == ErrorCode::kIo);
  CHECK(code_of_errno(EIO) == ErrorCode::kIo);
}

TEST_CASE("errno_advice says what to do, and a read-only file system is not 'permission denied'") {
  CHECK(std::string(errno_advice(ENOSPC)).find("full") != std::string::npos);
  CHECK(std::string(errno_advice(EDQUOT)).find("quota") != std::string::npos);
  std::string ro(errno_advice(EROFS));
  CHECK(ro.find("read-only") != std::string::npos);
  CHECK(ro.find("permission") == std::string::npos);
  CHECK(errno_advice(ENOENT).empty());
}

#include <pfs/json.h>

TEST_CASE("parse_json: bad input is an error, never an exception (json.h's contract)") {
  auto ok = pfs::parse_json<pfs::TreeStats>(R"({"files": 2, "bytes": 10})");
  REQUIRE(ok.ok());
  CHECK(ok->files == 2);
  auto not_json = pfs::parse_json<pfs::TreeStats>("{nope");
  REQUIRE_FALSE(not_json.ok());
  CHECK(not_json.error().code == ErrorCode::kInvalidArgument);
  auto wrong_shape = pfs::parse_json<pfs::TreeStats>(R"({"files": "two"})");
  REQUIRE_FALSE(wrong_shape.ok());
  CHECK(wrong_shape.error().code == ErrorCode::kInvalidArgument);
}

#include <pfs/server.h>

TEST_CASE("one HTTP status table: the server's statuses read back as the same codes") {
  for (auto c : {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kConflict, ErrorCode::kBusy,
                 ErrorCode::kPermissionDenied, ErrorCode::kUnsupported, ErrorCode::kIo}) {
    CHECK(pfs::code_of_http_status(pfs::http_status(c)) == c);
  }
  CHECK(pfs::http_status(ErrorCode::kAlreadyExists) == 409);
  CHECK(pfs::http_status(ErrorCode::kCorruption) == 500);
  CHECK(pfs::code_of_http_status(401) == ErrorCode::kPermissionDenied);
  CHECK(pfs::code_of_http_status(413) == ErrorCode::kInvalidArgument);
  CHECK(pfs::code_of_http_status(431) == ErrorCode::kInvalidArgument);
  CHECK(pfs::code_of_http_status(502) == ErrorCode::kIo);
}

#include <fcntl.h>
#include <unistd.h>

#include "fail.h"
#include "fsutil.h"

TEST_CASE("an error on a descriptor names its file (it said only 'sync', 'stat file', 'lock')") {
  int fd = ::open("/proc/self", O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  CHECK(pfs::detail::fd_path(fd).rfind("/proc/", 0) == 0);
  try {
    pfs::detail::fail_errno_at(ENOSPC, "sync", fd);
  } catch (const pfs::detail::Fail& f) {
    CHECK(f.error.code == ErrorCode::kIo);
    CHECK(f.error.message.find("sync /proc/") == 0);
    CHECK(f.error.message.find("full") != std::string::npos);
  }
  ::close(fd);
  CHECK(pfs::detail::fd_path(-1) == "descriptor -1");
}
