// http_message.cc: requests and responses as the routes see them.
#include "http_message.h"

#include <strings.h>

#include <charconv>
#include <ctime>

#include <fmt/format.h>

#include <pfs/json.h>
#include <pfs/server.h>

#include "names.h"

namespace pfs::detail::http {

const std::string* Request::find(std::string_view key) const {
  for (const auto& [k, v] : query)
    if (k == key) return &v;
  return nullptr;
}

std::string Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

void Response::json(int s, const nlohmann::json& j) {
  status = s;
  content_type = "application/json";
  body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  body += '\n';
  stream = nullptr;
  stream_length.reset();
}

void Response::error(const Error& e) { json(http_status(e.code), nlohmann::json(e)); }

void Response::error(int s, std::string_view code, std::string message) {
  json(s, nlohmann::json{{"error", std::move(message)}, {"code", code}});
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// What a client sent, fit to quote in a message: printable ASCII as is,
// anything else as %XX.
std::string shown(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 200)) {
    if (c >= 0x21 && c < 0x7f) out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  if (s.size() > 200) out += "...";
  return out;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

Result<void> decode_target(std::string_view target, Request& req) {
  auto bad = [](std::string msg) -> Result<void> {
    return Error{ErrorCode::kInvalidArgument, std::move(msg)};
  };
  if (target.empty() || target.front() != '/')
    return bad(fmt::format("the request target \"{}\" is not a path: send \"/route?query\"",
                           shown(target)));
  auto q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  auto path = percent_decode(raw_path, false);
  if (!path)
    return bad(fmt::format("the path \"{}\" has a bad percent escape: '%' must be followed by two "
                           "hex digits (write '%' itself as %25)",
                           shown(raw_path)));
  if (!valid_utf8(*path))
    return bad(fmt::format("the path \"{}\" is not valid UTF-8 once decoded; paths are UTF-8",
                           shown(raw_path)));
  req.path = std::move(*path);
  req.query.clear();
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string_view raw_key = pair.substr(0, eq);
    std::string_view raw_value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    auto key = percent_decode(raw_key, true);
    if (!key || !valid_utf8(*key))
      return bad(fmt::format("the query parameter name \"{}\" is {}", shown(raw_key),
                             key ? "not valid UTF-8 once decoded"
                                 : "badly escaped: '%' must be followed by two hex digits"));
    auto value = percent_decode(raw_value, true);
    if (!value)
      return bad(fmt::format("query parameter {}: the value \"{}\" has a bad percent escape ('%' "
                             "must be followed by two hex digits; write '%' itself as %25)",
                             shown(*key), shown(raw_value)));
    if (!valid_utf8(*value))
      return bad(fmt::format("query parameter {}: the value \"{}\" is not valid UTF-8 once decoded",
                             shown(*key), shown(raw_value)));
    if (req.has(*key))
      return bad(fmt::format("query parameter {} is given twice; give it once", shown(*key)));
    req.query.emplace_back(std::move(*key), std::move(*value));
  }
  return {};
}

std::optional<std::pair<std::int64_t, std::int64_t>> parse_range(std::string_view v) {
  v = trim(v);
  if (v.size() < 6 || !iequals(v.substr(0, 6), "bytes=")) return std::nullopt;
  v = trim(v.substr(6));
  if (v.find(',') != std::string_view::npos) return std::nullopt;  // several: send it all
  auto dash = v.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto num = [](std::string_view s, std::int64_t& out) {
    if (s.empty() || s.size() > 18) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out >= 0;
  };
  std::string_view a = trim(v.substr(0, dash)), b = trim(v.substr(dash + 1));
  std::int64_t first = -1, last = -1;
  if (a.empty()) {
    if (!num(b, last)) return std::nullopt;  // "-N": the last N bytes
    return std::pair{std::int64_t{-1}, last};
  }
  if (!num(a, first)) return std::nullopt;
  if (!b.empty()) {
    if (!num(b, last) || last < first) return std::nullopt;
  }
  return std::pair{first, last};
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string_view http_date_now() {
  thread_local std::time_t cached = 0;
  thread_local std::string text;
  std::time_t now = std::time(nullptr);
  if (now != cached) {
    text = http_date(now);
    cached = now;
  }
  return text;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace pfs::detail::http
