// fuzz_requests.cc: the fuzzer's requests: valid ones of the API, then
// mutated in structure and in bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

namespace {

struct Request {
  std::string method, target, version = "HTTP/1.1";
  std::vector<std::string> headers;  // whole lines, without the line end
  std::string body;
  bool chunked = false;      // send body in chunks
  std::string framed;        // if set: the body bytes exactly as sent
  std::string after;         // bytes after the body (a pipelined request)
  std::string eol = "\r\n";  // the line end
};

Request req(std::string method, std::string target) {
  Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

std::string header_name(std::string_view line) {
  auto c = line.find(':');
  return lower(line.substr(0, c == std::string_view::npos ? 0 : c));
}

class Gen {
 public:
  Gen(std::uint64_t seed, std::string host, std::string token)
      : rng_(seed), host_(std::move(host)), token_(std::move(token)) {}

  std::string next() {
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::string r = make();
      if (safe_request(r)) return r;
      ++unsafe_;
    }
    return "GET /health HTTP/1.1\r\nHost: " + host_ + "\r\n\r\n";
  }
  long long unsafe() const { return unsafe_; }

 private:
  std::mt19937_64 rng_;
  std::string host_, token_;
  long long unsafe_ = 0;

  std::uint64_t u(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[u(v.size())];
  }
  std::string pick(std::initializer_list<std::string> v) { return *(v.begin() + u(v.size())); }

  std::string name() {
    return pick({"a", "b.txt", "c.csv", "d/e", "d/f", "long-name-0123456789", "sp%20ace",
                 "%c3%a9t%c3%a9", "x1", "x2", "d/g.bin"});
  }
  std::string branch() { return pick({"fuzz", "fuzz", "fuzz1", "fuzz2", "fuzz3"}); }
  std::string text(std::size_t max) {
    std::string s(u(max + 1), ' ');
    for (auto& c : s) c = static_cast<char>(' ' + u(95));
    return s;
  }
  std::string bytes(std::size_t max) {
    std::string s(u(max + 1), ' ');
    for (auto& c : s) c = static_cast<char>(u(256));
    return s;
  }
  std::string body() { return chance(0.8) ? text(300) : bytes(300); }

  // A one-file tar archive.
  std::string tar(const std::string& name, const std::string& data) {
    std::string h(512, '\0');
    auto put = [&h](std::size_t at, const std::string& s) { h.replace(at, s.size(), s); };
    put(0, name.substr(0, 99));
    put(100, "0000644");
    put(108, "0000000");
    put(116, "0000000");
    put(124, fmt::format("{:011o}", data.size()));
    put(136, fmt::format("{:011o}", 1700000000));
    put(148, "        ");
    h[156] = '0';
    put(257, std::string("ustar\0", 6));
    put(263, "00");
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    put(148, fmt::format("{:06o}", sum));
    h[154] = '\0';
    std::string out = h + data;
    out.append((512 - data.size() % 512) % 512, '\0');
    out.append(1024, '\0');
    return out;
  }

  // A valid request of the API (docs/http.md), before framing headers.
  Request base() {
    Request r;
    struct Choice {
      int weight;
      int id;
    };
    static const std::vector<Choice> kChoices = {
        {40, 0},  {10, 1},  {50, 2},  {15, 3}, {6, 4},  {15, 5},  {15, 6},  {2, 7},  {6, 8},
        {8, 9},   {6, 10},  {6, 11},  {4, 12}, {8, 13}, {5, 14},  {1, 15},  {80, 20}, {40, 21},
        {20, 22}, {20, 23}, {30, 24}, {40, 25}, {30, 26}, {20, 27}, {10, 28}, {2, 29}, {1, 30},
        {2, 31},  {1, 32},  {1, 33},  {20, 34}, {1, 35}, {1, 36}};
    static const int kTotal = [] {
      int t = 0;
      for (auto& c : kChoices) t += c.weight;
      return t;
    }();
    int x = static_cast<int>(u(kTotal)), id = 0;
    for (auto& c : kChoices) {
      if (x < c.weight) {
        id = c.id;
        break;
      }
      x -= c.weight;
    }
    auto ref = [&]() -> std::string {
      switch (u(4)) {
        case 0: return "";
        case 1: return "?branch=master";
        case 2: return "?branch=" + branch();
        default: return "?commit=master";
      }
    };
    switch (id) {
      case 0: r = req("GET", "/health"); break;
      case 1: r = req("GET", "/info"); break;
      case 2: r = req("GET", "/file/fuzz/" + name() + ref()); break;
      case 3: r = req("HEAD", "/file/fuzz/" + name() + ref()); break;
      case 4: r = req("GET", pick({"/file/fuzz/d/*", "/file/fuzz/d/*?format=tar"})); break;
      case 5: r = req("GET", pick({"/list/", "/list/fuzz", "/list/fuzz?recursive=true"})); break;
      case 6: r = req("GET", "/stat/fuzz/" + name() + ref()); break;
      case 7: r = req("GET", pick({"/commit", "/commit?branch=fuzz"})); break;
      case 8: r = req("GET", pick({"/commit/master", "/commit/fuzz", "/commit/0123456789abcdef"})); break;
      case 9: r = req("GET", pick({"/branch", "/branch/fuzz", "/branch/master", "/branch/nope"})); break;
      case 10: r = req("GET", "/diff?from=master&to=" + branch()); break;
      case 11: r = req("GET", pick({"/archive/fuzz/d", "/archive/nope"})); break;
      case 12: r = req("GET", pick({"/", "/nosuch", "/file", "/file/", "/stat/", "/diff"})); break;
      case 13: r = req(pick({"OPTIONS", "TRACE", "PATCH", "CONNECT", "DELETE"}), "/health"); break;
      case 14: r = req("GET", "/file/fuzz/" + name()); r.headers.push_back(
                   "Range: " + pick({"bytes=1-3", "bytes=-2", "bytes=5-", "bytes=0-0,2-3",
                                     "bytes=abc", "bytes=3-1", "bytes=99999999999999999999-"}));
        break;
      case 15: r = req("GET", chance(0.2) ? "/fsck" : "/health"); break;  // store-wide: rare
      case 20: r = req("POST", "/file/fuzz/" + name() + pick({"", "?branch=master", "?branch=fuzz"}));
        r.body = body();
        break;
      case 21: r = req("PUT", "/file/fuzz/" + name()); r.body = body(); break;
      case 22: r = req("POST", "/file/fuzz/" + name() + "?append=true"); r.body = body(); break;
      case 23: r = req("POST", fmt::format("/file/fuzz/{}?offset={}", name(), u(5)));
        r.body = body();
        break;
      case 24: r = req("POST", "/file/" + name() + "?branch=" + branch()); r.body = body(); break;
      case 25: r = req("POST", "/file/fuzz/d/" + name()); r.body = body(); r.chunked = true; break;
      case 26: r = req("DELETE", "/file/fuzz/" + name() + pick({"", "?branch=fuzz"})); break;
      case 27: r = req("DELETE", "/file/" + name() + "?branch=" + branch()); break;
      case 28: r = req("POST", "/dir/fuzz/t" + std::to_string(u(3)));
        r.body = tar(pick({"one", "sub/two", "three.txt"}), text(100));
        break;
      case 29: r = req("POST", "/commit?branch=" + branch() + pick({"", "&message=m", "&message=%e2%9c%93"}));
        break;
      case 30: r = req("POST", "/branch?branch=" + branch() + std::to_string(u(5)) +
                                pick({"", "&commit=master", "&commit=fuzz"}));
        break;
      case 31: r = req("DELETE", "/branch/fuzz" + std::to_string(1 + u(3)) + std::to_string(u(5)));
        break;
      case 32: r = req("POST", "/merge?into=" + branch() + "&from=master"); break;
      case 33: r = req("POST", "/revert?branch=" + branch() + "&commit=" + pick({"master", "fuzz"}));
        break;
      case 34: r = req("POST", "/health"); break;
      case 35: r = req("POST", "/commit?branch=fuzz"); break;
      case 36: r = req("POST", chance(0.2) ? "/gc" : "/health"); break;
    }
    // Most bodies go where nothing is written: the framing is read all the
    // same, and the store's writes (one at a time, synced) stay few enough
    // for 100,000 requests in a minute.
    if (id >= 20 && id <= 28 && chance(0.7))
      r.target = pick({"/health", "/nosuch", "/info", "/list/fuzz", "/stat/fuzz/a",
                       "/file/fuzz/" + name() + "?branch=fuzz-none", "/branch/fuzz"});
    return r;
  }

  // Host, the token, the framing a client would send.
  void finish(Request& r) {
    std::vector<std::string> h;
    if (chance(0.97)) h.push_back("Host: " + host_);
    if (chance(0.3)) h.push_back("User-Agent: http_attack");
    if (chance(0.2)) h.push_back("Accept: " + pick({"*/*", "application/json", "application/x-tar"}));
    if (!token_.empty()) {
      if (chance(0.9)) h.push_back("Authorization: Bearer " + token_);
      else if (chance(0.5)) h.push_back("Authorization: Bearer wrong-" + token_);
    }
    h.insert(h.end(), r.headers.begin(), r.headers.end());
    if (r.chunked) h.push_back("Transfer-Encoding: chunked");
    else if (!r.body.empty() || (r.method != "GET" && r.method != "HEAD" && chance(0.5)))
      h.push_back(fmt::format("Content-Length: {}", r.body.size()));
    if (chance(0.1)) h.push_back("Connection: " + pick({"close", "keep-alive", "Upgrade"}));
    r.headers = std::move(h);
  }

  std::string chunk_body(const std::string& b) {
    std::string out;
    std::size_t i = 0;
    while (i < b.size()) {
      std::size_t n = std::min<std::size_t>(b.size() - i, 1 + u(100));
      out += fmt::format("{:x}", n) + (chance(0.05) ? ";ext=1" : "") + "\r\n";
      out += b.substr(i, n) + "\r\n";
      i += n;
    }
    out += "0\r\n";
    if (chance(0.05)) out += "X-Trailer: t\r\n";
    out += "\r\n";
    return out;
  }

  void set_header(Request& r, const std::string& name, const std::string& value) {
    for (auto& l : r.headers) {
      if (header_name(l) == lower(name)) {
        l = name + ": " + value;
        return;
      }
    }
    r.headers.push_back(name + ": " + value);
  }
  void remove_header(Request& r, const std::string& name) {
    std::erase_if(r.headers, [&](const std::string& l) { return header_name(l) == lower(name); });
  }
  // Inserts s into the target: in the path (after "/file/fuzz/" if there) or the query.
  void insert_in_target(Request& r, const std::string& s) {
    std::size_t q = std::min(r.target.find('?'), r.target.size());
    std::size_t fz = r.target.rfind("/fuzz/", q);
    std::size_t lo = fz != std::string::npos ? fz + 6 : std::min<std::size_t>(1, q);
    std::size_t at = q < r.target.size() && chance(0.3) ? q + 1 + u(r.target.size() - q)
                                                        : lo + u(q - lo + 1);
    r.target.insert(at, s);
  }

  void mutate(Request& r) {
    switch (u(26)) {
      case 0:
      case 1:
        insert_in_target(r, pick({"%zz", "%", "%f", "%ff", "%80", "%c0%ae", "%c0%ae%c0%ae/",
                                  "%00", "%2e%2e/", "%2f", "%e2%82", "%ed%a0%80", "%f4%90%80%80",
                                  "%25", "%+1", "%%", "%2", "%0a", "%0d%0a", "%20", "%5c"}));
        break;
      case 2:
        insert_in_target(r, pick({"\xff", "\x80", "\xc0\xae", "\xed\xa0\x80",
                                  "\xf8\x88\x80\x80\x80", "\xe2\x82", "\xfe\xff"}));
        break;
      case 3:
        if (chance(0.5)) insert_in_target(r, std::string(1, '\0'));
        else r.headers.push_back(std::string("X-Nul: a\0b", 10));
        break;
      case 4:
        insert_in_target(r, std::string(chance(0.8) ? 100 + u(9000) : 8000 + u(120000), 'a'));
        break;
      case 5:
        r.headers.push_back("X-Long: " + std::string(chance(0.8) ? 100 + u(9000) : 8000 + u(200000), 'x'));
        break;
      case 6:
        for (std::size_t i = 0, n = 50 + u(chance(0.9) ? 200 : 5000); i < n; ++i)
          r.headers.push_back(fmt::format("X-H{}: v", i));
        break;
      case 7:
        r.version = pick({"HTTP/0.9", "HTTP/2.0", "HTTP/1.0", "HTTP/1.2", "HTTP/3", "HTTP/1.1x",
                          "http/1.1", "HTTP/11", "", "HTTP/1.1 extra", "HTTP/1", "HTTP/1.10",
                          "HTTP/9.9", "HTTP/"});
        break;
      case 8:
        r.target = pick({"http://" + host_, "http://evil.example", "HTTP://" + host_,
                         "https://x", "//", "", "*", "http://"}) +
                   (chance(0.8) ? r.target : r.target.substr(1));
        break;
      case 9:
        switch (u(4)) {
          case 0: remove_header(r, "Host"); break;
          case 1: r.headers.push_back("Host: other"); break;
          case 2: set_header(r, "Host", ""); break;
          default: set_header(r, "Host", std::string(2000, 'h')); break;
        }
        break;
      case 10:
        r.headers.push_back("X-Folded: a");
        r.headers.push_back(pick({" b", "\tc", " Content-Length: 0", " "}));
        break;
      case 11: {
        std::string v = pick({"abc", "-1", "99999999999999999999", "18446744073709551616",
                              "18446744073709551615", "0x10", "+5", " 5", "5 5", "5, 5", "",
                              "1e3", "00000000000000000000005", "4294967296"});
        if (chance(0.4)) v = std::to_string(r.body.size() + 1 + u(100));
        else if (chance(0.3) && !r.body.empty()) v = std::to_string(u(r.body.size()));
        remove_header(r, "Transfer-Encoding");
        set_header(r, "Content-Length", v);
        r.chunked = false;
        break;
      }
      case 12: {
        auto n = r.body.size();
        if (chance(0.5)) {
          r.headers.push_back(fmt::format("Content-Length: {}", n));
          r.headers.push_back(fmt::format("Content-Length: {}", chance(0.5) ? n : n + 1 + u(9)));
        } else {
          r.headers.push_back(fmt::format("content-length: {}, {}", n, chance(0.5) ? n : n + 1));
        }
        break;
      }
      case 13: {
        std::string te = pick({"gzip", "gzip, chunked", "chunked, gzip", "identity", "chunked, chunked",
                               "CHUNKED", " chunked", "xchunked", "compress", "deflate", "foo",
                               "chunked;q=1", "chunked\x0b", "identity, chunked", ""});
        if (chance(0.5)) set_header(r, "Transfer-Encoding", te);
        else r.headers.insert(r.headers.begin() + static_cast<long>(u(r.headers.size() + 1)),
                              "Transfer-Encoding: " + te);
        if (chance(0.5)) r.chunked = true;
        break;
      }
      case 14: {  // both framings
        r.chunked = true;
        remove_header(r, "Transfer-Encoding");
        std::string cl = fmt::format("Content-Length: {}", r.body.size());
        if (chance(0.5)) {
          r.headers.push_back(cl);
          r.headers.push_back("Transfer-Encoding: chunked");
        } else {
          r.headers.push_back("Transfer-Encoding: chunked");
          r.headers.push_back(cl);
        }
        break;
      }
      case 15: {  // a malformed chunked body
        remove_header(r, "Content-Length");
        set_header(r, "Transfer-Encoding", "chunked");
        r.chunked = true;
        std::string b = r.body.empty() ? text(40) + "x" : r.body;
        switch (u(10)) {
          case 0: r.framed = fmt::format("{:x}\r\n{}XX\r\n0\r\n\r\n", b.size(), b); break;
          case 1: r.framed = fmt::format("zz\r\n{}\r\n0\r\n\r\n", b); break;
          case 2: r.framed = fmt::format("-1\r\n{}\r\n0\r\n\r\n", b); break;
          case 3: r.framed = fmt::format("ffffffffffffffffff\r\n{}\r\n0\r\n\r\n", b); break;
          case 4: r.framed = fmt::format("{:x}\r\n{}\r\n", b.size(), b); break;
          case 5: r.framed = fmt::format("{:x}\r\n{}0\r\n\r\n", b.size(), b); break;
          case 6: r.framed = fmt::format("  {:x}  \r\n{}\r\n0\r\n\r\n", b.size(), b); break;
          case 7: r.framed = fmt::format("0x{:x}\r\n{}\r\n0\r\n\r\n", b.size(), b); break;
          case 8: r.framed = fmt::format("{:x}\n{}\n0\n\n", b.size(), b); break;
          default: r.framed = fmt::format("{:x}\r\n{}", b.size() + 10, b); break;
        }
        break;
      }
      case 16:
        r.headers.push_back("Expect: " + pick({"100-continue", "100-Continue", "foo", ""}));
        break;
      case 17:
        r.method = pick({"get", "GETT", "", "CONNECT", "TRACE", "OPTIONS", "PATCH", "G ET",
                         "GET\t", "PRI", "HEAD", "QWERTYUIOPASDFGHJKLZXCVBNMQWERTYUIOP",
                         std::string(3000, 'G')});
        break;
      case 18:
        r.headers.insert(r.headers.begin() + static_cast<long>(u(r.headers.size() + 1)),
                         pick({"Host :x", "NoColon", ": empty", "Ho@st: x", "X-CR: a\rb",
                               "X-Space : x", " Leading: x", "X-\x80: y", "X-Val: \xff\xfe",
                               std::string("\0: z", 4), "X-Bad\x01Name: v",
                               "Content-Length : 3"}));
        break;
      case 19:
        r.headers.push_back("Range: " + pick({"bytes=1-3", "bytes=abc", "bytes=5-1", "bytes=-0",
                                              "bytes=0-0,1-1", "bytes=99999999999999999999-",
                                              "items=1-2", "bytes=-99999999999999999999",
                                              "bytes=1-3,", "bytes"}));
        break;
      case 20:
        set_header(r, "Authorization", pick({"Bearer", "Bearer ", "Basic eDp5", "bearer x",
                                             "Bearer " + std::string(5000, 't'), "Bearer \xff"}));
        if (chance(0.3)) r.headers.push_back("Authorization: Bearer " + token_);
        break;
      case 21: {  // query games
        std::string sep = r.target.find('?') == std::string::npos ? "?" : "&";
        r.target += sep + pick({"branch=fuzz", "branch=fuzz&branch=fuzz1", "branch", "branch=",
                                "&&", "&", "=x", "offset=%ff", "commit=%ff", "branch=%80fuzz",
                                "append=maybe", "offset=1&append=true", "recursive=yes",
                                "format=zip", "offset=99999999999999999999999",
                                "offset=-1", "commit=fuzz&branch=fuzz", "branch=fuzz%00"});
        break;
      }
      case 22:
        r.headers.push_back(pick({"Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                                  "Connection: keep-alive, Upgrade", "Upgrade: websocket",
                                  "Content-Type: multipart/form-data; boundary=x",
                                  "Content-Encoding: gzip", "Trailer: Content-Length"}));
        break;
      case 23:  // a pipelined request after this one
        r.after = pick({"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                        "GET /file/fuzz/a HTTP/1.1\r\nHost: x\r\n\r\n",
                        "POST /file/fuzz/piped HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                        "GET /nosuch%80 HTTP/1.1\r\n\r\n", "\r\n\r\n", "GARBAGE\r\n\r\n"});
        break;
      case 24: {  // a body that is itself a request, with a length that hides it or not
        r.body = pick({"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                       "DELETE /file/fuzz/a HTTP/1.1\r\nHost: x\r\n\r\n"});
        set_header(r, "Content-Length", pick({"abc", "0", "-1", "1, 2"}));
        break;
      }
      default:
        r.eol = pick({"\n", "\r", "\r\r\n", "\n\r"});
        break;
    }
  }

  std::string serialize(const Request& r) {
    std::string s = r.method;
    if (!r.target.empty() || chance(0.5)) s += " " + r.target;
    if (!r.version.empty()) s += " " + r.version;
    s += r.eol;
    for (auto& h : r.headers) s += h + r.eol;
    s += r.eol;
    if (!r.framed.empty()) s += r.framed;
    else if (r.chunked) s += chunk_body(r.body);
    else s += r.body;
    return s + r.after;
  }

  void mutate_bytes(std::string& s) {
    if (s.empty()) return;
    switch (u(8)) {
      case 0: s[u(s.size())] ^= static_cast<char>(1u << u(8)); break;
      case 1:
        s.insert(u(s.size() + 1), 1,
                 chance(0.5) ? static_cast<char>(u(256)) : pick({"\0", "\r", "\n", " ", ":", "%", "\xff", "\x80", "\t"})[0]);
        break;
      case 2: s.erase(u(s.size()), 1 + u(8)); break;
      case 3: {  // one line end made bare
        auto p = s.find("\r\n", u(s.size()));
        if (p != std::string::npos) s.erase(p, 1);
        break;
      }
      case 4: s.resize(u(s.size())); break;
      case 5: {
        auto at = u(s.size());
        s.insert(u(s.size() + 1), s.substr(at, 1 + u(64)));
        break;
      }
      case 6: std::swap(s[u(s.size())], s[u(s.size())]); break;
      default: {  // a random byte replaced by a digit (lengths, versions, chunk sizes)
        s[u(s.size())] = static_cast<char>('0' + u(10));
        break;
      }
    }
  }

  std::string gibberish() {
    if (chance(0.3)) return bytes(1500);
    static const std::vector<std::string> kWords = {
        "GET", "POST", "PUT", "DELETE", "HEAD", " ", " ", "/", "/file/fuzz/", "\r\n", "\r\n",
        "\n", "HTTP/1.1", "HTTP/1.0", ":", "Host: x", "Content-Length: ", "Transfer-Encoding: ",
        "chunked", "%", "%ff", "?", "&", "=", "branch", "fuzz", "0", "1", "9", "a", "\r\n\r\n",
        "\t", "\xff", "Expect: 100-continue", "Connection: close", "/health"};
    std::string s;
    for (std::size_t i = 0, n = 1 + u(40); i < n; ++i) s += pick(kWords);
    return s;
  }

  std::string make() {
    double x = std::uniform_real_distribution<double>(0, 1)(rng_);
    if (x < 0.05) return gibberish();
    Request r = base();
    finish(r);
    bool structural = x >= 0.2;  // 15% stay valid
    if (structural) {
      for (std::size_t i = 0, n = 1 + u(3); i < n; ++i) mutate(r);
    }
    std::string s = serialize(r);
    if (x >= 0.9 || (structural && chance(0.25))) {
      for (std::size_t i = 0, n = 1 + u(3); i < n; ++i) mutate_bytes(s);
    }
    return s;
  }
};

}  // namespace

// Gen stays whole in this file; the header sees it only as RequestGen::Impl.
class RequestGen::Impl : public Gen {
 public:
  using Gen::Gen;
};

RequestGen::RequestGen(std::uint64_t seed, std::string host, std::string token)
    : impl_(std::make_unique<Impl>(seed, std::move(host), std::move(token))) {}
RequestGen::~RequestGen() = default;
std::string RequestGen::next() { return impl_->next(); }
long long RequestGen::unsafe() const { return impl_->unsafe(); }

}  // namespace http_attack
