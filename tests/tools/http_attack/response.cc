// response.cc: parses the server's HTTP/1.1 responses (status, framing,
// Connection: close) for the commands that count answers.
#include <cstddef>
#include <string>
#include <string_view>

#include "http_attack.h"

namespace http_attack {

// Parses one response at the start of b. head: the request was HEAD; eof: no
// more bytes will come.
Response parse_response(std::string_view b, bool head, bool eof) {
  Response r;
  auto bad = [&r] {
    r.state = Response::kBad;
    return r;
  };
  auto more = [&]() {
    if (eof) return bad();
    return r;
  };
  if (b.size() >= 5 && !starts_with(b, "HTTP/")) return bad();
  auto he = b.find("\r\n\r\n");
  if (he == std::string_view::npos) return b.size() > (1u << 20) ? bad() : more();
  r.status = status_of(b);
  if (r.status == 0) return bad();
  std::size_t body = he + 4;
  bool chunked = false, has_len = false;
  unsigned long long len = 0;
  std::size_t p = b.find("\r\n") + 2;
  while (p < he) {
    auto e = b.find("\r\n", p);
    std::string_view line = b.substr(p, e - p);
    p = e + 2;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return bad();
    std::string name = lower(line.substr(0, colon));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (name == "content-length") {
      if (value.empty() || value.size() > 18 ||
          value.find_first_not_of("0123456789") != std::string_view::npos)
        return bad();
      unsigned long long v = std::stoull(std::string(value));
      if (has_len && v != len) return bad();
      has_len = true;
      len = v;
    } else if (name == "transfer-encoding") {
      if (lower(value).find("chunked") != std::string::npos) chunked = true;
    } else if (name == "connection") {
      if (lower(value).find("close") != std::string::npos) r.close = true;
    }
  }
  if (r.status / 100 == 1) {
    r.state = Response::kComplete;
    r.end = body;
    return r;
  }
  if (head || r.status == 204 || r.status == 304) {
    r.end = body;
  } else if (chunked) {
    std::size_t q = body;
    for (;;) {
      auto le = b.find("\r\n", q);
      if (le == std::string_view::npos) return more();
      std::string_view sz = b.substr(q, le - q);
      if (auto semi = sz.find(';'); semi != std::string_view::npos) sz = sz.substr(0, semi);
      if (sz.empty() || sz.size() > 12 || sz.find_first_not_of("0123456789abcdefABCDEF") != sz.npos)
        return bad();
      unsigned long long n = std::stoull(std::string(sz), nullptr, 16);
      q = le + 2;
      if (n == 0) {
        for (;;) {  // trailers, then an empty line
          auto te = b.find("\r\n", q);
          if (te == std::string_view::npos) return more();
          if (te == q) {
            r.end = q + 2;
            break;
          }
          q = te + 2;
        }
        break;
      }
      if (b.size() < q + n + 2) return more();
      if (b.substr(q + n, 2) != "\r\n") return bad();
      q += n + 2;
    }
  } else if (has_len) {
    if (b.size() - body < len) return more();
    r.end = body + len;
  } else {
    r.until_close = true;
    if (!eof) return r;
    r.end = b.size();
  }
  r.state = Response::kComplete;
  return r;
}

}  // namespace http_attack
