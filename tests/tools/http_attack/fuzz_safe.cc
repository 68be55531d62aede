// fuzz_safe.cc: what a fuzzed request may write: only under /file/fuzz/, /dir/fuzz/
// or to branches fuzz*, however its path and query decode.
#include <cstddef>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

namespace {

// Percent-decodes what decodes; leaves the rest. plus: '+' is a space.
std::string pct_decode(std::string_view s, bool plus) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (plus && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

// Overlong encodings of '.' and '/' as a careless decoder would take them.
std::string fold_overlong(std::string s) {
  for (auto [from, to] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"\xc0\xae", "."}, {"\xe0\x80\xae", "."}, {"\xc0\xaf", "/"}, {"\xe0\x80\xaf", "/"}}) {
    for (std::size_t p; (p = s.find(from)) != std::string::npos;) s.replace(p, from.size(), to);
  }
  return s;
}

std::vector<std::string> split_segments(std::string_view p) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : p) {
    if (ch == '/' || ch == '\\') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(cur);
  return out;
}

// Resolves "." and ".."; false if ".." climbs above the start.
bool normalize(const std::vector<std::string>& in, std::size_t from, std::vector<std::string>& out) {
  out.clear();
  for (std::size_t i = from; i < in.size(); ++i) {
    const auto& s = in[i];
    std::string t = s;
    while (!t.empty() && (t.back() == ' ' || t.back() == '\0')) t.pop_back();
    if (t.empty() || t == ".") continue;
    if (t == "..") {
      if (out.empty()) return false;
      out.pop_back();
      continue;
    }
    out.push_back(s);
  }
  return true;
}

// May a request with this (decoded) path and query write only where the
// fuzzer may write? Two readings: the route is the first segment and the rest
// is resolved under it (how pfs reads it), or the whole path is resolved first.
bool safe_write(const std::string& path, const std::string& query) {
  static const std::set<std::string> kRoutes = {"file", "dir",    "commit", "branch",
                                                "merge", "revert", "receive"};
  static const std::set<std::string> kParams = {"branch", "commit",    "message", "into",
                                                "from",   "to",        "append",  "offset",
                                                "recursive", "format"};
  std::vector<std::pair<std::string, std::string>> params;
  std::size_t start = 0;
  while (start <= query.size()) {
    auto end = query.find_first_of("&;", start);
    if (end == std::string::npos) end = query.size();
    std::string_view kvp = std::string_view(query).substr(start, end - start);
    if (!kvp.empty()) {
      auto eq = kvp.find('=');
      params.emplace_back(
          fold_overlong(pct_decode(pct_decode(kvp.substr(0, eq), true), true)),
          eq == std::string_view::npos
              ? std::string()
              : fold_overlong(pct_decode(pct_decode(kvp.substr(eq + 1), true), true)));
    }
    start = end + 1;
  }
  // The named parameter is there and every branch it could mean is fuzz*.
  auto branches_ok = [&](const std::string& needed) {
    bool found = needed.empty();
    for (auto& [k, v] : params) {
      if (!kParams.count(k)) return false;
      if (k == "branch" || k == "into") {
        if (v.rfind("fuzz", 0) != 0 || v.find_first_of("/\\") != std::string::npos) return false;
        if (k == needed) found = true;
      }
    }
    return found;
  };
  auto check = [&](const std::vector<std::string>& seg) {
    if (seg.empty()) return true;
    std::string route = lower(seg[0]);
    if (!kRoutes.count(route)) return true;
    if (route == "receive") return false;
    if (route == "file" || route == "dir")
      return (seg.size() >= 2 && seg[1] == "fuzz") || branches_ok("branch");
    if (route == "branch" && seg.size() >= 2) return seg[1].rfind("fuzz", 0) == 0 && branches_ok("");
    return branches_ok(route == "merge" ? "into" : "branch");
  };
  for (const std::string& p : {pct_decode(path, false), pct_decode(pct_decode(path, false), false)}) {
    auto raw = split_segments(fold_overlong(p));
    std::size_t first = 0;
    while (first < raw.size() && raw[first].empty()) ++first;
    std::vector<std::string> seg, rest;
    if (first < raw.size()) {
      if (!normalize(raw, first + 1, rest)) return false;  // climbs out of the route
      seg.push_back(raw[first]);
      seg.insert(seg.end(), rest.begin(), rest.end());
      if (!check(seg)) return false;
    }
    if (!normalize(raw, 0, seg)) seg.clear();
    if (!check(seg)) return false;
  }
  return true;
}

bool safe_target(std::string_view t) {
  std::string s(t);
  std::string l = lower(s.substr(0, 8));
  for (std::string_view scheme : {"http://", "https://"}) {
    if (starts_with(l, scheme)) {
      s = s.substr(scheme.size());
      auto slash = s.find_first_of("/\\");
      s = slash == std::string::npos ? "/" : s.substr(slash);
      break;
    }
  }
  if (auto hash = s.find('#'); hash != std::string::npos) s = s.substr(0, hash);
  auto q = s.find('?');
  std::string path = s.substr(0, q), query = q == std::string::npos ? "" : s.substr(q + 1);
  return safe_write(path, query);
}

}  // namespace

// Every line of req that reads as the request line of a writing method (in
// any case, after any blanks) has a target the fuzzer may write to. Lines
// end at CR or LF, so a request smuggled in a body is checked too.
bool safe_request(std::string_view req) {
  static const std::set<std::string> kWrites = {"post", "put", "delete", "patch"};
  std::size_t i = 0;
  while (i < req.size()) {
    auto e = req.find_first_of("\r\n", i);
    if (e == std::string_view::npos) e = req.size();
    std::string_view line = req.substr(i, e - i);
    i = e + 1;
    std::vector<std::string_view> tok;
    std::size_t j = 0;
    while (j < line.size() && tok.size() < 2) {
      while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
      std::size_t k = j;
      while (k < line.size() && line[k] != ' ' && line[k] != '\t') ++k;
      if (k > j) tok.push_back(line.substr(j, k - j));
      j = k;
    }
    if (tok.size() == 2 && kWrites.count(lower(tok[0])) && !safe_target(tok[1])) return false;
  }
  return true;
}
}  // namespace http_attack
