// The strict decoding of request targets and Range headers (http_message.h).
#include <doctest/doctest.h>

#include "http_message.h"

using pfs::detail::http::decode_target;
using pfs::detail::http::parse_range;
using pfs::detail::http::percent_decode;
using pfs::detail::http::Request;
using pfs::detail::http::Response;

TEST_CASE("percent_decode: strict escapes") {
  CHECK(percent_decode("a%20b", false) == "a b");
  CHECK(percent_decode("a+b", false) == "a+b");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("%2e%2E", false) == "..");
  CHECK(percent_decode("%00", false) == std::string(1, '\0'));
  // The escapes that cpp-httplib took as literal names.
  CHECK_FALSE(percent_decode("%zz", false));
  CHECK_FALSE(percent_decode("%", false));
  CHECK_FALSE(percent_decode("a%2", false));
  CHECK_FALSE(percent_decode("%g0", false));
}

TEST_CASE("decode_target: path and query") {
  Request r;
  REQUIRE(decode_target("/file/dir/a%20b.txt?branch=dev&run&message=a+b%26c", r));
  CHECK(r.path == "/file/dir/a b.txt");
  CHECK(r.param("branch") == "dev");
  CHECK(r.has("run"));
  CHECK(r.param("run") == "");
  CHECK(r.param("message") == "a b&c");
  CHECK_FALSE(r.has("commit"));
  Request e;
  REQUIRE(decode_target("/health?", e));
  CHECK(e.query.empty());
}

TEST_CASE("decode_target: what broke the old server is a 400 naming the part") {
  auto err = [](std::string_view t) {
    Request r;
    auto res = decode_target(t, r);
    REQUIRE_FALSE(res);
    CHECK(res.error().code == pfs::ErrorCode::kInvalidArgument);
    return res.error().message;
  };
  CHECK(err("/nosuch%80").find("not valid UTF-8") != std::string::npos);  // aborted the server
  CHECK(err("/commit/%ff").find("path") != std::string::npos);
  CHECK(err("/file/x?branch=%80aster").find("branch") != std::string::npos);
  CHECK(err("/file/x?commit=%ff").find("commit") != std::string::npos);
  CHECK(err("/file/x?offset=%ff").find("offset") != std::string::npos);
  CHECK(err("/file/\xff").find("UTF-8") != std::string::npos);          // raw bytes
  CHECK(err("/file/%c0%ae%c0%ae/x").find("UTF-8") != std::string::npos);  // overlong
  CHECK(err("/file/%zz").find("percent") != std::string::npos);
  CHECK(err("/file/a%").find("percent") != std::string::npos);
  CHECK(err("/file/x?branch=%zz").find("branch") != std::string::npos);
  CHECK(err("/file/x?branch=a&branch=b").find("twice") != std::string::npos);
  CHECK(err("http://example.com/file/x").find("not a path") != std::string::npos);
  CHECK(err("*").find("not a path") != std::string::npos);
  // Messages quote what was sent in printable ASCII only.
  std::string m = err("/x?%ff=1");
  for (unsigned char c : m) CHECK(c < 0x80);
}

TEST_CASE("parse_range: one range, or the whole file") {
  using R = std::pair<std::int64_t, std::int64_t>;
  CHECK(parse_range("bytes=2-4") == R{2, 4});
  CHECK(parse_range("bytes=8-") == R{8, -1});
  CHECK(parse_range("bytes=-3") == R{-1, 3});
  CHECK(parse_range(" Bytes=0-0 ") == R{0, 0});
  CHECK_FALSE(parse_range("bytes = 0-0"));  // no space around "=" (RFC 9110)
  CHECK_FALSE(parse_range("bytes=1-2,4-5"));  // several: the whole file
  CHECK_FALSE(parse_range("bytes=5-1"));
  CHECK_FALSE(parse_range("bytes=a-b"));
  CHECK_FALSE(parse_range("items=1-2"));
  CHECK_FALSE(parse_range("bytes=-"));
  CHECK_FALSE(parse_range("bytes=99999999999999999999-"));
}

TEST_CASE("Response::json never throws on bad UTF-8") {
  Response res;
  res.error(400, "invalid_argument", std::string("bad \xff\xfe name"));
  CHECK(res.status == 400);
  CHECK(res.body.find("invalid_argument") != std::string::npos);
  CHECK(res.content_type == "application/json");
}
