// common.cc: what every command of http_attack uses: time, arguments,
// addresses and sockets, text, statistics and the key=value output.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

namespace {
using Clock = std::chrono::steady_clock;
const Clock::time_point kStart = Clock::now();
}  // namespace

// Seconds since the program started.
double now() { return std::chrono::duration<double>(Clock::now() - kStart).count(); }

int ms_until(double t) {
  double d = (t - now()) * 1000.0;
  if (d <= 0) return 0;
  return d > 1e6 ? 1000000 : static_cast<int>(std::ceil(d));
}

[[noreturn]] void fatal(const std::string& msg) {
  fmt::print(stderr, "http_attack: {}\n", msg);
  std::exit(1);
}

// ---- arguments ------------------------------------------------------------------

Args parse_args(int argc, char** argv, std::initializer_list<std::string_view> valued,
                std::initializer_list<std::string_view> flags) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.size() > 2 && s.compare(0, 2, "--") == 0) {
      if (std::find(flags.begin(), flags.end(), s) != flags.end()) {
        a.flags.insert(s);
      } else if (std::find(valued.begin(), valued.end(), s) != valued.end()) {
        if (i + 1 >= argc) usage_error(s + " needs a value");
        a.opts[s] = argv[++i];
      } else {
        usage_error("unknown option " + s + " for " + argv[1]);
      }
    } else {
      a.pos.push_back(s);
    }
  }
  return a;
}

double to_double(const std::string& name, const std::string& s, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno != 0 || !(v >= lo && v <= hi))
    usage_error(fmt::format("{} {}: want a number from {} to {}", name, s, lo, hi));
  return v;
}

long long to_int(const std::string& name, const std::string& s, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    usage_error(fmt::format("{} {}: want a whole number from {} to {}", name, s, lo, hi));
  return v;
}

double opt_double(const Args& a, const std::string& name, double def, double lo, double hi) {
  auto it = a.opts.find(name);
  return it == a.opts.end() ? def : to_double(name, it->second, lo, hi);
}

long long opt_int(const Args& a, const std::string& name, long long def, long long lo,
                  long long hi) {
  auto it = a.opts.find(name);
  return it == a.opts.end() ? def : to_int(name, it->second, lo, hi);
}

void need(const Args& a, const std::string& name) {
  if (!a.has(name)) usage_error(name + " is required");
}

// ---- addresses and sockets ------------------------------------------------------------

bool is_loopback(const sockaddr_in& sa) { return (ntohl(sa.sin_addr.s_addr) >> 24) == 127; }

sockaddr_in parse_addr(const std::string& host, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  std::string h = host == "localhost" ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, h.c_str(), &sa.sin_addr) != 1)
    usage_error("HOST " + host + ": want an IPv4 address such as 127.0.0.1");
  return sa;
}

// HOST PORT from the first two positional arguments.
sockaddr_in target(const Args& a, std::size_t npos) {
  if (a.pos.size() != npos) usage_error(fmt::format("want {} arguments", npos));
  auto sa = parse_addr(a.pos[0], static_cast<int>(to_int("PORT", a.pos[1], 1, 65535)));
  const char* allow = std::getenv("HTTP_ATTACK_ALLOW_REMOTE");
  if (!is_loopback(sa) && !(allow && std::string(allow) == "1"))
    usage_error("HOST " + a.pos[0] + " is not a loopback address (127.0.0.0/8)");
  return sa;
}

std::string addr_str(const sockaddr_in& sa) {
  char buf[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
  return buf;
}

// Source addresses to bind, used in turn.
Sources::Sources(const std::string& spec) {
  if (spec.empty()) return;
  auto dots = std::count(spec.begin(), spec.end(), '.');
  if (dots == 3) {
    addrs_.push_back(parse_addr(spec, 0));
  } else if (dots == 2) {
    for (int i = 1; i <= 250; ++i) addrs_.push_back(parse_addr(fmt::format("{}.{}", spec, i), 0));
  } else {
    usage_error("--from " + spec + ": want a prefix such as 127.0.1 or an address");
  }
  for (const auto& a : addrs_)
    if (!is_loopback(a)) usage_error("--from " + spec + ": not a loopback address");
}

Sources Sources::range(const std::string& prefix, int first, int last) {
  Sources s;
  for (int i = first; i <= last; ++i) s.addrs_.push_back(parse_addr(fmt::format("{}.{}", prefix, i), 0));
  return s;
}

const sockaddr_in* Sources::next() {
  if (addrs_.empty()) return nullptr;
  return &addrs_[next_++ % addrs_.size()];
}

// A non-blocking TCP socket, bound to SRC if given, connecting to DST.
// Returns the descriptor, or -1; err is 0 (connected), EINPROGRESS, or the
// errno of the failure.
int open_conn(const sockaddr_in& dst, const sockaddr_in* src, int& err) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (src) {
    // The port is chosen at connect(), per destination: many more
    // connections from one address than with bind()'s own choice.
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(src), sizeof *src) != 0) {
      err = errno;
      ::close(fd);
      return -1;
    }
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) == 0) {
    err = 0;
    return fd;
  }
  err = errno;
  if (err == EINPROGRESS) return fd;
  ::close(fd);
  return -1;
}

int socket_error(int fd) {
  int e = 0;
  socklen_t len = sizeof e;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) return errno;
  return e;
}

// Closes with a reset: no TIME_WAIT left behind on this side.
void close_reset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

// ---- text ---------------------------------------------------------------------------------

// Printable ASCII as it is, everything else (and backslash) escaped; at most
// max bytes of s.
std::string escape(std::string_view s, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c >= 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  if (s.size() > max) out += fmt::format("...({} bytes)", s.size());
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// The status of "HTTP/1.x NNN ...", or 0.
int status_of(std::string_view b) {
  if (b.size() < 12 || !starts_with(b, "HTTP/1.") || b[8] != ' ') return 0;
  int st = 0;
  for (int i = 9; i < 12; ++i) {
    if (b[i] < '0' || b[i] > '9') return 0;
    st = st * 10 + (b[i] - '0');
  }
  return st;
}

// A C++ exception's text that leaked into a response.
bool exception_text(std::string_view b) {
  for (std::string_view s : {"EXCEPTION_WHAT", "[json.exception", "type_error", "what():"})
    if (b.find(s) != std::string_view::npos) return true;
  return false;
}

// ---- statistics ---------------------------------------------------------------------

// The q-quantile (nearest rank) of v, or -1 when v is empty.
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  if (rank > 0) --rank;
  return v[std::min(rank, v.size() - 1)];
}

std::string statuses_str(const std::map<int, long long>& m) {
  if (m.empty()) return "none";
  std::string s;
  for (auto& [k, v] : m) s += fmt::format("{}{}:{}", s.empty() ? "" : ",", k, v);
  return s;
}

void kv(std::string_view k, long long v) { fmt::print("{}={}\n", k, v); }
void kv(std::string_view k, double v) { fmt::print("{}={:.1f}\n", k, v); }
void kv(std::string_view k, const std::string& v) { fmt::print("{}={}\n", k, v); }

}  // namespace http_attack
