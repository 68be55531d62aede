// http_message.h: one HTTP request and its response, as the routes
// (routes_*.cc) see them, and the strict decoding of a request target.
//
// The engine (http_engine.h) fills a Request from what Boost.Beast's parser
// read, after checking the framing; the routes fill a Response; the engine
// writes it. Nothing here touches a socket.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <pfs/io.h>
#include <pfs/result.h>

namespace pfs::detail::http {

// The bytes of a request's body, read on the thread that runs its route.
// read() returns 0 at the end; an error (kIo) when the client went away,
// stalled, or broke the framing; then the body is unusable. NOTE: a route
// that reads no body, or only part of it, is fine: the engine drains a
// small rest or closes the connection after the response.
class RequestBody : public Source {
 public:
  // True when the body went over ServerOptions::max_upload: the route's
  // error, whatever it is, becomes a 413.
  virtual bool too_large() const = 0;
};

struct Request {
  std::string method;  // as sent; HEAD runs the GET route without a body
  std::string target;  // as sent, for the log
  std::string path;    // percent-decoded once, valid UTF-8
  std::vector<std::pair<std::string, std::string>> query;  // decoded, each key once
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> matches;  // [1..]: what the route's pattern captured
  std::string remote_addr;
  bool has_body = false;  // a Content-Length above 0, or chunked
  RequestBody* body = nullptr;

  bool has(std::string_view key) const { return find(key) != nullptr; }
  std::string param(std::string_view key, std::string def = {}) const {
    const std::string* v = find(key);
    return v ? *v : def;
  }
  const std::string* find(std::string_view key) const;
  // A header's value (names compare without case); "" when absent.
  std::string header(std::string_view name) const;
};

// What a streamed response body is written to (on a worker thread). false:
// the client went away or stalled; stop writing.
class BodyWriter {
 public:
  virtual ~BodyWriter() = default;
  virtual bool write(const char* data, std::size_t n) = 0;
};

struct Response {
  int status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A streamed body instead of `body`: called once, on a worker thread;
  // returns false when it had to stop early (the response is then cut
  // short and the connection closed). With stream_length, exactly that
  // many bytes; without, the body goes chunked.
  std::function<bool(BodyWriter&)> stream;
  std::optional<std::uint64_t> stream_length;
  std::string cut_reason;  // why a stream stopped early, for the log

  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
  // A JSON body. Never throws on bad UTF-8 in `j`'s strings (replaced by
  // U+FFFD): an error message may quote what a client sent.
  void json(int s, const nlohmann::json& j);
  void error(const Error& e);
  void error(int s, std::string_view code, std::string message);
};

// Decodes an origin-form target ("/path?query") into req.path and
// req.query. Strict: a '%' must be followed by two hex digits; the path
// and every key and value must be valid UTF-8 once decoded; a key may
// appear once; '+' in the query is a space (HTML forms). Errors:
// kInvalidArgument naming the part (the path, or the parameter).
Result<void> decode_target(std::string_view target, Request& req);

// Percent-decodes `s` (strict, as above); nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

// A Range header's one byte range, as RFC 9110 has it: {first, last} with
// last -1 for "to the end", or first -1 for a suffix of `last` bytes.
// nullopt when there is no usable single range (absent, several ranges,
// malformed: the whole representation is sent, as RFC 9110 allows).
std::optional<std::pair<std::int64_t, std::int64_t>> parse_range(std::string_view value);

// "OK", "Not Found", ... for a status.
std::string_view reason_phrase(int status);

// An HTTP date (RFC 9110 IMF-fixdate) for seconds since the epoch, and the
// Date header's value for now (cached per second, per thread).
std::string http_date(std::time_t t);
std::string_view http_date_now();

// Header values and tokens: without the blanks around them, and compared
// without case.
std::string_view trim(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

}  // namespace pfs::detail::http
