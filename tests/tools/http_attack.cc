// http_attack: a hostile HTTP/1.1 client, to test `pachctl serve` the way a
// client on the network can treat it (tests/cli/http_hostile_test.sh,
// scripts/http-fuzz.sh). Plain POSIX sockets and epoll; loopback targets only
// (HTTP_ATTACK_ALLOW_REMOTE=1 lifts that). Results go to stdout as key=value
// lines; the exit status is 0 unless the tool itself failed (1), was used
// wrongly (2), or as the command says. Every loop is bounded in count and time.
//
//   raw HOST PORT [--timeout S] [--half-close]
//       Sends stdin's bytes exactly, reads until the server closes or S
//       seconds (default 5) pass, and writes the bytes read to stdout; one
//       summary line on stderr. Exit 0: the server closed the connection;
//       3: still open at the timeout; 4: could not connect.
//   idle HOST PORT N --hold S [--from PREFIX]
//       N connections that send nothing, held S seconds.
//   slowloris HOST PORT N --hold S [--interval S2] [--from PREFIX]
//       N connections that send "GET /health HTTP/1.1\r\nHost: x\r\n", then
//       one byte of "X-a: b\r\n" every S2 seconds (default 1), for S seconds.
//   keepalive HOST PORT N --seconds S --path P [--timeout S2] [--from PREFIX]
//       N keep-alive clients doing GET P back to back for S seconds.
//   probe HOST PORT --path P --count N [--interval MS] [--timeout S] [--from ADDR]
//       N sequential GETs, each on a new connection.
//   fuzz HOST PORT --count N --seed S [--token T] [--concurrency C]
//        [--timeout S] [--max-seconds S] [--from PREFIX]
//       N random and mutated requests, one connection each, C in flight.
//       Writes only under /file/fuzz/ (and /dir/fuzz/) or to branches named
//       fuzz*; never a path that would leave the store.
//
// --from PREFIX: "127.0.1" binds source addresses 127.0.1.1 .. 127.0.1.250 in
// turn; a whole address ("127.0.0.2") binds that one.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
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
#include <deque>
#include <initializer_list>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace {

constexpr std::string_view kUsage =
    "usage: http_attack raw HOST PORT [--timeout S] [--half-close] < request\n"
    "       http_attack idle HOST PORT N --hold S [--from PREFIX]\n"
    "       http_attack slowloris HOST PORT N --hold S [--interval S] [--from PREFIX]\n"
    "       http_attack keepalive HOST PORT N --seconds S --path P [--timeout S] [--from PREFIX]\n"
    "       http_attack probe HOST PORT --path P --count N [--interval MS] [--timeout S]"
    " [--from ADDR]\n"
    "       http_attack fuzz HOST PORT --count N --seed S [--token T] [--concurrency C]"
    " [--timeout S] [--max-seconds S] [--from PREFIX]\n";

using Clock = std::chrono::steady_clock;
const Clock::time_point kStart = Clock::now();

// Seconds since the program started.
double now() { return std::chrono::duration<double>(Clock::now() - kStart).count(); }

int ms_until(double t) {
  double d = (t - now()) * 1000.0;
  if (d <= 0) return 0;
  return d > 1e6 ? 1000000 : static_cast<int>(std::ceil(d));
}

[[noreturn]] void usage_error(const std::string& msg) {
  fmt::print(stderr, "http_attack: {}\n{}", msg, kUsage);
  std::exit(2);
}

[[noreturn]] void fatal(const std::string& msg) {
  fmt::print(stderr, "http_attack: {}\n", msg);
  std::exit(1);
}

// ---- arguments ------------------------------------------------------------------

struct Args {
  std::vector<std::string> pos;
  std::map<std::string, std::string> opts;
  std::set<std::string> flags;

  bool has(const std::string& name) const { return opts.count(name) != 0; }
};

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
class Sources {
 public:
  Sources() = default;
  explicit Sources(const std::string& spec) {
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
  static Sources range(const std::string& prefix, int first, int last) {
    Sources s;
    for (int i = first; i <= last; ++i) s.addrs_.push_back(parse_addr(fmt::format("{}.{}", prefix, i), 0));
    return s;
  }
  const sockaddr_in* next() {
    if (addrs_.empty()) return nullptr;
    return &addrs_[next_++ % addrs_.size()];
  }

 private:
  std::vector<sockaddr_in> addrs_;
  std::size_t next_ = 0;
};

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
std::string escape(std::string_view s, std::size_t max = 400) {
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

// ---- HTTP responses -------------------------------------------------------------------------

struct Response {
  enum State { kIncomplete, kComplete, kBad } state = kIncomplete;
  int status = 0;
  std::size_t end = 0;       // bytes of b the response takes
  bool close = false;        // Connection: close
  bool until_close = false;  // body delimited by the close
};

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

// ---- raw --------------------------------------------------------------------------------------

int cmd_raw(int argc, char** argv) {
  auto a = parse_args(argc, argv, {"--timeout"}, {"--half-close"});
  auto dst = target(a, 2);
  double timeout = opt_double(a, "--timeout", 5, 0.01, 3600);
  bool half_close = a.flags.count("--half-close") != 0;
  std::string input;
  char buf[65536];
  for (;;) {
    std::size_t n = std::fread(buf, 1, sizeof buf, stdin);
    input.append(buf, n);
    if (n < sizeof buf) break;
  }
  double t0 = now(), deadline = t0 + timeout;
  int err = 0;
  int fd = open_conn(dst, nullptr, err);
  if (fd < 0) {
    fmt::print(stderr, "http_attack raw: connect: {}\n", std::strerror(err));
    return 4;
  }
  bool connected = err == 0, shut = false, closed = false, reset = false, write_failed = false;
  std::size_t sent = 0, received = 0;
  double first_byte = -1, closed_at = -1;
  while (!closed && now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (!connected || (sent < input.size() && !write_failed)) p.events |= POLLOUT;
    int r = ::poll(&p, 1, ms_until(deadline));
    if (r < 0 && errno != EINTR) fatal(fmt::format("poll: {}", std::strerror(errno)));
    if (r <= 0) continue;
    if (!connected) {
      if (int e = socket_error(fd); e != 0) {
        fmt::print(stderr, "http_attack raw: connect: {}\n", std::strerror(e));
        ::close(fd);
        return 4;
      }
      connected = true;
    }
    if ((p.revents & POLLOUT) && sent < input.size() && !write_failed) {
      ssize_t n = ::send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) write_failed = true;
    }
    if (half_close && !shut && sent == input.size()) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
          if (first_byte < 0) first_byte = now();
          std::fwrite(buf, 1, static_cast<std::size_t>(n), stdout);
          received += static_cast<std::size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n < 0) reset = true;
        closed = true;
        closed_at = now();
        break;
      }
    }
  }
  std::fflush(stdout);
  if (half_close && !shut && connected) ::shutdown(fd, SHUT_WR);
  close_reset(fd);
  auto ms = [t0](double t) { return t < 0 ? -1.0 : (t - t0) * 1000.0; };
  fmt::print(stderr,
             "http_attack raw: sent={}/{} received={} closed={} reset={} write_failed={} "
             "first_byte_ms={:.0f} elapsed_ms={:.0f}\n",
             sent, input.size(), received, closed ? 1 : 0, reset ? 1 : 0, write_failed ? 1 : 0,
             ms(first_byte), ms(closed ? closed_at : now()));
  return closed ? 0 : 3;
}

// ---- idle and slowloris ---------------------------------------------------------------------

struct HeldConn {
  enum State { kConnecting, kOpen, kClosed, kFailed } state = kConnecting;
  int fd = -1;
  int err = 0;
  bool reset = false;
  double connected_at = 0, closed_at = 0;
  std::string got;
};

int cmd_hold(int argc, char** argv, bool slowloris) {
  auto a = slowloris ? parse_args(argc, argv, {"--hold", "--interval", "--from"}, {})
                     : parse_args(argc, argv, {"--hold", "--from"}, {});
  auto dst = target(a, 3);
  auto n = static_cast<std::size_t>(to_int("N", a.pos[2], 1, 200000));
  need(a, "--hold");
  double hold = opt_double(a, "--hold", 0, 0, 3600);
  double interval = opt_double(a, "--interval", 1, 0.01, 3600);
  Sources src(a.has("--from") ? a.opts.at("--from") : "");
  raise_fd_limit();
  const std::string head = "GET /health HTTP/1.1\r\nHost: x\r\n";
  const std::string trickle = "X-a: b\r\n";
  long long trickled = 0;

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
  std::vector<HeldConn> c(n);
  auto finish = [&](HeldConn& h, bool reset) {
    h.state = HeldConn::kClosed;
    h.closed_at = now();
    h.reset = reset;
    ::epoll_ctl(ep, EPOLL_CTL_DEL, h.fd, nullptr);
    close_reset(h.fd);
    h.fd = -1;
  };
  auto connected = [&](HeldConn& h) {
    h.state = HeldConn::kOpen;
    h.connected_at = now();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(&h - c.data());
    ::epoll_ctl(ep, EPOLL_CTL_MOD, h.fd, &ev);
    if (slowloris && ::send(h.fd, head.data(), head.size(), MSG_NOSIGNAL) < 0) finish(h, true);
  };
  auto drain = [&](HeldConn& h) {
    char buf[16384];
    for (;;) {
      ssize_t r = ::recv(h.fd, buf, sizeof buf, 0);
      if (r > 0) {
        if (h.got.size() < 65536) h.got.append(buf, static_cast<std::size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) return;
      finish(h, r < 0);
      return;
    }
  };
  for (std::size_t i = 0; i < n; ++i) {
    auto& h = c[i];
    h.fd = open_conn(dst, src.next(), h.err);
    if (h.fd < 0) {
      h.state = HeldConn::kFailed;
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, h.fd, &ev) != 0)
      fatal(fmt::format("epoll_ctl: {}", std::strerror(errno)));
    if (h.err == 0) connected(h);
  }
  const double began = now();
  double end = began + hold, next_tick = began + interval;
  std::vector<epoll_event> evs(1024);
  auto any_left = [&c] {
    return std::any_of(c.begin(), c.end(), [](const HeldConn& h) {
      return h.state == HeldConn::kOpen || h.state == HeldConn::kConnecting;
    });
  };
  double next_check = now() + 0.1;
  while (now() < end) {
    if (now() >= next_check) {  // every connection gone: nothing more to see
      if (!any_left()) break;
      next_check = now() + 0.1;
    }
    double wake = slowloris ? std::min(end, next_tick) : end;
    int k = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), ms_until(wake));
    if (k < 0 && errno != EINTR) fatal(fmt::format("epoll_wait: {}", std::strerror(errno)));
    for (int j = 0; j < k; ++j) {
      auto& h = c[evs[j].data.u64];
      if (h.state == HeldConn::kConnecting) {
        if (int e = socket_error(h.fd); e != 0) {
          h.state = HeldConn::kFailed;
          h.err = e;
          ::epoll_ctl(ep, EPOLL_CTL_DEL, h.fd, nullptr);
          ::close(h.fd);
          h.fd = -1;
          continue;
        }
        connected(h);
      }
      if (h.state == HeldConn::kOpen) drain(h);
    }
    if (slowloris && now() >= next_tick) {
      for (auto& h : c) {
        if (h.state != HeldConn::kOpen) continue;
        if (::send(h.fd, &trickle[static_cast<std::size_t>(trickled) % trickle.size()], 1,
                   MSG_NOSIGNAL) < 0 && errno != EAGAIN)
          finish(h, true);
      }
      ++trickled;
      next_tick += interval;
    }
  }
  // What arrived just now still counts.
  for (auto& h : c)
    if (h.state == HeldConn::kOpen) drain(h);
  const double held = now() - began;

  long long conn = 0, refused = 0, failed = 0, pending = 0, closed = 0, open = 0, resets = 0;
  long long a503 = 0, a408 = 0, other = 0;
  std::map<int, long long> statuses;
  std::map<std::string, long long> errors;
  std::vector<double> close_ms;
  for (auto& h : c) {
    switch (h.state) {
      case HeldConn::kConnecting: ++pending; break;
      case HeldConn::kFailed:
        if (h.err == ECONNREFUSED) ++refused;
        else ++failed;
        errors[std::strerror(h.err)]++;
        break;
      case HeldConn::kOpen: ++conn; ++open; break;
      case HeldConn::kClosed:
        ++conn;
        ++closed;
        if (h.reset) ++resets;
        close_ms.push_back((h.closed_at - h.connected_at) * 1000.0);
        break;
    }
    if (h.got.empty()) continue;
    int st = status_of(h.got);
    statuses[st]++;
    if (st == 503) ++a503;
    else if (st == 408) ++a408;
    else ++other;
  }
  for (auto& h : c) close_reset(h.fd);
  ::close(ep);
  for (auto& [e, k] : errors) fmt::print(stderr, "http_attack: {} connections: {}\n", k, e);
  kv("connections", static_cast<long long>(n));
  kv("connected", conn);
  kv("refused", refused);
  kv("connect_failed", failed);
  kv("pending", pending);
  kv("closed_by_server", closed);
  kv("closed_with_reset", resets);
  kv("close_min_ms", quantile(close_ms, 0));
  kv("close_median_ms", quantile(close_ms, 0.5));
  kv("close_max_ms", quantile(close_ms, 1));
  kv("answered_503", a503);
  kv("answered_408", a408);
  kv("answered_other", other);
  kv("statuses", statuses_str(statuses));
  kv("still_open", open);
  if (slowloris) kv("bytes_trickled", trickled);
  kv("hold_seconds", hold);
  kv("held_seconds", held);
  return 0;
}

// ---- keepalive ---------------------------------------------------------------------------------

struct KaClient {
  enum State { kIdle, kConnecting, kBusy } state = kIdle;
  int fd = -1;
  std::string out;
  std::size_t out_off = 0;
  std::string in;
  double req_start = 0, retry_at = 0;
  long long answers = 0;
};

int cmd_keepalive(int argc, char** argv) {
  auto a = parse_args(argc, argv, {"--seconds", "--path", "--timeout", "--from"}, {});
  auto dst = target(a, 3);
  auto n = static_cast<std::size_t>(to_int("N", a.pos[2], 1, 50000));
  need(a, "--seconds");
  need(a, "--path");
  double seconds = opt_double(a, "--seconds", 0, 0, 3600);
  double timeout = opt_double(a, "--timeout", 10, 0.01, 3600);
  Sources src(a.has("--from") ? a.opts.at("--from") : "");
  raise_fd_limit();
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: http_attack\r\n\r\n", a.opts.at("--path"),
      addr_str(dst), ntohs(dst.sin_port));

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
  std::vector<KaClient> c(n);
  std::vector<double> latency;
  std::map<int, long long> statuses;
  long long non2xx = 0, reconnects = 0, connect_errors = 0, resets = 0, timeouts = 0, bad = 0;
  long long requests = 0;

  auto drop = [&](KaClient& k, double retry_in) {
    if (k.fd >= 0) {
      ::epoll_ctl(ep, EPOLL_CTL_DEL, k.fd, nullptr);
      close_reset(k.fd);
    }
    k.fd = -1;
    k.state = KaClient::kIdle;
    k.in.clear();
    k.retry_at = now() + retry_in;
  };
  auto want = [&](KaClient& k, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<std::uint64_t>(&k - c.data());
    ::epoll_ctl(ep, EPOLL_CTL_MOD, k.fd, &ev);
  };
  // Sends what is left of k.out; waits for EPOLLOUT if it does not all go.
  auto push = [&](KaClient& k) {
    while (k.out_off < k.out.size()) {
      ssize_t r = ::send(k.fd, k.out.data() + k.out_off, k.out.size() - k.out_off, MSG_NOSIGNAL);
      if (r > 0) {
        k.out_off += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) {
        want(k, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
        return;
      }
      ++resets;
      drop(k, 0);
      return;
    }
    want(k, EPOLLIN | EPOLLRDHUP);
  };
  auto start_request = [&](KaClient& k, double started) {
    k.out = request;
    k.out_off = 0;
    k.req_start = started;
    k.state = KaClient::kBusy;
    push(k);
  };
  auto start_connect = [&](KaClient& k) {
    int err = 0;
    k.fd = open_conn(dst, src.next(), err);
    if (k.fd < 0) {
      ++connect_errors;
      k.retry_at = now() + 0.1;
      return;
    }
    ++reconnects;
    k.req_start = now();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(&k - c.data());
    ::epoll_ctl(ep, EPOLL_CTL_ADD, k.fd, &ev);
    if (err == 0) start_request(k, k.req_start);
    else k.state = KaClient::kConnecting;
  };
  auto on_readable = [&](KaClient& k) {
    char buf[65536];
    bool eof = false;
    for (;;) {
      ssize_t r = ::recv(k.fd, buf, sizeof buf, 0);
      if (r > 0) {
        k.in.append(buf, static_cast<std::size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) break;
      eof = true;
      if (r < 0) ++resets;
      break;
    }
    for (;;) {
      auto resp = parse_response(k.in, false, eof);
      if (resp.state == Response::kIncomplete) break;
      if (resp.state == Response::kBad) {
        if (!k.in.empty()) ++bad;
        drop(k, 0);
        return;
      }
      k.in.erase(0, resp.end);
      if (resp.status / 100 == 1) continue;
      double t = now();
      latency.push_back((t - k.req_start) * 1000.0);
      statuses[resp.status]++;
      if (resp.status / 100 != 2) ++non2xx;
      ++k.answers;
      ++requests;
      if (resp.close || resp.until_close || eof) {
        drop(k, 0);
        return;
      }
      start_request(k, t);
      return;
    }
    if (eof) drop(k, 0);
  };

  double end = now() + seconds;
  std::vector<epoll_event> evs(1024);
  while (now() < end) {
    double t = now();
    for (auto& k : c) {
      if (k.state == KaClient::kIdle && t >= k.retry_at) start_connect(k);
      else if (k.state != KaClient::kIdle && t - k.req_start > timeout) {
        ++timeouts;
        drop(k, 0);
      }
    }
    int m = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()),
                         std::min(ms_until(end), 50));
    if (m < 0 && errno != EINTR) fatal(fmt::format("epoll_wait: {}", std::strerror(errno)));
    for (int j = 0; j < m; ++j) {
      auto& k = c[evs[j].data.u64];
      if (k.fd < 0) continue;
      if (k.state == KaClient::kConnecting) {
        if (int e = socket_error(k.fd); e != 0) {
          ++connect_errors;
          drop(k, 0.1);
          continue;
        }
        start_request(k, k.req_start);
        continue;
      }
      if (k.state != KaClient::kBusy) continue;
      if ((evs[j].events & EPOLLOUT) && k.out_off < k.out.size()) push(k);
      if (k.fd >= 0 && (evs[j].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        on_readable(k);
    }
  }
  std::vector<double> per;
  long long starved = 0;
  for (auto& k : c) {
    per.push_back(static_cast<double>(k.answers));
    if (k.answers == 0) ++starved;
    close_reset(k.fd);
  }
  ::close(ep);
  kv("clients", static_cast<long long>(n));
  kv("seconds", seconds);
  kv("requests", requests);
  kv("per_client_min", static_cast<long long>(quantile(per, 0)));
  kv("per_client_median", static_cast<long long>(quantile(per, 0.5)));
  kv("per_client_max", static_cast<long long>(quantile(per, 1)));
  kv("starved", starved);
  kv("latency_p50_ms", quantile(latency, 0.5));
  kv("latency_p99_ms", quantile(latency, 0.99));
  kv("latency_max_ms", quantile(latency, 1));
  kv("non2xx", non2xx);
  kv("statuses", statuses_str(statuses));
  kv("connections", reconnects);
  kv("connect_errors", connect_errors);
  kv("resets", resets);
  kv("timeouts", timeouts);
  kv("bad_responses", bad);
  return 0;
}

// ---- probe --------------------------------------------------------------------------------------

int cmd_probe(int argc, char** argv) {
  auto a = parse_args(argc, argv, {"--path", "--count", "--interval", "--timeout", "--from"}, {});
  auto dst = target(a, 2);
  need(a, "--path");
  need(a, "--count");
  long long count = opt_int(a, "--count", 1, 1, 1000000);
  double interval_ms = opt_double(a, "--interval", 0, 0, 3600000);
  double timeout = opt_double(a, "--timeout", 5, 0.01, 3600);
  Sources src(a.has("--from") ? a.opts.at("--from") : "127.0.0.1");
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: http_attack\r\nConnection: close\r\n\r\n",
      a.opts.at("--path"), addr_str(dst), ntohs(dst.sin_port));
  long long ok = 0, refused = 0, timeouts = 0, non2xx = 0, errors = 0;
  std::map<int, long long> statuses;
  std::vector<double> latency;
  for (long long i = 0; i < count; ++i) {
    if (i > 0 && interval_ms > 0)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(interval_ms));
    double t0 = now(), deadline = t0 + timeout;
    int err = 0;
    int fd = open_conn(dst, src.next(), err);
    if (fd < 0) {
      if (err == ECONNREFUSED) ++refused;
      else ++errors;
      fmt::print(stderr, "http_attack probe {}: connect: {}\n", i, std::strerror(err));
      continue;
    }
    bool connected = err == 0, eof = false, failed = false;
    std::size_t off = 0;
    std::string in;
    Response resp;
    while (now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (!connected || off < request.size()) p.events |= POLLOUT;
      int r = ::poll(&p, 1, ms_until(deadline));
      if (r < 0 && errno != EINTR) fatal(fmt::format("poll: {}", std::strerror(errno)));
      if (r <= 0) continue;
      if (!connected) {
        if (int e = socket_error(fd); e != 0) {
          err = e;
          failed = true;
          break;
        }
        connected = true;
      }
      if ((p.revents & POLLOUT) && off < request.size()) {
        ssize_t w = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
        if (w > 0) off += static_cast<std::size_t>(w);
      }
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[65536];
        for (;;) {
          ssize_t k = ::recv(fd, buf, sizeof buf, 0);
          if (k > 0) {
            in.append(buf, static_cast<std::size_t>(k));
            continue;
          }
          if (k < 0 && (errno == EAGAIN || errno == EINTR)) break;
          eof = true;
          break;
        }
      }
      resp = parse_response(in, false, eof);
      if (resp.state == Response::kComplete && resp.status / 100 == 1) {
        in.erase(0, resp.end);
        resp = parse_response(in, false, eof);
      }
      if (resp.state != Response::kIncomplete || eof) break;
    }
    close_reset(fd);
    double ms = (now() - t0) * 1000.0;
    if (failed) {
      if (err == ECONNREFUSED) ++refused;
      else ++errors;
      fmt::print(stderr, "http_attack probe {}: connect: {}\n", i, std::strerror(err));
    } else if (resp.state == Response::kIncomplete && !eof) {
      ++timeouts;
      fmt::print(stderr, "http_attack probe {}: no whole answer in {:.1f} s ({} bytes)\n", i,
                 timeout, in.size());
    } else if (resp.state != Response::kComplete) {
      ++errors;
      fmt::print(stderr, "http_attack probe {}: bad or cut answer: {}\n", i, escape(in, 200));
    } else {
      statuses[resp.status]++;
      latency.push_back(ms);
      if (resp.status / 100 == 2) {
        ++ok;
      } else {
        ++non2xx;
        fmt::print(stderr, "http_attack probe {}: status {}\n", i, resp.status);
      }
    }
  }
  kv("count", count);
  kv("ok", ok);
  kv("failures", count - ok);
  kv("refused", refused);
  kv("timeouts", timeouts);
  kv("non2xx", non2xx);
  kv("errors", errors);
  kv("statuses", statuses_str(statuses));
  kv("latency_p50_ms", quantile(latency, 0.5));
  kv("latency_p99_ms", quantile(latency, 0.99));
  kv("latency_max_ms", quantile(latency, 1));
  return 0;
}

// ---- fuzz: what a request may write --------------------------------------------------------------

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

// ---- fuzz: requests --------------------------------------------------------------------------------

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

// ---- fuzz: the run ---------------------------------------------------------------------------------

struct Slot {
  int fd = -1;
  bool connecting = false, shut = false, eof = false, reset = false;
  std::string req;
  std::size_t off = 0;
  std::string in;
  std::size_t in_total = 0;
  double started = 0, answered_at = -1;
  long long id = 0;
};

int cmd_fuzz(int argc, char** argv) {
  auto a = parse_args(argc, argv,
                      {"--count", "--seed", "--token", "--concurrency", "--timeout", "--max-seconds",
                       "--from"},
                      {});
  auto dst = target(a, 2);
  need(a, "--count");
  need(a, "--seed");
  long long count = opt_int(a, "--count", 0, 0, 1000000000);
  auto seed = static_cast<std::uint64_t>(opt_int(a, "--seed", 0, 0, INT64_MAX));
  auto conc = static_cast<std::size_t>(opt_int(a, "--concurrency", 32, 1, 4096));
  double timeout = opt_double(a, "--timeout", 3, 0.05, 600);
  double max_seconds = opt_double(a, "--max-seconds", 600, 1, 86400);
  Sources src = a.has("--from") ? Sources(a.opts.at("--from")) : Sources::range("127.0.0", 1, 254);
  raise_fd_limit();
  Gen gen(seed, fmt::format("{}:{}", addr_str(dst), ntohs(dst.sin_port)),
          a.has("--token") ? a.opts.at("--token") : "");

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
  std::vector<Slot> slots(conc);
  std::deque<std::string> recent;  // the last requests started
  long long issued = 0, done = 0, by_class[6] = {0, 0, 0, 0, 0, 0}, no_response = 0, resets = 0,
            timeouts = 0, bad = 0, multi = 0, interim = 0, leaks = 0, connect_errors = 0,
            kept_open = 0, local_errors = 0;
  bool died = false;
  std::vector<std::pair<long long, std::string>> in_flight;  // when the server died
  auto server_died = [&] {
    if (died) return;
    died = true;
    for (auto& s : slots)
      if (s.fd >= 0) in_flight.emplace_back(s.id, s.req);
  };
  int shown = 0, timeouts_shown = 0;
  const double t_begin = now(), stop_at = t_begin + max_seconds;

  auto finish = [&](Slot& s, bool timed_out) {
    ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
    close_reset(s.fd);
    s.fd = -1;
    ++done;
    if (timed_out && s.answered_at < 0) {
      ++timeouts;
      if (timeouts_shown < 5) {
        ++timeouts_shown;
        fmt::print(stderr, "http_attack fuzz: no answer and no close in {} s for request {}: {}\n  -> {}\n",
                   timeout, s.id, escape(s.req, 1500), escape(s.in, 300));
      }
    }
    if (s.in.empty()) {
      if (s.reset) ++resets;
      else if (!timed_out) ++no_response;
      return;
    }
    std::string_view b = s.in;
    bool head = starts_with(s.req, "HEAD ");
    std::vector<int> finals;
    std::size_t pos = 0;
    while (pos < b.size()) {
      int st = status_of(b.substr(pos));
      if (st == 0) break;
      if (st / 100 == 1) ++interim;
      else finals.push_back(st);
      auto r = parse_response(b.substr(pos), head, true);
      if (r.state != Response::kComplete || r.end == 0) break;
      pos += r.end;
    }
    if (finals.empty()) {
      if (status_of(b) == 0) ++bad;
      return;
    }
    by_class[std::min(finals[0] / 100, 5)]++;
    if (finals.size() > 1) ++multi;
    if (exception_text(b)) {
      ++leaks;
      if (shown < 10) {
        ++shown;
        fmt::print(stderr, "http_attack fuzz: exception text in the answer to request {}: {}\n  -> {}\n",
                   s.id, escape(s.req, 1500), escape(b, 600));
      }
    }
    for (std::size_t i = 0; i < finals.size(); ++i) {
      int st = finals[i];
      if (st >= 500) {
        if (finals[0] < 500) by_class[5]++;  // a later answer of the connection
        if (shown < 10) {
          ++shown;
          fmt::print(stderr, "http_attack fuzz: status {} for request {}: {}\n  -> {}\n", st, s.id,
                     escape(s.req, 1500), escape(b, 300));
        }
        break;
      }
    }
  };
  auto pump = [&](Slot& s) {
    while (s.off < s.req.size()) {
      ssize_t w = ::send(s.fd, s.req.data() + s.off, s.req.size() - s.off, MSG_NOSIGNAL);
      if (w > 0) {
        s.off += static_cast<std::size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) return;
      s.off = s.req.size();  // the server stopped reading: what it said still counts
      s.shut = true;
    }
    if (!s.shut) {
      ::shutdown(s.fd, SHUT_WR);
      s.shut = true;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(&s - slots.data());
    ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
  };
  auto drain = [&](Slot& s) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(s.fd, buf, sizeof buf, 0);
      if (r > 0) {
        if (s.in.size() < (256u << 10)) s.in.append(buf, static_cast<std::size_t>(r));
        s.in_total += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) break;
      if (r < 0) s.reset = true;
      s.eof = true;
      break;
    }
    if (s.eof) {
      finish(s, false);
      return;
    }
    if (s.answered_at < 0 && status_of(s.in) >= 200 &&
        parse_response(s.in, starts_with(s.req, "HEAD "), false).state == Response::kComplete)
      s.answered_at = now();
  };
  auto start = [&](Slot& s) {
    s = Slot{};
    s.req = gen.next();
    s.id = issued;
    recent.push_back(s.req);
    if (recent.size() > std::max<std::size_t>(64, 2 * conc)) recent.pop_front();
    int err = 0;
    s.fd = open_conn(dst, src.next(), err);
    if (s.fd < 0) {
      if (err == ECONNREFUSED) {
        s.fd = -1;
        server_died();
        return;
      }
      ++local_errors;
      if (local_errors > 1000) fatal(fmt::format("connect: {}", std::strerror(err)));
      fmt::print(stderr, "http_attack fuzz: connect: {}\n", std::strerror(err));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    ++issued;
    s.started = now();
    s.connecting = err != 0;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(&s - slots.data());
    ::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
    if (!s.connecting) pump(s);
  };

  std::vector<epoll_event> evs(conc + 1);
  for (;;) {
    double t = now();
    bool more = !died && issued < count && t < stop_at;
    std::size_t active = 0;
    for (auto& s : slots) {
      if (s.fd >= 0) {
        if (t - s.started > timeout) finish(s, true);
        else if (s.answered_at >= 0 && t - s.answered_at > 0.5) {  // answered, left open
          ++kept_open;
          finish(s, false);
        }
      }
      if (s.fd < 0 && more) {
        start(s);
        more = !died && issued < count;
      }
      if (s.fd >= 0) ++active;
    }
    if (active == 0 && !more) break;
    int m = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 20);
    if (m < 0 && errno != EINTR) fatal(fmt::format("epoll_wait: {}", std::strerror(errno)));
    for (int j = 0; j < m; ++j) {
      auto& s = slots[evs[j].data.u64];
      if (s.fd < 0) continue;
      if (s.connecting) {
        int e = socket_error(s.fd);
        if (e != 0) {
          ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
          ::close(s.fd);
          s.fd = -1;
          if (e == ECONNREFUSED) server_died();
          else ++connect_errors;
          continue;
        }
        s.connecting = false;
      }
      if ((evs[j].events & EPOLLOUT) && !s.shut) pump(s);
      if (s.fd >= 0 && (evs[j].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) drain(s);
    }
  }
  if (died) {
    fmt::print(stderr, "http_attack fuzz: connection refused: the server died\n");
    for (auto& [id, r] : in_flight)
      fmt::print(stderr, "http_attack fuzz: in flight when it died: request {}: {}\n", id, escape(r, 2000));
    fmt::print(stderr,
               "http_attack fuzz: the last {} requests, oldest first (repeat with --concurrency 1 "
               "and the same seed to find the one):\n",
               recent.size());
    for (auto& r : recent) fmt::print(stderr, "  {}\n", escape(r, 300));
  }
  ::close(ep);
  double secs = now() - t_begin;
  kv("seed", static_cast<long long>(seed));
  kv("requests", done);
  kv("status_1xx", by_class[1]);
  kv("status_2xx", by_class[2]);
  kv("status_3xx", by_class[3]);
  kv("status_4xx", by_class[4]);
  kv("status_5xx", by_class[5]);
  kv("interim_1xx", interim);
  kv("no_response", no_response);
  kv("resets", resets);
  kv("timeouts", timeouts);
  kv("kept_open", kept_open);
  kv("bad_responses", bad);
  kv("multi_responses", multi);
  kv("exception_text", leaks);
  kv("connect_errors", connect_errors + local_errors);
  kv("unsafe_regenerated", gen.unsafe());
  kv("server_died", static_cast<long long>(died ? 1 : 0));
  kv("seconds", secs);
  kv("requests_per_second", secs > 0 ? static_cast<double>(done) / secs : 0.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) usage_error("no command");
  std::string cmd = argv[1];
  if (cmd == "raw") return cmd_raw(argc, argv);
  if (cmd == "idle") return cmd_hold(argc, argv, false);
  if (cmd == "slowloris") return cmd_hold(argc, argv, true);
  if (cmd == "keepalive") return cmd_keepalive(argc, argv);
  if (cmd == "probe") return cmd_probe(argc, argv);
  if (cmd == "fuzz") return cmd_fuzz(argc, argv);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    fmt::print("{}", kUsage);
    return 0;
  }
  usage_error("unknown command " + cmd);
}
